"""What uses a version is counted for everyone but named only to those who may see it; the profile admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from datasets.dependants import Dependant, register_provider, unregister_provider
from datasets.lineage_hooks import Downstream, register_downstream_provider, unregister_downstream_provider
from datasets.models import DatasetProfile, DatasetVersion
from datasets.services import DatasetInUse, delete_version
from tests.datasets.factories import push

pytestmark = pytest.mark.django_db

SECRET_RUNS = [Dependant("run", f"secret-{i}", f"/experiments/runs/{100 + i}/") for i in range(3)]
OPEN_RUN = Dependant("run", "open-1", "/experiments/runs/1/")


@pytest.fixture
def user_aware_runs(editor: Any) -> Iterator[None]:
    """A provider that is told who asks: the editor may see open-1 only; an anonymous caller sees all."""

    def runs(version: Any, *, user: Any = None) -> list[Dependant]:
        hide = user is not None and user.username == "erin"
        return [OPEN_RUN] + [Dependant(d.kind, d.label, d.url, hidden=hide) for d in SECRET_RUNS]

    register_provider("tests.runs", runs)
    yield
    unregister_provider("tests.runs")


@pytest.fixture
def runs_with_downstream() -> Iterator[None]:
    """A provider without `user`, and the downstream provider of the same name that filters by user."""
    register_provider("tests.runs", lambda version: [OPEN_RUN, *SECRET_RUNS])
    register_downstream_provider(
        "tests.runs",
        lambda version, user: [Downstream("run", "open-1", OPEN_RUN.url, context="training", status="FINISHED")],
    )
    yield
    unregister_provider("tests.runs")
    unregister_downstream_provider("tests.runs")


@pytest.mark.parametrize("providers", ["user_aware_runs", "runs_with_downstream"])
def test_the_409_names_runs_the_user_may_see_and_counts_the_others(
    editor: Any, editor_client: Client, providers: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(providers)
    push(author=editor)
    response = editor_client.delete("/api/v1/datasets/iris/versions/1/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["message"] == (
        "iris v1 cannot be deleted: 4 dependant(s) use it: run open-1 and 3 runs you cannot see."
    )
    assert error["details"] == {
        "dependants": [{"kind": "run", "label": "open-1", "url": "/experiments/runs/1/"}],
        "hidden_dependants": 3,
    }
    assert "secret" not in response.content.decode()


def test_only_hidden_dependants_are_only_counted(editor: Any) -> None:
    register_provider("tests.runs", lambda version, *, user=None: [Dependant("run", "s", "/x/", hidden=True)])
    try:
        version = push(author=editor)
        with pytest.raises(DatasetInUse) as caught:
            delete_version(version, actor=editor)
    finally:
        unregister_provider("tests.runs")
    assert str(caught.value) == "iris v1 cannot be deleted: 1 dependant(s) use it: 1 run you cannot see."
    assert (caught.value.dependants, caught.value.hidden) == ([], 1)


def test_a_command_without_a_user_names_every_dependant(editor: Any, runs_with_downstream: None) -> None:
    version = push(author=editor)
    with pytest.raises(DatasetInUse) as caught:
        delete_version(version, actor=None)
    assert "secret-2" in str(caught.value) and caught.value.hidden == 0


def test_the_version_page_has_one_downstream_section_with_the_hidden_ones_counted(
    editor: Any, editor_client: Client, runs_with_downstream: None
) -> None:
    register_provider("tests.models", lambda version: [Dependant("model version", "iris-clf v2", "/models/2/")])
    try:
        push(author=editor)
        html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    finally:
        unregister_provider("tests.models")
    assert "Used by" not in html and html.count("<h2>Downstream</h2>") == 1
    table = html[html.index('id="downstream-table"') : html.index("</table>", html.index('id="downstream-table"'))]
    assert 'href="/experiments/runs/1/">open-1</a>' in table and "training" in table and "FINISHED" in table
    assert 'href="/models/2/">iris-clf v2</a>' in table  # a dependant no downstream provider describes
    assert table.count("<tr>") == 3  # the header, the run (once, not twice) and the model
    assert "And 3 runs you cannot see." in html and "secret" not in html
    assert "cannot be deleted" in html


def test_a_version_nothing_uses_says_how_runs_link_to_it(editor: Any, editor_client: Client) -> None:
    push(author=editor)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    assert 'id="downstream-table"' not in html and "No runs you can see used this version. A run links" in html


def test_the_admin_shows_profiles_read_only(editor: Any, admin_client: Client) -> None:
    version = push(author=editor)
    DatasetProfile.objects.filter(version=version).update(
        status="ready", data={"rows": 3, "columns": [{"name": "a"}, {"name": "b"}]}
    )
    listing = admin_client.get("/admin/datasets/datasetprofile/?status__exact=ready")
    assert listing.status_code == 200 and "iris v1" in listing.content.decode()
    page = admin_client.get(f"/admin/datasets/datasetprofile/{version.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'name="_save"' not in html  # view only
    assert admin_client.get("/admin/datasets/datasetprofile/add/").status_code == 403
    assert admin_client.post(f"/admin/datasets/datasetprofile/{version.pk}/delete/").status_code == 403
    assert DatasetVersion.objects.filter(pk=version.pk).exists()

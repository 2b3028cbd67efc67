"""Every registry route as the owner, a team member, a viewer, an outsider and a stranger.

Owner: the editor who created the model (MANAGE). Member: another editor, READ by default. Viewer:
READ at most, whatever the grant. Outsider: a deactivated account (401 everywhere). Stranger: a
member when the default permission is NO_PERMISSIONS (404, as if the model did not exist).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from experiments.models import Permission, Run
from registry import services
from registry.models import ModelVersion, RegisteredModel, RegisteredModelPermission
from tests.conftest import PASSWORD, bearer, make_user
from tests.registry.conftest import call


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    payload: Callable[[Run], dict[str, Any]]
    level: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _m(**extra: Any) -> Callable[[Run], dict[str, Any]]:
    return lambda run: {"name": "classifier", **extra}


ROUTES = [
    Route("GET", "registered-models/get", _m(), Permission.READ),
    Route("GET", "registered-models/get-latest-versions", _m(), Permission.READ),
    Route("POST", "registered-models/get-latest-versions", _m(), Permission.READ),
    Route("GET", "registered-models/alias", _m(alias="champion"), Permission.READ),
    Route("GET", "model-versions/get", _m(version="1"), Permission.READ),
    Route("GET", "model-versions/get-download-uri", _m(version="1"), Permission.READ),
    Route("POST", "registered-models/rename", _m(new_name="renamed"), Permission.EDIT),
    Route("PATCH", "registered-models/update", _m(description="d"), Permission.EDIT),
    Route("POST", "registered-models/set-tag", _m(key="k", value="v"), Permission.EDIT),
    Route("DELETE", "registered-models/delete-tag", _m(key="team"), Permission.EDIT),
    Route("POST", "registered-models/alias", _m(alias="canary", version="1"), Permission.EDIT),
    Route("DELETE", "registered-models/alias", _m(alias="champion"), Permission.EDIT),
    Route(
        "POST",
        "model-versions/create",
        lambda run: {"name": "classifier", "source": f"runs:/{run.pk}/m"},
        Permission.EDIT,
    ),
    Route("PATCH", "model-versions/update", _m(version="1", description="d"), Permission.EDIT),
    Route("POST", "model-versions/transition-stage", _m(version="1", stage="Staging"), Permission.EDIT),
    Route("POST", "model-versions/set-tag", _m(version="1", key="k", value="v"), Permission.EDIT),
    Route("DELETE", "model-versions/delete-tag", _m(version="1", key="k"), Permission.EDIT),
    Route("DELETE", "model-versions/delete", _m(version="1"), Permission.MANAGE),
    Route("DELETE", "registered-models/delete", _m(), Permission.MANAGE),
]
RANK = {Permission.READ: 1, Permission.EDIT: 2, Permission.MANAGE: 3}


@pytest.fixture
def model(editor: Any, run: Run) -> RegisteredModel:
    model = services.create_registered_model("classifier", owner=editor, tags=[("team", "vision")])
    resolved = services.resolve_source(editor, f"runs:/{run.pk}/model")
    version = services.create_model_version(model, resolved, source=f"runs:/{run.pk}/model", creator=editor)
    services.set_alias(model, "champion", version, actor=editor)
    return model


@pytest.fixture
def member(django_user_model: Any) -> Any:
    return make_user(django_user_model, "mia", "editor")


def as_token(user: Any) -> Client:
    return Client(**bearer(user))


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_the_owner_may_do_everything(editor: Any, model: RegisteredModel, run: Run, route: Route) -> None:
    response = call(as_token(editor), route.method, route.path, route.payload(run))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_member_reads_but_cannot_write_without_a_grant(
    member: Any, model: RegisteredModel, run: Run, route: Route
) -> None:
    response = call(as_token(member), route.method, route.path, route.payload(run))
    if route.level == Permission.READ:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_member_with_edit_may_edit_but_not_delete(
    member: Any, model: RegisteredModel, run: Run, route: Route
) -> None:
    RegisteredModelPermission.objects.create(model=model, user=member, level=Permission.EDIT)
    response = call(as_token(member), route.method, route.path, route.payload(run))
    expected = 200 if RANK[route.level] <= RANK[Permission.EDIT] else 403
    assert response.status_code == expected, response.content


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_viewer_never_writes_even_with_a_grant(viewer: Any, model: RegisteredModel, run: Run, route: Route) -> None:
    RegisteredModelPermission.objects.create(model=model, user=viewer, level=Permission.MANAGE)
    response = call(as_token(viewer), route.method, route.path, route.payload(run))
    assert response.status_code == (200 if route.level == Permission.READ else 403), response.content


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_stranger_cannot_tell_the_model_exists(
    settings: Any, member: Any, model: RegisteredModel, run: Run, route: Route
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    response = call(as_token(member), route.method, route.path, route.payload(run))
    assert response.status_code == 404, response.content
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_an_outsider_gets_nowhere(outsider: Any, model: RegisteredModel, run: Run, route: Route) -> None:
    import base64

    basic = base64.b64encode(f"{outsider.username}:{PASSWORD}".encode()).decode()
    response = call(Client(), route.method, route.path, route.payload(run), HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_searches_show_only_what_the_caller_may_read(
    settings: Any, member: Any, editor: Any, model: RegisteredModel
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    services.create_registered_model("mine", owner=member)
    shared = services.create_registered_model("shared", owner=editor)
    RegisteredModelPermission.objects.create(model=shared, user=member, level=Permission.READ)
    body = call(as_token(member), "GET", "registered-models/search").json()
    assert [m["name"] for m in body["registered_models"]] == ["mine", "shared"]
    assert call(as_token(member), "GET", "model-versions/search", {"filter": "name = 'classifier'"}).json() == {
        "model_versions": []
    }


def test_viewers_cannot_create_models_and_creators_manage_theirs(viewer: Any, member: Any) -> None:
    response = call(as_token(viewer), "POST", "registered-models/create", {"name": "nope"})
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"
    assert call(as_token(member), "POST", "registered-models/create", {"name": "hers"}).status_code == 200
    assert RegisteredModel.objects.get(name="hers").owner == member
    assert call(as_token(member), "DELETE", "registered-models/delete", {"name": "hers"}).status_code == 200


def test_registering_needs_read_on_the_source_run(settings: Any, member: Any, model: RegisteredModel, run: Run) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    RegisteredModelPermission.objects.create(model=model, user=member, level=Permission.EDIT)
    for source in (
        f"runs:/{run.pk}/model",
        f"mlflow-artifacts:/{run.experiment_id}/{run.pk}/artifacts/model",
        "models:/classifier/1",
    ):
        response = call(as_token(member), "POST", "model-versions/create", {"name": "classifier", "source": source})
        assert response.status_code == 404, response.content
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert ModelVersion.objects.filter(model=model).count() == 1

"""Lineage: a run's dataset inputs link to dataset versions (by digest or source URL), and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from datasets.models import DatasetVersion
from experiments import lineage, services
from experiments.models import Run, RunInput
from tests.conftest import bearer, make_user
from tests.datasets.factories import IRIS, push
from tests.experiments.factories import ExperimentFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


def log_input(
    run: Run, *, name: str = "iris", digest: str = "0a1b2c3d", source: str = "", source_type: str = "http"
) -> None:
    services.log_inputs(
        run, [{"dataset": {"name": name, "digest": digest, "source_type": source_type, "source": source}, "tags": []}]
    )


def http_source(url: str) -> str:
    return json.dumps({"url": url})  # what mlflow's HTTPDatasetSource records


def linked(run: Run) -> list[str]:
    inputs = list(run.inputs.all())
    found = lineage.versions_for_inputs(inputs)
    return [str(v) for item in inputs for v in found[item.pk]]


@pytest.fixture
def version(editor: Any) -> DatasetVersion:
    return push(author=editor)


@pytest.fixture
def run(editor: Any) -> Run:
    return RunFactory(experiment=ExperimentFactory(name="training", owner=editor), run_name="train-1")


def test_an_input_whose_digest_is_the_versions_sha256_links_to_it(version: DatasetVersion, run: Run) -> None:
    log_input(run, digest=version.sha256)
    assert linked(run) == ["iris v1"]
    assert list(lineage.runs_using(version)) == [run]


def test_an_input_whose_digest_is_the_versions_md5_links_to_it(version: DatasetVersion, run: Run) -> None:
    log_input(run, digest=version.md5)
    assert linked(run) == ["iris v1"]
    assert list(lineage.runs_using(version)) == [run]


@pytest.mark.parametrize(
    "source",
    [
        http_source("http://localhost:8000/api/v1/datasets/iris/versions/1/download"),
        http_source("https://portal.example.com/datasets/iris/versions/1/"),
        http_source("https://portal.example.com/api/v1/datasets/iris/versions/1/"),
        "https://portal.example.com/api/v1/datasets/iris/versions/1/download",
    ],
)
def test_an_input_whose_source_names_the_version_links_to_it(version: DatasetVersion, run: Run, source: str) -> None:
    log_input(run, digest="9f8e7d6c", source=source)  # mlflow's own digest of a DataFrame matches no file
    assert linked(run) == ["iris v1"]
    assert list(lineage.runs_using(version)) == [run]


@pytest.mark.parametrize(
    "source",
    [
        http_source("http://localhost:8000/api/v1/datasets/iris/versions/12/download"),  # another version
        http_source("http://localhost:8000/api/v1/datasets/iris2/versions/1/download"),  # another dataset
        http_source("https://github.com/acme/data/blob/main/datasets/iris/versions/1/x.csv"),
        "datasets/iris/versions/1",  # not a URL
    ],
)
def test_an_unrelated_digest_or_source_does_not_link(version: DatasetVersion, run: Run, source: str) -> None:
    log_input(run, digest="0" * 64, source=source)
    assert linked(run) == []
    assert list(lineage.runs_using(version)) == []


def test_the_same_bytes_in_two_datasets_link_the_input_to_both_its_own_name_first(editor: Any, run: Run) -> None:
    push("aaa", author=editor)
    version = push("iris", author=editor)
    log_input(run, name="iris", digest=version.sha256)
    assert linked(run) == ["iris v1", "aaa v1"]


def test_deleting_a_version_a_run_used_is_refused_with_409_listing_the_run(
    editor: Any, version: DatasetVersion, run: Run
) -> None:
    log_input(run, digest=version.sha256)
    response = Client(**bearer(editor)).delete("/api/v1/datasets/iris/versions/1/")
    assert response.status_code == 409
    assert response.json()["error"]["details"]["dependants"] == [
        {"kind": "run", "label": "train-1 (training)", "url": f"/experiments/runs/{run.pk}/"}
    ]
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_a_version_no_run_uses_can_be_deleted(editor: Any, version: DatasetVersion, run: Run) -> None:
    log_input(run, digest="1" * 64)
    assert Client(**bearer(editor)).delete("/api/v1/datasets/iris/versions/1/").status_code == 204


def test_the_version_page_lists_the_runs_downstream_of_it(
    editor_client: Client, version: DatasetVersion, run: Run
) -> None:
    log_input(run, digest=version.sha256)
    services.update_run(run, status="FINISHED", end_time=None, run_name=None)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    table = html[html.index('id="downstream-table"') :]
    assert f'href="/experiments/runs/{run.pk}/">train-1</a>' in table
    assert f'href="/experiments/{run.experiment_id}/">training</a>' in table
    assert "FINISHED" in table


def test_the_version_page_hides_runs_of_experiments_the_viewer_cannot_read(
    settings: Any, django_user_model: Any, version: DatasetVersion, run: Run
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    log_input(run, digest=version.sha256)
    stranger = make_user(django_user_model, "sam", "viewer")
    client = Client()
    client.force_login(stranger)
    html = client.get("/datasets/iris/versions/1/").content.decode()
    assert 'id="downstream-table"' not in html and "No runs you can see used this version" in html


def test_the_run_page_links_each_input_to_its_dataset_version(
    editor_client: Client, version: DatasetVersion, run: Run
) -> None:
    log_input(run, digest=version.sha256)
    log_input(run, name="other", digest="abcdef12")
    html = editor_client.get(f"/experiments/runs/{run.pk}/").content.decode()
    assert 'href="/datasets/iris/versions/1/"' in html
    assert html.count("dataset-version-link") == 1


def test_the_run_page_takes_a_bounded_number_of_queries_for_its_inputs(
    editor_client: Client, editor: Any, run: Run, django_assert_max_num_queries: Any
) -> None:
    for n in range(5):
        version = push(f"set-{n}", IRIS + b"%d,1,x\n" % n, author=editor)
        log_input(run, name=f"set-{n}", digest=version.sha256)
    inputs = list(RunInput.objects.filter(run=run))
    with django_assert_max_num_queries(1):
        found = lineage.versions_for_inputs(inputs)
    assert sorted(str(v[0]) for v in found.values()) == [f"set-{n} v1" for n in range(5)]


def test_the_real_mlflow_client_logs_an_input_that_links_to_the_version(
    mlflow_client: Any, editor: Any, editor_client: Client, live_server: Any
) -> None:
    import mlflow
    import pandas as pd

    version = push(author=editor)
    url = f"{live_server.url}/api/v1/datasets/iris/versions/1/download"
    frame = pd.DataFrame({"sepal_length": [5.1, 4.9], "species": ["setosa", "setosa"]})
    by_digest = mlflow.data.from_pandas(frame, source=url, name="iris", digest=version.sha256)
    by_source = mlflow.data.from_pandas(frame, source=url, name="iris-sample")  # mlflow computes the digest
    experiment_id = mlflow_client.create_experiment("lineage")
    run = mlflow_client.create_run(experiment_id, run_name="fit")
    mlflow_client.log_inputs(
        run.info.run_id,
        [
            mlflow.entities.DatasetInput(by_digest._to_mlflow_entity()),
            mlflow.entities.DatasetInput(by_source._to_mlflow_entity()),
        ],
    )
    mlflow_client.set_terminated(run.info.run_id)
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    assert f'href="/experiments/runs/{run.info.run_id}/">fit</a>' in html
    run_page = editor_client.get(f"/experiments/runs/{run.info.run_id}/").content.decode()
    assert run_page.count('href="/datasets/iris/versions/1/"') == 2

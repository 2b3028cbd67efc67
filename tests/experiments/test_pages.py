"""The tracking dashboard: experiments list, runs table, run page, compare, CSV, charts data, artifacts."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from experiments import permissions, services
from experiments.models import (
    Experiment,
    LifecycleStage,
    LoggedModel,
    Metric,
    Permission,
    Run,
    RunOutput,
    RunStatus,
)
from experiments.services import MetricPoint
from experiments.views import managed_experiment_ids
from tests.conftest import make_user
from tests.experiments.factories import T0, ExperimentFactory, RunFactory


@pytest.fixture
def experiment(editor: Any) -> Experiment:
    return ExperimentFactory(name="vision", owner=editor)


@pytest.fixture
def no_default_permission(settings: Any) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"


@pytest.fixture
def stranger_client(django_user_model: Any) -> Client:
    """An active editor who neither created the experiments nor was granted anything on them."""
    client = Client()
    client.force_login(make_user(django_user_model, "ned", "editor"))
    return client


@pytest.fixture
def artifact_root(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


def html_of(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def run_names_in(html: str) -> list[str]:
    return re.findall(r'<td class="run-name"><a href="/experiments/runs/\w+/">([^<]+)</a>', html)


def rows_of(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# Experiments list --------------------------------------------------------------------------------


def test_the_experiments_page_of_a_new_portal_shows_how_to_connect_the_mlflow_client(viewer_client: Client) -> None:
    html = html_of(viewer_client.get("/experiments/"))
    assert "<h1>Experiments</h1>" in html and "empty-state" in html
    assert "No experiments yet" in html
    assert "export MLFLOW_TRACKING_URI=http://" in html and "MLFLOW_TRACKING_TOKEN" in html
    assert "Default" in html  # experiment 0 is always there


def test_the_experiments_page_shows_run_counts_and_last_activity_in_constant_queries(
    viewer_client: Client, editor: Any, django_assert_max_num_queries: Any
) -> None:
    first = ExperimentFactory(name="first", owner=editor)
    for _ in range(3):
        RunFactory(experiment=first)
    with django_assert_max_num_queries(8) as few:
        html = html_of(viewer_client.get("/experiments/"))
    for n in range(12):
        experiment = ExperimentFactory(name=f"more-{n}", owner=editor)
        RunFactory.create_batch(2, experiment=experiment)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = html_of(viewer_client.get("/experiments/"))
    row = re.search(r">first</a>.*?</tr>", html, re.S)
    assert row is not None and '<td class="num">3</td>' in row.group(0)
    assert "No experiments yet" not in html and "MLFLOW_TRACKING_URI" not in html


def test_the_experiments_page_searches_names_on_the_server(viewer_client: Client, editor: Any) -> None:
    ExperimentFactory(name="vision-resnet", owner=editor)
    ExperimentFactory(name="nlp-bert", owner=editor)
    html = html_of(viewer_client.get("/experiments/?q=RESNET"))
    assert "vision-resnet" in html and "nlp-bert" not in html
    assert "No experiments match" in html_of(viewer_client.get("/experiments/?q=nothing-like-this"))


def test_the_experiments_page_is_paged_on_the_server(viewer_client: Client, editor: Any) -> None:
    for n in range(30):
        ExperimentFactory(name=f"exp-{n:02d}", owner=editor)
    first = html_of(viewer_client.get("/experiments/"))
    second = html_of(viewer_client.get("/experiments/?page=2"))
    assert first.count('class="strong"') == 25
    assert second.count('class="strong"') == 31 - 25  # 30 and Default
    assert "Page 2 of 2" in second


def test_an_owner_deletes_an_experiment_and_restores_it_from_the_deleted_list(
    editor_client: Client, experiment: Experiment
) -> None:
    RunFactory(experiment=experiment)
    response = editor_client.post(f"/experiments/{experiment.pk}/lifecycle/", {"action": "delete"})
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.lifecycle_stage == LifecycleStage.DELETED
    assert Run.objects.get(experiment=experiment).lifecycle_stage == LifecycleStage.DELETED
    assert ">vision</a>" not in html_of(editor_client.get("/experiments/"))
    deleted = html_of(editor_client.get("/experiments/?deleted=on"))
    assert ">vision</a>" in deleted and "Restore" in deleted

    editor_client.post(f"/experiments/{experiment.pk}/lifecycle/", {"action": "restore", "next": "/experiments/"})
    experiment.refresh_from_db()
    assert experiment.lifecycle_stage == LifecycleStage.ACTIVE


def test_viewers_see_no_delete_buttons_and_cannot_post_one(
    viewer_client: Client, editor_client: Client, experiment: Experiment
) -> None:
    assert ">Delete</button>" in html_of(editor_client.get("/experiments/"))
    assert ">Delete</button>" not in html_of(viewer_client.get("/experiments/"))
    assert viewer_client.post(f"/experiments/{experiment.pk}/lifecycle/", {"action": "delete"}).status_code == 403
    experiment.refresh_from_db()
    assert experiment.lifecycle_stage == LifecycleStage.ACTIVE


def test_the_default_experiment_cannot_be_deleted_from_the_page(admin_client: Client) -> None:
    response = admin_client.post("/experiments/0/lifecycle/", {"action": "delete"}, follow=True)
    assert "Cannot delete the default experiment" in response.content.decode()
    assert Experiment.objects.get(pk=0).lifecycle_stage == LifecycleStage.ACTIVE


def test_who_may_manage_a_row_agrees_with_the_permission_module(
    editor: Any, viewer: Any, admin_user: Any, django_user_model: Any, settings: Any
) -> None:
    other = make_user(django_user_model, "ned", "editor")
    mine = ExperimentFactory(owner=editor)
    theirs = ExperimentFactory(owner=other)
    granted = ExperimentFactory(owner=other)
    granted.permissions.create(user=editor, level=Permission.MANAGE)
    experiments = [mine, theirs, granted]
    for default in ("READ", "MANAGE"):
        settings.TRACKING_DEFAULT_PERMISSION = default
        for user in (editor, viewer, admin_user, other):
            expected = {e.pk for e in experiments if permissions.can(user, e, Permission.MANAGE)}
            assert managed_experiment_ids(user, experiments) == expected, (default, user)


# The runs table ----------------------------------------------------------------------------------


def make_runs(experiment: Experiment) -> dict[str, Run]:
    runs = {
        "alpha": RunFactory(
            experiment=experiment,
            run_name="alpha",
            start_time=T0,
            params={"lr": "0.1", "optimizer": "adam"},
            metrics={"acc": 0.71, "loss": [0.9, 0.5]},
            tags={"team": "vision"},
            status="FINISHED",
            end_time=T0 + 90_000,
        ),
        "beta": RunFactory(
            experiment=experiment,
            run_name="beta",
            start_time=T0 + 1000,
            params={"lr": "0.01", "optimizer": "sgd"},
            metrics={"acc": 0.93, "loss": [0.8, 0.2]},
            tags={"team": "nlp"},
        ),
        "gamma": RunFactory(
            experiment=experiment,
            run_name="gamma",
            start_time=T0 + 2000,
            params={"lr": "0.001", "optimizer": "adam"},
            metrics={"acc": 0.85},
            status="FAILED",
            end_time=T0 + 12_000,
        ),
    }
    return runs


def test_every_tracking_page_renders_for_a_viewer(
    viewer_client: Client, experiment: Experiment, artifact_root: Path
) -> None:
    runs = make_runs(experiment)
    run = runs["beta"]
    assert "<h1>Experiments</h1>" in html_of(viewer_client.get("/experiments/"))
    page = html_of(viewer_client.get(f"/experiments/{experiment.pk}/"))
    assert "alpha" in page and "beta" in page and "gamma" in page
    assert 'class="status status-running"' in page and 'class="status status-failed"' in page
    assert "1 min 30 s" in page  # alpha's duration
    assert "Delete</button>" not in page  # a viewer cannot delete runs
    assert "beta" in html_of(viewer_client.get(f"/experiments/runs/{run.pk}/"))
    compare = html_of(viewer_client.get(f"/experiments/compare/?runs={run.pk}&runs={runs['alpha'].pk}"))
    assert "Compare runs" in compare
    assert viewer_client.get(f"/experiments/runs/{run.pk}/metrics/loss.json").json()["total_points"] == 2
    assert viewer_client.get(f"/experiments/runs/{run.pk}/status.json").json()["status"] == "RUNNING"
    assert len(rows_of(viewer_client.get(f"/experiments/{experiment.pk}/runs.csv"))) == 4


def test_people_without_read_permission_get_404_for_everything(
    no_default_permission: None, stranger_client: Client, editor_client: Client, experiment: Experiment
) -> None:
    run = RunFactory(experiment=experiment, metrics={"acc": 0.5})
    assert editor_client.get(f"/experiments/{experiment.pk}/").status_code == 200
    for path in [
        f"/experiments/{experiment.pk}/",
        f"/experiments/{experiment.pk}/runs.csv",
        f"/experiments/runs/{run.pk}/",
        f"/experiments/runs/{run.pk}/status.json",
        f"/experiments/runs/{run.pk}/metrics/acc.json",
        f"/experiments/runs/{run.pk}/artifact?path=model.pkl",
    ]:
        assert stranger_client.get(path).status_code == 404, path
    for path, data in [
        (f"/experiments/{experiment.pk}/lifecycle/", {"action": "delete"}),
        (f"/experiments/runs/{run.pk}/lifecycle/", {"action": "delete"}),
        (f"/experiments/{experiment.pk}/runs/", {"action": "delete", "runs": [run.pk]}),
    ]:
        assert stranger_client.post(path, data).status_code == 404, path
    assert "vision" not in html_of(stranger_client.get("/experiments/"))
    compare = html_of(stranger_client.get(f"/experiments/compare/?runs={run.pk}"))
    assert "could not be shown" in compare and run.name not in compare
    run.refresh_from_db()
    assert run.lifecycle_stage == LifecycleStage.ACTIVE


def test_the_runs_table_sorts_by_any_column_and_flips_the_direction(
    viewer_client: Client, experiment: Experiment
) -> None:
    make_runs(experiment)
    url = f"/experiments/{experiment.pk}/"
    assert run_names_in(html_of(viewer_client.get(url))) == ["gamma", "beta", "alpha"]  # newest first
    by_acc = html_of(viewer_client.get(url + "?sort=metrics.acc&dir=desc"))
    assert run_names_in(by_acc) == ["beta", "gamma", "alpha"]
    assert 'aria-sort="descending"' in by_acc
    assert "sort=metrics.acc&amp;dir=asc" in by_acc  # clicking the header again flips it
    assert run_names_in(html_of(viewer_client.get(url + "?sort=metrics.acc&dir=asc"))) == ["alpha", "gamma", "beta"]
    assert run_names_in(html_of(viewer_client.get(url + "?sort=params.lr&dir=asc"))) == ["gamma", "beta", "alpha"]
    by_name = html_of(viewer_client.get(url + "?sort=attributes.run_name&dir=asc"))
    assert run_names_in(by_name) == ["alpha", "beta", "gamma"]


def test_the_runs_table_filters_with_the_search_language_including_or_and_parentheses(
    viewer_client: Client, experiment: Experiment
) -> None:
    make_runs(experiment)
    url = f"/experiments/{experiment.pk}/"
    html = html_of(viewer_client.get(url, {"filter": "metrics.acc > 0.8"}))
    assert sorted(run_names_in(html)) == ["beta", "gamma"]
    assert "2 runs match the filter" in html
    either = "(params.optimizer = 'sgd' OR metrics.acc < 0.8) AND attributes.status != 'FAILED'"
    assert sorted(run_names_in(html_of(viewer_client.get(url, {"filter": either})))) == ["alpha", "beta"]
    assert "No runs match this filter" in html_of(viewer_client.get(url, {"filter": "metrics.acc > 2"}))


def test_a_bad_filter_shows_the_search_error_on_the_page_instead_of_failing(
    viewer_client: Client, experiment: Experiment
) -> None:
    make_runs(experiment)
    response = viewer_client.get(f"/experiments/{experiment.pk}/", {"filter": "metrics.acc >>> 1"})
    html = html_of(response)
    assert 'id="filter-error" role="alert"' in html
    assert run_names_in(html) == []
    from experiments.search import SearchError, runs_queryset

    with pytest.raises(SearchError) as caught:
        runs_queryset(None, [str(experiment.pk)], "metrics.acc >>> 1")
    assert caught.value.message.replace("'", "&#x27;").replace(">", "&gt;").replace("<", "&lt;") in html
    bad_sort = viewer_client.get(f"/experiments/{experiment.pk}/", {"sort": "params.", "dir": "asc"})
    assert run_names_in(html_of(bad_sort)) == ["gamma", "beta", "alpha"]  # an unusable sort falls back


def test_the_runs_table_shows_the_chosen_columns_and_keeps_them_in_every_link(
    viewer_client: Client, experiment: Experiment
) -> None:
    make_runs(experiment)
    url = f"/experiments/{experiment.pk}/"
    default = html_of(viewer_client.get(url))
    # By default: the metrics, then the params; tags only when chosen.
    assert 'value="metrics.acc" checked' in default and 'value="params.lr" checked' in default
    assert 'value="tags.team">' in default
    chosen = html_of(viewer_client.get(url, {"cols": ["", "tags.team", "params.optimizer"], "sort": "metrics.acc"}))
    assert 'value="tags.team" checked' in chosen and 'value="metrics.acc">' in chosen
    assert ">vision</td>" in chosen and ">sgd</td>" in chosen and ">0.93<" not in chosen
    assert "cols=&amp;cols=tags.team&amp;cols=params.optimizer" in chosen  # sort links keep the choice
    none = html_of(viewer_client.get(url, {"cols": [""]}))
    assert "checked" not in none.split('id="columns-picker"')[1].split("</details>")[0]
    assert ">0.93<" not in none
    unknown = html_of(viewer_client.get(url, {"cols": ["", "metrics.nope", "bogus"]}))
    assert 'value="metrics.nope"' not in unknown and ">nope<" not in unknown


def test_the_runs_table_shows_fifty_runs_a_page(viewer_client: Client, experiment: Experiment) -> None:
    for n in range(55):
        RunFactory(experiment=experiment, run_name=f"run-{n:02d}", start_time=T0 + n * 1000)
    url = f"/experiments/{experiment.pk}/"
    first = html_of(viewer_client.get(url))
    assert len(run_names_in(first)) == 50 and run_names_in(first)[0] == "run-54"
    assert "Page 1 of 2" in first and 'href="?page=2"' in first
    second = html_of(viewer_client.get(url + "?page=2"))
    assert run_names_in(second) == ["run-04", "run-03", "run-02", "run-01", "run-00"]


def test_the_runs_table_reads_a_bounded_number_of_queries_whatever_the_number_of_runs(
    viewer_client: Client, experiment: Experiment, django_assert_max_num_queries: Any
) -> None:
    def add(count: int) -> None:
        for n in range(count):
            RunFactory(
                experiment=experiment,
                params={f"p{i}": str(n) for i in range(4)},
                metrics={f"m{i}": float(n) for i in range(4)},
                tags={"team": "t"},
            )

    add(10)
    url = f"/experiments/{experiment.pk}/?cols=&cols=params.p0&cols=metrics.m1&cols=tags.team&sort=metrics.m1"
    with django_assert_max_num_queries(18) as small:
        html_of(viewer_client.get(url))
    add(60)
    with django_assert_max_num_queries(len(small.captured_queries)):
        html = html_of(viewer_client.get(url))
    assert len(run_names_in(html)) == 50


def test_the_csv_export_has_every_run_of_the_filter_in_order_and_neutralises_formulas(
    viewer_client: Client, experiment: Experiment
) -> None:
    for n in range(7):
        RunFactory(experiment=experiment, run_name=f"r{n}", metrics={"acc": n / 10}, params={"lr": "0.1"})
    RunFactory(
        experiment=experiment,
        run_name="=HYPERLINK(1)",
        params={"lr": "-1+2", "cmd": "@SUM(A1)"},
        tags={"note": "+tab", "t": "\tx"},
        metrics={"acc": -0.5},
    )
    url = f"/experiments/{experiment.pk}/runs.csv"
    query = {"filter": "params.lr = '0.1'", "sort": "metrics.acc", "dir": "asc", "cols": ["", "metrics.acc"]}
    response = viewer_client.get(url, query)
    assert response["Content-Type"].startswith("text/csv") and response.streaming
    assert "attachment" in response["Content-Disposition"]
    rows = rows_of(response)
    assert rows[0] == ["run_id", "run_name", "status", "start_time", "end_time", "duration_s", "user", "metrics.acc"]
    assert [r[1] for r in rows[1:]] == [f"r{n}" for n in range(7)]  # all of them, not one page, in order

    cols = ["", "params.lr", "params.cmd", "tags.note", "tags.t", "metrics.acc"]
    evil = rows_of(viewer_client.get(url, {"filter": "attributes.run_name LIKE '=%'", "cols": cols}))[1]
    assert evil[1] == "'=HYPERLINK(1)"
    assert evil[7:11] == ["'-1+2", "'@SUM(A1)", "'+tab", "'\tx"]
    assert evil[11] == "-0.5"  # a number we wrote cannot be a formula


def test_a_bad_filter_makes_the_csv_a_400_with_the_message(viewer_client: Client, experiment: Experiment) -> None:
    response = viewer_client.get(f"/experiments/{experiment.pk}/runs.csv", {"filter": "nonsense ==="})
    assert response.status_code == 400


def test_an_editor_deletes_and_restores_selected_runs(editor_client: Client, experiment: Experiment) -> None:
    runs = make_runs(experiment)
    url = f"/experiments/{experiment.pk}/"
    chosen = [runs["alpha"].pk, runs["beta"].pk]
    response = editor_client.post(url + "runs/", {"action": "delete", "runs": chosen, "next": url + "?sort=x"})
    assert response.status_code == 302 and response["Location"] == url + "?sort=x"
    assert run_names_in(html_of(editor_client.get(url))) == ["gamma"]
    deleted = html_of(editor_client.get(url + "?view=deleted"))
    assert sorted(run_names_in(deleted)) == ["alpha", "beta"] and "Restore</button>" in deleted
    editor_client.post(url + "runs/", {"action": "restore", "runs": chosen})
    assert len(run_names_in(html_of(editor_client.get(url)))) == 3


def test_a_viewer_cannot_delete_runs_but_can_compare_them(viewer_client: Client, experiment: Experiment) -> None:
    runs = make_runs(experiment)
    url = f"/experiments/{experiment.pk}/runs/"
    assert viewer_client.post(url, {"action": "delete", "runs": [runs["alpha"].pk]}).status_code == 403
    response = viewer_client.post(url, {"action": "compare", "runs": [runs["alpha"].pk, runs["beta"].pk]})
    assert response.status_code == 302
    assert response["Location"] == f"/experiments/compare/?runs={runs['alpha'].pk}&runs={runs['beta'].pk}"


def test_a_post_back_address_elsewhere_is_ignored(editor_client: Client, experiment: Experiment) -> None:
    response = editor_client.post(
        f"/experiments/{experiment.pk}/lifecycle/", {"action": "delete", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/experiments/"


# The run page ------------------------------------------------------------------------------------


def test_the_run_page_shows_params_metrics_tags_datasets_and_models(
    viewer_client: Client, experiment: Experiment
) -> None:
    run = RunFactory(
        experiment=experiment,
        run_name="resnet",
        params={"lr": "0.01"},
        metrics={"acc": [0.5, 0.75], "weird": math.nan},
        tags={"team": "vision", "mlflow.source.name": "train.py", "mlflow.source.git.commit": "abc123"},
    )
    services.log_inputs(
        run,
        [
            {
                "dataset": {"name": "cifar10", "digest": "d1g3st", "source_type": "local", "source": "/data/cifar"},
                "tags": [{"key": "mlflow.data.context", "value": "train"}],
            }
        ],
    )
    model = LoggedModel.objects.create(
        model_id="m-1", experiment=experiment, name="classifier", artifact_location="x", source_run=run
    )
    RunOutput.objects.create(run=run, model=model, step=1)
    html = html_of(viewer_client.get(f"/experiments/runs/{run.pk}/"))
    for text in ["resnet", ">lr<", "0.01", ">acc<", ">0.75<", ">NaN<", "team", "vision", "train.py", "abc123"]:
        assert text in html, text
    assert "cifar10" in html and ">train<" in html and "/data/cifar" in html
    assert "classifier" in html and "m-1" in html
    assert f'data-metric-chart="/experiments/runs/{run.pk}/metrics/acc.json?points=1000"' in html


def test_a_running_run_polls_for_updates_and_a_finished_one_does_not(
    viewer_client: Client, experiment: Experiment
) -> None:
    running = RunFactory(experiment=experiment, metrics={"loss": [1.0, 0.5]})
    done = RunFactory(experiment=experiment, status="FINISHED", end_time=T0 + 5000)
    assert "data-run-poll=" in html_of(viewer_client.get(f"/experiments/runs/{running.pk}/"))
    assert "data-run-poll=" not in html_of(viewer_client.get(f"/experiments/runs/{done.pk}/"))
    status = viewer_client.get(f"/experiments/runs/{running.pk}/status.json").json()
    assert status["finished"] is False and status["metrics"] == [{"key": "loss", "value": "0.5", "step": 1}]
    services.update_run(running, status=RunStatus.FINISHED, end_time=None, run_name=None)
    assert viewer_client.get(f"/experiments/runs/{running.pk}/status.json").json()["finished"] is True


def test_an_editor_deletes_and_restores_a_run_from_its_page(
    editor_client: Client, viewer_client: Client, experiment: Experiment
) -> None:
    run = RunFactory(experiment=experiment)
    url = f"/experiments/runs/{run.pk}/"
    assert "Delete run" in html_of(editor_client.get(url)) and "Delete run" not in html_of(viewer_client.get(url))
    assert viewer_client.post(url + "lifecycle/", {"action": "delete"}).status_code == 403
    assert editor_client.post(url + "lifecycle/", {"action": "delete"}).status_code == 302
    run.refresh_from_db()
    assert run.lifecycle_stage == LifecycleStage.DELETED
    assert "Restore run" in html_of(editor_client.get(url))
    editor_client.post(url + "lifecycle/", {"action": "restore"})
    run.refresh_from_db()
    assert run.lifecycle_stage == LifecycleStage.ACTIVE


def test_the_metric_endpoint_downsamples_a_long_history_keeping_its_ends(
    viewer_client: Client, experiment: Experiment
) -> None:
    run = RunFactory(experiment=experiment)
    points = [MetricPoint("loss", 1 / (s + 1) + (0.3 if s == 2500 else 0), T0 + s, s) for s in range(5000)]
    services.log_metrics(run, points)
    data = viewer_client.get(f"/experiments/runs/{run.pk}/metrics/loss.json?points=500").json()
    assert (data["total_points"], data["returned_points"], data["downsampled"]) == (5000, 500, True)
    assert data["x"][0] == 0 and data["x"][-1] == 4999 and 2500 in data["x"]  # the spike survives
    assert data["x"] == sorted(data["x"])
    trace = data["figure"]["data"][0]
    assert trace["x"] == data["x"] and trace["y"] == data["y"]
    by_time = viewer_client.get(f"/experiments/runs/{run.pk}/metrics/loss.json?points=500&x=time").json()
    assert by_time["x"][0] == T0 and by_time["figure"]["layout"]["xaxis"]["type"] == "date"
    assert viewer_client.get(f"/experiments/runs/{run.pk}/metrics/nope.json").status_code == 404


def test_the_metric_endpoint_reads_plain_values_not_model_instances_in_a_few_queries(
    viewer_client: Client, experiment: Experiment, django_assert_max_num_queries: Any
) -> None:
    run = RunFactory(experiment=experiment, metrics={"loss": [0.5, 0.4, 0.3]})
    with (
        mock.patch.object(Metric, "from_db", side_effect=AssertionError("a Metric instance was built")),
        django_assert_max_num_queries(8),
    ):
        data = viewer_client.get(f"/experiments/runs/{run.pk}/metrics/loss.json").json()
    assert data["y"] == [0.5, 0.4, 0.3]


def test_long_series_are_downsampled_once_and_served_from_the_cache_until_a_point_is_added(
    viewer_client: Client, experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from experiments import queries

    monkeypatch.setattr(queries, "SERIES_CACHE_MIN_POINTS", 50)
    run = RunFactory(experiment=experiment)
    services.log_metrics(run, [MetricPoint("loss", 1 / (s + 1), T0 + s, s) for s in range(1, 200)])
    url = f"/experiments/runs/{run.pk}/metrics/loss.json?points=20"
    first = viewer_client.get(url).json()
    with mock.patch.object(queries, "metric_series", side_effect=AssertionError("read again")):
        assert viewer_client.get(url).json() == first
    services.log_metrics(run, [MetricPoint("loss", 5.0, T0, 0)])  # an older step, logged late
    again = viewer_client.get(url).json()
    assert again["total_points"] == 200 and again["x"][0] == 0 and again["y"][0] == 5.0


def test_the_metric_endpoint_returns_nan_and_infinity_as_gaps(viewer_client: Client, experiment: Experiment) -> None:
    run = RunFactory(experiment=experiment)
    values = [1.0, math.nan, 2.0, math.inf, 3.0]
    services.log_metrics(run, [MetricPoint("m", v, T0 + i, i) for i, v in enumerate(values)])
    short = viewer_client.get(f"/experiments/runs/{run.pk}/metrics/m.json").json()
    assert short["x"] == [0, 1, 2, 3, 4] and short["y"] == [1.0, None, 2.0, None, 3.0]
    assert short["non_finite_points"] == 2
    long_run = RunFactory(experiment=experiment)
    many = [MetricPoint("m", math.nan if i % 7 == 0 else float(i), T0 + i, i) for i in range(200)]
    services.log_metrics(long_run, many)
    data = viewer_client.get(f"/experiments/runs/{long_run.pk}/metrics/m.json?points=50").json()
    assert data["returned_points"] == 50 and None not in data["y"]
    assert data["x"][0] == 1 and data["x"][-1] == 199


def test_metric_keys_with_slashes_have_their_own_chart_data(viewer_client: Client, experiment: Experiment) -> None:
    run = RunFactory(experiment=experiment, metrics={"train/loss": [0.4, 0.3]})
    html = html_of(viewer_client.get(f"/experiments/runs/{run.pk}/"))
    assert f"/experiments/runs/{run.pk}/metrics/train/loss.json" in html
    assert viewer_client.get(f"/experiments/runs/{run.pk}/metrics/train/loss.json").json()["y"] == [0.4, 0.3]


# Artifacts ---------------------------------------------------------------------------------------


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def write_artifacts(root: Path, run: Run) -> Path:
    base = root / str(run.experiment_id) / run.pk / "artifacts"
    (base / "model").mkdir(parents=True)
    (base / "model" / "MLmodel").write_text("flavors:\n  sklearn: {}\n")
    (base / "notes.txt").write_text("hello from training\n")
    (base / "curve.png").write_bytes(PNG)
    (base / "report.html").write_text("<script>alert(1)</script>")
    (base / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    return base


def test_the_artifact_browser_lists_folders_and_previews_text_and_images(
    viewer_client: Client, experiment: Experiment, artifact_root: Path
) -> None:
    run = RunFactory(experiment=experiment)
    write_artifacts(artifact_root, run)
    url = f"/experiments/runs/{run.pk}/"
    html = html_of(viewer_client.get(url))
    assert "model/" in html and "notes.txt" in html and "curve.png" in html
    inside = html_of(viewer_client.get(url, {"dir": "model"}))
    assert "MLmodel" in inside and "notes.txt" not in inside
    text = html_of(viewer_client.get(url, {"file": "notes.txt"}))
    assert '<pre class="log preview" id="artifact-text">hello from training' in text
    image = html_of(viewer_client.get(url, {"file": "curve.png"}))
    assert f'src="/experiments/runs/{run.pk}/artifact?path=curve.png&amp;inline=1"' in image
    served = viewer_client.get(f"/experiments/runs/{run.pk}/artifact", {"path": "curve.png", "inline": "1"})
    assert served["Content-Type"] == "image/png" and served["Content-Disposition"].startswith("inline")
    assert b"".join(served.streaming_content) == PNG
    download = viewer_client.get(f"/experiments/runs/{run.pk}/artifact", {"path": "model/MLmodel"})
    assert download["Content-Disposition"].startswith("attachment")
    assert download["Content-Type"] == "application/octet-stream"


def test_html_and_svg_artifacts_are_only_ever_downloads(
    viewer_client: Client, experiment: Experiment, artifact_root: Path
) -> None:
    run = RunFactory(experiment=experiment)
    write_artifacts(artifact_root, run)
    for name in ("report.html", "chart.svg"):
        response = viewer_client.get(f"/experiments/runs/{run.pk}/artifact", {"path": name, "inline": "1"})
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream", name
        assert response["Content-Disposition"].startswith("attachment"), name
        assert "sandbox" in response["Content-Security-Policy"]
        html = html_of(viewer_client.get(f"/experiments/runs/{run.pk}/", {"file": name}))
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html  # shown as text, escaped


def test_artifact_paths_cannot_leave_the_run(
    viewer_client: Client, experiment: Experiment, artifact_root: Path
) -> None:
    run = RunFactory(experiment=experiment)
    other = RunFactory(experiment=experiment)
    write_artifacts(artifact_root, other)
    url = f"/experiments/runs/{run.pk}/artifact"
    for path in ("../../" + other.pk + "/artifacts/notes.txt", "/etc/passwd", "%2e%2e/x", ""):
        assert viewer_client.get(url, {"path": path}).status_code == 400, path
    assert viewer_client.get(url, {"path": "missing.txt"}).status_code == 404
    page = viewer_client.get(f"/experiments/runs/{run.pk}/", {"dir": "../../" + other.pk})
    assert "not allowed" in html_of(page)


# Compare -----------------------------------------------------------------------------------------


def test_the_compare_page_diffs_params_and_draws_the_three_charts(
    viewer_client: Client, experiment: Experiment
) -> None:
    runs = make_runs(experiment)
    ids = [runs[name].pk for name in ("alpha", "beta", "gamma")]
    query = "&".join(f"runs={i}" for i in ids)
    html = html_of(viewer_client.get(f"/experiments/compare/?{query}&metric=loss&x=lr&y=acc"))
    assert re.search(r'<tr class="differs"><th scope="row">lr</th>', html)
    assert re.search(r'<tr class="differs"><th scope="row">optimizer</th>', html)
    figures = {
        name: json.loads(re.search(rf'id="{name}-chart" data-figure="([^"]+)"', html).group(1).replace("&quot;", '"'))
        for name in ("overlay", "parallel", "scatter")
    }
    assert [t["name"] for t in figures["overlay"]["data"]] == ["alpha", "beta"]  # gamma has no loss
    assert figures["overlay"]["data"][1]["y"] == [0.8, 0.2]
    assert figures["parallel"]["data"][0]["type"] == "parcoords"
    assert [d["label"] for d in figures["parallel"]["data"][0]["dimensions"]][-1] == "loss"
    assert figures["scatter"]["data"][0]["x"] == [0.1, 0.01, 0.001]
    assert figures["scatter"]["data"][0]["y"] == [0.71, 0.93, 0.85]
    default = html_of(viewer_client.get(f"/experiments/compare/?{query}"))
    assert '<option value="loss" selected>' in default  # the metric with the longest history
    only = html_of(viewer_client.get(f"/experiments/compare/?{query}&diff=1"))
    assert "No parameter differs" not in only and ">lr<" in only


def test_compare_works_across_experiments_and_shows_only_readable_runs(
    no_default_permission: None, editor_client: Client, editor: Any, django_user_model: Any
) -> None:
    other_owner = make_user(django_user_model, "ned", "editor")
    mine = RunFactory(experiment=ExperimentFactory(owner=editor), run_name="mine", metrics={"acc": 0.5})
    mine_too = RunFactory(experiment=ExperimentFactory(owner=editor), run_name="mine-too", metrics={"acc": 0.6})
    secret = RunFactory(experiment=ExperimentFactory(owner=other_owner), run_name="secret", metrics={"acc": 0.7})
    html = html_of(editor_client.get(f"/experiments/compare/?runs={mine.pk}&runs={secret.pk}&runs={mine_too.pk}"))
    assert "mine" in html and "mine-too" in html and "secret" not in html
    assert "1 of the requested runs could not be shown" in html


def test_the_compare_page_without_runs_says_how_to_pick_them(viewer_client: Client) -> None:
    assert "No runs to compare" in html_of(viewer_client.get("/experiments/compare/"))


# Long series: MetricBucket summaries -------------------------------------------------------------


def stored_buckets(run: Run, key: str) -> dict[tuple[str, int], list[Any]]:
    from experiments.models import MetricBucket

    rows = MetricBucket.objects.filter(run=run, key=key).values_list(
        "key", "bucket", "points", "non_finite", "min_value", "min_step", "max_value", "max_step"
    )
    return {(r[0], r[1]): list(r[2:]) for r in rows}


def test_buckets_summarise_exactly_the_points_stored_whatever_the_batches_and_retries(experiment: Experiment) -> None:
    from experiments.models import Metric

    run = RunFactory(experiment=experiment)
    values = [math.sin(i / 50) * 10 for i in range(5000)]
    values[1234], values[3000], values[4500] = math.nan, math.inf, -math.inf
    points = [MetricPoint("loss", v, T0 + i, i) for i, v in enumerate(values)]
    for start in range(0, 5000, 700):  # batches that straddle buckets
        services.log_metrics(run, points[start : start + 700])
    services.log_metrics(run, points[100:900])  # a retried batch adds nothing
    services.log_metrics(run, [MetricPoint("loss", 99.0, T0, 2047)])  # a second point at a step, later
    stored = Metric.objects.filter(run=run, key="loss").values_list("key", "value", "is_nan", "step")
    expected = services.summarise_buckets(stored)
    assert stored_buckets(run, "loss") == expected
    assert sum(b[0] for b in expected.values()) == 5001 and sum(b[1] for b in expected.values()) == 3
    assert expected[("loss", 1)][4:] == [99.0, 2047]


def test_a_million_point_chart_reads_summaries_and_keeps_spikes(
    viewer_client: Client, experiment: Experiment, monkeypatch: pytest.MonkeyPatch, django_assert_max_num_queries: Any
) -> None:
    from experiments import queries

    monkeypatch.setattr(queries, "LONG_SERIES_POINTS", 1000)
    run = RunFactory(experiment=experiment)
    values = [1.0] * 30_000
    values[17_777], values[25_000] = 50.0, -50.0
    services.log_metrics(run, [MetricPoint("loss", v, T0 + s, s) for s, v in enumerate(values)][:1000])
    services.log_metrics(run, [MetricPoint("loss", v, T0 + s, s) for s, v in enumerate(values)][1000:])
    with (
        mock.patch.object(queries, "metric_series", side_effect=AssertionError("read every point")),
        django_assert_max_num_queries(8),
    ):
        data = viewer_client.get(f"/experiments/runs/{run.pk}/metrics/loss.json?points=20").json()
    assert data["total_points"] == 30_000 and data["downsampled"] and data["returned_points"] <= 20
    drawn = set(zip(data["x"], data["y"], strict=True))
    assert (17_777, 50.0) in drawn and (25_000, -50.0) in drawn
    assert data["x"] == sorted(data["x"])


def test_the_migration_backfills_the_same_buckets_the_write_path_keeps(experiment: Experiment) -> None:
    import importlib

    from django.apps import apps

    from experiments.models import MetricBucket

    run = RunFactory(experiment=experiment)
    points = [MetricPoint(k, math.nan if s % 97 == 0 else (s * 7919) % 1000 / 3, T0 + s, s) for s in range(3000)
              for k in ("a", "b")]  # fmt: skip
    services.log_metrics(run, points)
    kept = stored_buckets(run, "a") | stored_buckets(run, "b")
    MetricBucket.objects.all().delete()
    importlib.import_module("experiments.migrations.0005_metric_buckets").backfill(apps, None)
    assert stored_buckets(run, "a") | stored_buckets(run, "b") == kept

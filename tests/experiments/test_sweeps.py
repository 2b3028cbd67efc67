"""Sweeps: a grid or random search fans out as one training job per trial, a few at a time; the best
trial by the chosen metric registers in one click. Trials run in-process here (runner.execute); the
finish hook that starts the next trial runs when the test commits its callbacks."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.test import Client
from rest_framework.exceptions import ValidationError

from experiments import services as tracking
from experiments.models import Run, Sweep, SweepTrial
from experiments.training.keras_models import MLPClassifier
from experiments.training.sweeps import SWEEP_TAG, advance_sweeps, create_sweep, expand_space
from jobs import runner
from jobs.models import Job, JobStatus
from tests.conftest import bearer, make_user
from tests.datasets.factories import push
from tests.experiments.test_training import churn_csv, inline_jobs  # noqa: F401  (autouse: jobs run in process)

BASE = {"epochs": 2, "hidden_units": [4], "batch_size": 64}


def _sweep(editor: Any, **extra: Any) -> Sweep:
    version = push("churn", churn_csv(), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("churn-sweep", owner=editor)
    values = {"target": "churned", "trainer": "keras_mlp_classifier", "base_params": BASE, "seed": 7,
              "space": {"learning_rate": [0.001, 0.05, 0.1]}, "max_concurrency": 2, **extra}  # fmt: skip
    return create_sweep(experiment, dataset_version=version, requested_by=editor, **values)


def test_a_grid_is_every_combination_checked_against_the_trainers_schema() -> None:
    space = {"learning_rate": [0.01, 0.1], "hidden_units": {"values": [[8], [16, 8]]}, "dropout": [0.0]}
    trials = expand_space(MLPClassifier, {"epochs": 3}, space, "grid", None, 0)
    assert [(t["learning_rate"], t["hidden_units"]) for t in trials] == [
        (0.01, [8]), (0.01, [16, 8]), (0.1, [8]), (0.1, [16, 8]),
    ]  # fmt: skip
    assert all(t["epochs"] == 3 and t["dropout"] == 0.0 and t["batch_size"] == 32 for t in trials)  # defaults filled


def test_random_draws_are_reproducible_in_range_and_whole_for_whole_parameters() -> None:
    space = {"learning_rate": {"min": 1e-4, "max": 1e-1, "log": True}, "batch_size": {"min": 8, "max": 64},
             "dropout": [0.0, 0.2]}  # fmt: skip
    first = expand_space(MLPClassifier, {}, space, "random", 40, 3)
    assert first == expand_space(MLPClassifier, {}, space, "random", 40, 3)
    assert first != expand_space(MLPClassifier, {}, space, "random", 40, 4)
    assert all(1e-4 <= t["learning_rate"] <= 1e-1 and 8 <= t["batch_size"] <= 64 for t in first)
    assert all(isinstance(t["batch_size"], int) and t["dropout"] in (0.0, 0.2) for t in first)
    # On a log scale a decade gets its share: about a third of the draws fall below 1e-3.
    low = sum(t["learning_rate"] < 1e-3 for t in first)
    assert 5 <= low <= 25 and math.isfinite(sum(t["learning_rate"] for t in first))


@pytest.mark.parametrize(
    ("space", "strategy", "n_trials", "field"),
    [
        ({}, "grid", None, "space"),
        ({"nope": [1]}, "grid", None, "space.nope"),
        ({"dropout": {"min": 0.0, "max": 0.5}}, "grid", None, "space.dropout"),  # a range needs random draws
        ({"dropout": [0.1, 2.0]}, "grid", None, "space.dropout"),  # 2.0 is above the schema's 0.9
        ({"dropout": []}, "grid", None, "space.dropout"),
        ({"learning_rate": {"min": 0.0, "max": 1.0, "log": True}}, "random", 3, "space.learning_rate"),
        ({"hidden_units": {"min": 1, "max": 3}}, "random", 3, "space.hidden_units"),
        ({"dropout": [0.1]}, "random", None, "n_trials"),
        ({"dropout": [0.1]}, "random", 101, "n_trials"),
        ({"learning_rate": [0.1] * 11, "dropout": [0.1] * 10}, "grid", None, "space"),  # 110 points > 100
    ],
)
def test_a_bad_space_is_refused_naming_the_parameter(space: Any, strategy: str, n_trials: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        expand_space(MLPClassifier, {}, space, strategy, n_trials, 0)
    assert field in caught.value.detail, caught.value.detail


def test_a_sweep_runs_at_most_its_concurrency_and_starts_the_next_trial_as_one_ends(
    editor: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sweep = _sweep(editor)
    trials = list(sweep.trials.select_related("job"))
    assert [t.job is not None for t in trials] == [True, True, False]
    training = Job.objects.filter(type="experiments.train").values_list("pk", flat=True)
    assert [j for j in sent if j in set(training)] == [trials[0].job.pk, trials[1].job.pk]  # the third waits
    assert advance_sweeps() == 0  # beat finds no free slot either
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.execute(trials[0].job.pk) == "succeeded"
    third = SweepTrial.objects.get(sweep=sweep, number=3)
    assert third.job is not None and sent[-1] == third.job.pk  # started by the first trial's finish hook
    assert third.job.params["params"]["learning_rate"] == 0.1 and third.job.params["seed"] == 7
    for trial in SweepTrial.objects.filter(sweep=sweep, number__gt=1):
        with django_capture_on_commit_callbacks(execute=True):
            assert runner.execute(trial.job_id) == "succeeded"
    runs = Run.objects.filter(tags__key=SWEEP_TAG, tags__value=str(sweep.pk))
    assert runs.count() == 3 and set(runs.values_list("name", flat=True)) == {f"{sweep.name} #{n}" for n in (1, 2, 3)}

    client = Client(**bearer(editor))
    body = client.get(f"/api/v1/sweeps/{sweep.pk}/").json()
    scores = {t["number"]: t["score"] for t in body["trials"]}
    assert body["state"] == "finished" and body["trials_done"] == 3 and body["metric"] == "test_accuracy"
    assert body["best"]["score"] == max(scores.values())
    assert body["best"]["number"] == min(n for n, s in scores.items() if s == max(scores.values()))
    assert body["best"]["model"] == f"runs:/{body['best']['run_id']}/model"


def test_a_trial_that_fails_does_not_stop_the_sweep(
    editor: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sweep = _sweep(editor, max_concurrency=1, space={"learning_rate": [0.01, 0.02]})
    first = SweepTrial.objects.get(sweep=sweep, number=1)
    with django_capture_on_commit_callbacks(execute=True):
        Job.objects.filter(pk=first.job_id).update(params={**first.job.params, "trainer": "gone"})
        assert runner.execute(first.job_id) == "failed"
    assert SweepTrial.objects.get(sweep=sweep, number=2).job is not None


def test_the_api_starts_reads_and_cancels_sweeps_and_names_bad_fields(
    editor: Any,
    viewer: Any,
    sent: list[int],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
    django_user_model: Any,
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    stranger = make_user(django_user_model, "oscar", "editor")  # an editor without a grant on the experiment
    push("churn", churn_csv(), filename="churn.csv", author=editor)
    tracking.create_experiment("api-sweep", owner=editor)
    body = {"experiment": "api-sweep", "dataset": "churn", "version": 1, "target": "churned",
            "trainer": "keras_mlp_classifier", "params": BASE, "space": {"dropout": {"min": 0.0, "max": 0.5}},
            "strategy": "random", "n_trials": 4, "max_concurrency": 3, "metric": "test_f1"}  # fmt: skip
    client = Client(**bearer(editor))
    for bad, field in [({"space": {"dropout": [5]}}, "space.dropout"), ({"metric": "test_rmse"}, "metric"),
                       ({"max_concurrency": 99}, "max_concurrency"), ({"strategy": "bayes"}, "strategy"),
                       ({"target": "nope"}, "target"), ({"params": {"epochs": 0}}, "params.epochs")]:  # fmt: skip
        response = client.post("/api/v1/sweeps/", {**body, **bad}, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["field"] == field, (bad, response.content)
    assert not Sweep.objects.exists() and not Job.objects.filter(type="experiments.train").exists()
    viewer_post = Client(**bearer(viewer)).post("/api/v1/sweeps/", body, content_type="application/json")
    assert viewer_post.status_code == 403
    stranger_post = Client(**bearer(stranger)).post("/api/v1/sweeps/", body, content_type="application/json")
    assert stranger_post.status_code in (400, 403) and not Sweep.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/sweeps/", body, content_type="application/json")
    assert created.status_code == 202, created.content
    sweep = created.json()
    assert [t["status"] for t in sweep["trials"]] == ["queued", "queued", "queued", "pending"]
    assert all(0.0 <= t["params"]["dropout"] <= 0.5 for t in sweep["trials"])
    assert client.get("/api/v1/sweeps/").json()["results"][0]["id"] == sweep["id"]
    assert Client(**bearer(stranger)).get(f"/api/v1/sweeps/{sweep['id']}/").status_code == 404
    assert Client(**bearer(viewer)).post(f"/api/v1/sweeps/{sweep['id']}/cancel/").status_code == 403

    cancelled = client.post(f"/api/v1/sweeps/{sweep['id']}/cancel/").json()
    assert cancelled["state"] == "cancelled"
    assert [t["status"] for t in cancelled["trials"]] == ["cancelled", "cancelled", "cancelled", "pending"]
    assert advance_sweeps() == 0 and not Job.objects.filter(type="experiments.train", status=JobStatus.QUEUED).exists()


def test_the_pages_start_a_sweep_show_its_trials_and_register_the_best_model(
    editor: Any, editor_client: Any, viewer_client: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    from datasets.models import DatasetVersion
    from registry.models import RegisteredModel

    assert "No sweeps yet" in editor_client.get("/experiments/sweeps/").content.decode()
    push("churn", churn_csv(), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("page-sweep", owner=editor)
    form = {"experiment": experiment.pk, "version": DatasetVersion.objects.get().pk, "target": "churned",
            "trainer": "keras_mlp_classifier", "params": '{"epochs": 2, "hidden_units": [4]}', "seed": "1",
            "space": '{"learning_rate": [0.01, 0.1]}', "strategy": "grid", "max_concurrency": "2",
            "name": "lr"}  # fmt: skip
    assert 'id="sweep-form"' in editor_client.get("/experiments/sweeps/new/").content.decode()
    bad = editor_client.post("/experiments/sweeps/new/", {**form, "space": '{"dropout": [3]}'}, follow=True)
    assert "space.dropout: 3: Ensure this value is less than or equal to 0.9." in bad.content.decode()
    assert viewer_client.post("/experiments/sweeps/new/", form).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post("/experiments/sweeps/new/", form)
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/sweeps/{sweep.pk}/"
    waiting = editor_client.get(response["Location"]).content.decode()
    assert 'data-refresh="3"' in waiting and "appears here when the first trial finishes" in waiting
    assert (
        'id="cancel-sweep"' in waiting
        and 'id="cancel-sweep"' not in viewer_client.get(response["Location"]).content.decode()
    )
    for trial in sweep.trials.all():
        runner.execute(trial.job_id)
    done = editor_client.get(response["Location"]).content.decode()
    assert 'id="sweep-chart" data-figure="' in done and "parcoords" in done and "data-refresh" not in done
    assert 'id="register-best"' in done and "2 of 2 trials done" in done
    best = Client(**bearer(editor)).get(f"/api/v1/sweeps/{sweep.pk}/").json()["best"]
    registered = editor_client.post("/models/register-run/", {"source": best["model"], "name": "churn-best"})
    assert registered.status_code == 302
    assert RegisteredModel.objects.get(name="churn-best").versions.get().run_id == best["run_id"]
    listing = editor_client.get("/experiments/sweeps/").content.decode()
    assert f'href="/experiments/sweeps/{sweep.pk}/"' in listing and "2 / 2" in listing


def test_with_no_data_the_training_and_sweep_forms_say_what_to_do_first(editor_client: Any) -> None:
    for url, heading in (("/experiments/train/", "Nothing to train on yet"),
                         ("/experiments/sweeps/new/", "Nothing to sweep over yet")):  # fmt: skip
        page = editor_client.get(url).content.decode()
        assert heading in page and 'href="/datasets/"' in page and '<form method="post" class="card' not in page


def test_the_best_trial_follows_the_metrics_direction_and_ignores_unfinished_ones() -> None:
    from types import SimpleNamespace

    from experiments.training.sweeps import best_trial

    def trial(number: int, status: str, rmse: float | None) -> Any:
        job = SimpleNamespace(status=status, result={} if rmse is None else {"test_rmse": rmse})
        return SimpleNamespace(number=number, job=job)

    trials = [trial(1, "succeeded", 0.9), trial(2, "succeeded", 0.4), trial(3, "failed", 0.1),
              trial(4, "succeeded", None), trial(5, "succeeded", 0.4)]  # fmt: skip
    lower = SimpleNamespace(metric="test_rmse", goal="min")
    higher = SimpleNamespace(metric="test_rmse", goal="max")
    assert best_trial(lower, trials).number == 2  # lowest, the first of a tie, never the failed 0.1
    assert best_trial(higher, trials).number == 1
    assert best_trial(lower, [trial(1, "running", None)]) is None


def test_a_training_job_page_needs_read_on_its_experiment_even_before_its_run_exists(
    editor: Any, django_user_model: Any, settings: Any
) -> None:
    from django.test import Client

    from experiments.training.services import start_training_job
    from tests.conftest import make_user

    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    version = push("churn", churn_csv(), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("private", owner=editor)
    job = start_training_job(experiment, dataset_version=version, target="churned", trainer="keras_mlp_classifier",
                             requested_by=editor)  # fmt: skip
    stranger = Client()
    stranger.force_login(make_user(django_user_model, "sam", "editor"))
    owner = Client()
    owner.force_login(editor)
    assert stranger.get(f"/experiments/training/{job.pk}/").status_code == 404
    assert owner.get(f"/experiments/training/{job.pk}/").status_code == 200

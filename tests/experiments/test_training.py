"""Training jobs, run in-process: a Keras model trained on a dataset version, with everything in its run,
servable by the portal's model server; reproducible. Cancel and worker death: tests/e2e/test_training_e2e.py."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rest_framework.exceptions import ValidationError

from experiments import services as tracking
from experiments.models import Run, RunStatus
from experiments.training.services import start_training_job
from jobs import runner
from jobs.models import Job
from tests.datasets.factories import push


@pytest.fixture(autouse=True)
def inline_jobs(settings: Any, tmp_path: Path) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return settings


def churn_csv(rows: int = 300) -> bytes:
    rng = random.Random(5)
    lines = ["age,plan,spend,churned"]
    for _ in range(rows):
        age, plan = rng.randint(18, 80), rng.choice(["basic", "pro", "team"])
        spend = round(rng.uniform(0, 100), 2)
        churned = int((plan == "basic" and spend < 40) or age > 70)
        lines.append(f"{age},{plan},{spend},{churned}")
    return ("\n".join(lines) + "\n").encode()


def submit(editor: Any, **extra: Any) -> Job:
    version = push("churn", churn_csv(), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("churn-training", owner=editor)
    params = {"epochs": 8, "hidden_units": [16], "learning_rate": 0.03}
    values = {"target": "churned", "trainer": "keras_mlp_classifier", "params": params, "seed": 7, **extra}
    return start_training_job(experiment, dataset_version=version, requested_by=editor, **values)


def test_a_training_job_fills_its_run_and_saves_a_servable_model(editor: Any) -> None:
    job = submit(editor)
    assert (job.queue, job.type) == ("training", "experiments.train")
    assert runner.execute(job.pk) == "succeeded", Job.objects.get(pk=job.pk).error
    job.refresh_from_db()
    run = Run.objects.get(run_uuid=job.result["run_id"])
    assert run.status == RunStatus.FINISHED and job.progress == 100
    params = dict(run.params.values_list("key", "value"))
    assert (params["trainer"], params["target"], params["seed"], params["hidden_units"]) == (
        "keras_mlp_classifier", "churned", "7", "[16]",
    )  # fmt: skip
    history = list(run.metrics.filter(key="loss").order_by("step").values_list("step", flat=True))
    assert history == list(range(8))  # one point per epoch, as it happened
    assert {"val_loss", "accuracy", "test_accuracy", "test_f1", "test_auc"} <= set(
        run.latest_metrics.values_list("key", flat=True)
    )
    assert job.result["test_accuracy"] > 0.6
    assert run.inputs.get().tags == [{"key": "mlflow.data.context", "value": "training"}]
    assert dict(run.tags.values_list("key", "value"))["portal.tensorflow"]

    from deployments.server import inputs, loader

    model = loader.load(f"{run.artifact_uri}/model")
    rows = [{"age": 75, "plan": "pro", "spend": 80.0}, {"age": 30, "plan": "basic", "spend": 10.0}]
    features = inputs.parse_mlflow(model, {"dataframe_records": rows})
    predicted = np.asarray(model.predict(features)).reshape(-1)
    assert predicted.shape == (2,) and np.all((predicted >= 0) & (predicted <= 1))


def test_the_same_data_params_and_seed_give_the_same_metrics(editor: Any) -> None:
    from datasets.models import DatasetVersion

    first = submit(editor)
    runner.execute(first.pk)
    experiment = tracking.create_experiment("again", owner=editor)
    second = start_training_job(experiment, dataset_version=DatasetVersion.objects.get(), target="churned",
                                trainer="keras_mlp_classifier", requested_by=editor, seed=7,
                                params={"epochs": 8, "hidden_units": [16], "learning_rate": 0.03})  # fmt: skip
    runner.execute(second.pk)
    a, b = Job.objects.get(pk=first.pk).result, Job.objects.get(pk=second.pk).result

    def curve(run_id: str, key: str) -> list[float]:
        return list(Run.objects.get(pk=run_id).metrics.filter(key=key).order_by("step").values_list("value", flat=True))

    for key in ("loss", "val_loss", "val_accuracy"):  # every epoch, not only the end
        assert curve(a["run_id"], key) == pytest.approx(curve(b["run_id"], key), abs=1e-6), key
    for key in ("test_accuracy", "test_f1", "test_auc"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key


def test_a_regressor_and_a_linear_model_train_too(editor: Any) -> None:
    job = submit(editor, target="spend", trainer="keras_linear_regressor", params={"epochs": 3})
    assert runner.execute(job.pk) == "succeeded", Job.objects.get(pk=job.pk).error
    assert {"test_rmse", "test_mae", "test_r2"} <= set(Job.objects.get(pk=job.pk).result)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"trainer": "xgboost"}, "trainer"),
        ({"params": {"epochs": 0}}, "params"),
        ({"params": {"hidden_units": "big"}}, "params"),
        ({"target": "nope"}, "target"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_requests_name_the_field(editor: Any, extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        submit(editor, **extra)
    assert field in caught.value.detail


def test_the_api_lists_trainers_and_queues_jobs_naming_bad_fields(editor: Any, viewer: Any) -> None:
    from django.test import Client

    from tests.conftest import bearer

    push("churn", churn_csv(), filename="churn.csv", author=editor)
    tracking.create_experiment("api-training", owner=editor)
    api = Client(**bearer(editor))
    trainers = {t["name"]: t for t in api.get("/api/v1/trainers/").json()["results"]}
    assert trainers["keras_mlp_classifier"]["params"]["epochs"] == {"type": "integer", "default": 20,
                                                                     "min_value": 1, "max_value": 1000}  # fmt: skip
    body = {"experiment": "api-training", "dataset": "churn", "version": 1, "target": "churned",
            "trainer": "keras_linear_classifier", "params": {"epochs": 2}}  # fmt: skip
    queued = api.post("/api/v1/training-jobs/", {**body, "timeout_seconds": 600, "max_attempts": 5},
                      content_type="application/json")  # fmt: skip
    job = Job.objects.get(pk=queued.json()["id"])
    assert queued.status_code == 202 and (job.queue, job.timeout_seconds, job.max_attempts) == ("training", 600, 5)
    for extra, field in (({"params": {"epochs": 0}}, "params.epochs"), ({"params": {"epoch": 2}}, "params.epoch"),
                         ({"version": 9}, "version"), ({"max_attempts": 0}, "max_attempts"),
                         ({"experiment": "ghost"}, "experiment"), ({"target": "nope"}, "target")):  # fmt: skip
        response = api.post("/api/v1/training-jobs/", {**body, **extra}, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["field"] == field, (extra, response.content)
    assert (
        Client(**bearer(viewer)).post("/api/v1/training-jobs/", body, content_type="application/json").status_code
        == 403
    )


def test_the_form_queues_a_job_and_its_page_shows_curves_and_scores(editor: Any, editor_client: Any) -> None:
    from datasets.models import DatasetVersion

    push("churn", churn_csv(), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("form-training", owner=editor)
    page = editor_client.get("/experiments/train/").content.decode()
    assert 'id="train-form"' in page and "Keras MLP classifier (classification)" in page and '"epochs": 20' in page
    form = {"experiment": experiment.pk, "version": DatasetVersion.objects.get().pk, "target": "churned",
            "trainer": "keras_mlp_classifier", "params": '{"epochs": 3}', "seed": "1"}  # fmt: skip
    bad = editor_client.post("/experiments/train/", {**form, "params": '{"epochs": -2}'}, follow=True)
    training = Job.objects.filter(type="experiments.train")
    assert "params.epochs: Ensure this value is greater than or equal to 1." in bad.content.decode()
    assert not training.exists()
    typo = editor_client.post("/experiments/train/", {**form, "params": '{"epoch": 3}'}, follow=True)
    assert "params.epoch: unknown parameter" in typo.content.decode() and not training.exists()
    response = editor_client.post("/experiments/train/", form)
    job = training.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/training/{job.pk}/"
    waiting = editor_client.get(f"/experiments/training/{job.pk}/").content.decode()
    assert "The curves appear here" in waiting and 'data-refresh="3"' in waiting
    runner.execute(job.pk)
    done = editor_client.get(f"/experiments/training/{job.pk}/").content.decode()
    assert 'id="curves-chart" data-figure="' in done and "test_accuracy" in done and "data-refresh" not in done
    assert 'href="/experiments/train/"' in editor_client.get("/experiments/").content.decode()


def test_the_trained_model_registers_from_its_job_page(editor: Any, editor_client: Any, viewer_client: Any) -> None:
    from registry.models import RegisteredModel

    job = submit(editor, params={"epochs": 2})
    runner.execute(job.pk)
    job.refresh_from_db()
    page = editor_client.get(f"/experiments/training/{job.pk}/").content.decode()
    assert 'id="register-form"' in page and 'value="churned-model"' in page
    response = editor_client.post("/models/register-run/", {"source": job.result["model"], "name": "churn"})
    assert response.status_code == 302 and response["Location"] == "/models/churn/"
    version = RegisteredModel.objects.get(name="churn").versions.get()
    assert version.run_id == job.result["run_id"]
    again = editor_client.post("/models/register-run/", {"source": job.result["model"], "name": "churn"})
    assert again.status_code == 302 and RegisteredModel.objects.get(name="churn").versions.count() == 2
    assert viewer_client.post("/models/register-run/", {"source": job.result["model"], "name": "x"}).status_code == 403
    bad = editor_client.post("/models/register-run/", {"source": "file:///etc/passwd", "name": "evil"}, follow=True)
    assert bad.status_code == 200 and not RegisteredModel.objects.filter(name="evil").exists()


def test_balanced_class_weights_weigh_each_class_inversely_to_its_count() -> None:
    from types import SimpleNamespace

    from experiments.training.job import _class_weight

    data = SimpleNamespace(task="classification", classes=["no", "yes"], y={"train": np.array([0] * 90 + [1] * 10)})
    assert _class_weight(data, {"class_weight": "balanced"}) == {0: 100 / (2 * 90), 1: 100 / (2 * 10)}
    assert _class_weight(data, {"class_weight": "none"}) is None
    assert _class_weight(SimpleNamespace(task="regression"), {"class_weight": "balanced"}) is None


def test_early_stopping_ends_training_before_the_last_epoch_and_class_weights_train(editor: Any) -> None:
    params = {"epochs": 60, "hidden_units": [8], "learning_rate": 0.05, "early_stopping_patience": 1,
              "class_weight": "balanced"}  # fmt: skip
    job = submit(editor, params=params)
    assert runner.execute(job.pk) == "succeeded", Job.objects.get(pk=job.pk).error
    run = Run.objects.get(run_uuid=Job.objects.get(pk=job.pk).result["run_id"])
    epochs = run.metrics.filter(key="loss").count()
    assert 2 <= epochs < 60  # val_loss stopped improving, so training stopped early
    assert dict(run.params.values_list("key", "value"))["class_weight"] == "balanced"


def test_the_form_takes_a_timeout_in_minutes(editor: Any, editor_client: Any) -> None:
    from datasets.models import DatasetVersion

    push("churn", churn_csv(), filename="churn.csv", author=editor)
    experiment = tracking.create_experiment("timeout-training", owner=editor)
    form = {"experiment": experiment.pk, "version": DatasetVersion.objects.get().pk, "target": "churned",
            "trainer": "keras_mlp_classifier", "params": "{}", "seed": "1"}  # fmt: skip
    training = Job.objects.filter(type="experiments.train")
    for bad in ("0", "-3", "soon", "20000"):
        page = editor_client.post("/experiments/train/", {**form, "timeout_minutes": bad}, follow=True)
        assert "timeout_minutes: from 1 minute to 7 days" in page.content.decode() and not training.exists()
    editor_client.post("/experiments/train/", {**form, "timeout_minutes": "2.5"})
    assert training.get().timeout_seconds == 150

"""Training on a real Celery worker (Redis, PostgreSQL): submitted over the API, live progress per epoch,
cancelled between batches (run KILLED), and carried on by another attempt after a SIGKILL (run FAILED, a
new run FINISHED)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.test import Client

from accounts.services import create_api_token
from experiments import services as tracking
from experiments.models import Run, RunStatus
from jobs.models import Job, JobStatus
from tests.datasets.factories import push
from tests.experiments.test_training import churn_csv
from tests.services import running, start_beat, start_worker, wait_until


def _start(editor: Any, epochs: int, tmp_path: Path, e2e_env: dict[str, str], settings: Any) -> tuple[Client, int]:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    e2e_env["ARTIFACT_ROOT"] = str(settings.ARTIFACT_ROOT)
    push("churn", churn_csv(3000), filename="churn.csv", author=editor)
    tracking.create_experiment("churn-e2e", owner=editor)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(editor, 'e2e').secret}")
    response = client.post("/api/v1/training-jobs/", {
        "experiment": "churn-e2e", "dataset": "churn", "version": 1, "target": "churned",
        "trainer": "keras_mlp_classifier", "params": {"epochs": epochs, "batch_size": 16}, "seed": 3,
    }, content_type="application/json")  # fmt: skip
    assert response.status_code == 202, response.content
    return client, int(response.json()["id"])


def test_a_training_job_is_cancelled_between_batches(
    e2e_env: dict[str, str], editor: Any, settings: Any, tmp_path: Path
) -> None:
    client, job_id = _start(editor, 200, tmp_path, e2e_env, settings)
    worker = start_worker(e2e_env)
    with running(worker):
        wait_until(lambda: Job.objects.get(pk=job_id).progress > 6, timeout=120, message="training to get going")
        assert client.post(f"/api/v1/jobs/{job_id}/cancel/").status_code in (200, 202)
        wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=60, message="the job to stop")
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELLED, (job.error, worker.output())
    run = Run.objects.get()
    assert run.status == RunStatus.KILLED and run.metrics.filter(key="loss").count() >= 1


def test_a_worker_killed_mid_training_leaves_a_failed_run_and_the_job_retried(
    e2e_env: dict[str, str], editor: Any, settings: Any, tmp_path: Path
) -> None:
    _client, job_id = _start(editor, 12, tmp_path, e2e_env, settings)
    beat = start_beat(e2e_env)
    doomed = start_worker(e2e_env, name="doomed")
    with running(beat, doomed):
        wait_until(lambda: Job.objects.get(pk=job_id).progress > 6, timeout=120, message="training to get going")
        doomed.kill()
        rescuer = start_worker(e2e_env, name="rescuer")
        with running(rescuer):
            wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=180, message="the retried job to end")
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), (job.error, rescuer.output())
    statuses = sorted(Run.objects.values_list("status", flat=True))
    assert statuses == [RunStatus.FAILED, RunStatus.FINISHED]
    assert job.result["run_id"] == Run.objects.get(status=RunStatus.FINISHED).run_uuid

"""Your own training script on a real Celery worker (Redis, PostgreSQL) logging into a live portal: the
founding document's MLflow example as `python founding_mlflow.py`, and a worker SIGKILLed mid-script that
takes its script with it (no orphan) while another attempt runs the script again."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from accounts.services import create_api_token
from experiments import services as tracking
from experiments.models import Param, Run, RunStatus
from jobs.models import Job, JobStatus
from tests.services import running, skip_or_fail, start_beat, start_worker, wait_until

pytestmark = pytest.mark.e2e


def _setup(e2e_env: dict[str, str], editor: Any, live_server: Any, settings: Any, tmp_path: Path) -> Client:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    e2e_env.update({"ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT), "SCRIPT_TRACKING_URI": live_server.url})
    tracking.create_experiment("scripts-e2e", owner=editor)
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(editor, 'e2e').secret}")


def test_the_founding_mlflow_example_runs_as_a_job_and_logs_into_its_run(
    e2e_env: dict[str, str], editor: Any, live_server: Any, settings: Any, tmp_path: Path
) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        skip_or_fail("tensorflow is not installed")
    client = _setup(e2e_env, editor, live_server, settings, tmp_path)
    response = client.post("/api/v1/script-jobs/", {"experiment": "scripts-e2e", "path": "founding_mlflow.py",
                                                    "args": ["3"]}, content_type="application/json")  # fmt: skip
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    worker = start_worker(e2e_env)
    with running(worker):
        wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=240, message="the script job to end")
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.SUCCEEDED, (job.error, job.log[-3000:], worker.output())
    run = Run.objects.get(run_uuid=job.result["run_id"])
    assert run.status == RunStatus.FINISHED and Param.objects.get(run=run, key="epochs").value == "3"
    assert "loss" in job.result["metrics"] and "Epoch 3/3" in job.log
    assert list(settings.ARTIFACT_ROOT.rglob("MLmodel")), "the model went through the portal into its store"


def test_a_killed_worker_takes_its_script_along_and_another_attempt_runs_it_again(
    e2e_env: dict[str, str], editor: Any, live_server: Any, settings: Any, tmp_path: Path
) -> None:
    client = _setup(e2e_env, editor, live_server, settings, tmp_path)
    script = tmp_path / "slow.py"
    script.write_text("import os, time\nprint('script pid', os.getpid(), flush=True)\ntime.sleep(8)\nprint('done')\n")
    with script.open("rb") as upload:
        response = client.post("/api/v1/script-jobs/", {"experiment": "scripts-e2e", "file": upload})
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]

    def script_pid() -> int | None:
        found = re.search(r"script pid (\d+)", Job.objects.get(pk=job_id).log.split("started on")[-1])
        return int(found.group(1)) if found else None

    beat = start_beat(e2e_env)
    doomed = start_worker(e2e_env, name="doomed")
    with running(beat, doomed):
        wait_until(lambda: script_pid() is not None, timeout=60, message="the script to start")
        pid = script_pid()
        assert pid is not None
        doomed.kill()

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(gone, timeout=10, message="the orphaned script to die with its worker")
        rescuer = start_worker(e2e_env, name="rescuer")
        with running(rescuer):
            wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=90, message="the retried job to end")
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), (job.error, rescuer.output())
    assert sorted(Run.objects.values_list("status", flat=True)) == [RunStatus.FAILED, RunStatus.FINISHED], job.log
    assert job.result["run_id"] == Run.objects.get(status=RunStatus.FINISHED).run_uuid and "done" in job.log

"""Your own training script as a job: only allowed or uploaded scripts, an argument list, a clean
environment with a short-lived token and the job's run, limits on time and memory, output in the job
log. The scripts run for real here (a child process logging through the real `mlflow` client into a
live portal); tests/e2e/test_script_e2e.py runs one on a real worker and kills that worker."""

from __future__ import annotations

import io
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from accounts.models import ApiToken
from experiments import services as tracking
from experiments.models import Experiment, Run, RunStatus
from experiments.training.services import allowed_script, start_script_job
from jobs import runner
from jobs.models import Job, JobStatus
from tests.conftest import bearer
from tests.services import wait_until

pytestmark = pytest.mark.e2e

LOGGING_SCRIPT = """\
import os, sys, mlflow
print("env:", sorted(k for k in os.environ if k.startswith(("MLFLOW", "DATABASE", "SECRET", "REDIS", "DJANGO"))))
print("own workdir:", os.path.basename(os.getcwd()).startswith("portal-script-") and os.getcwd() == os.environ["HOME"])
given = os.environ["MLFLOW_RUN_ID"]  # start_run() takes it out of the environment
with mlflow.start_run() as run:
    assert run.info.run_id == given
    mlflow.log_param("alpha", sys.argv[1])
    for epoch in range(3):
        mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
        print(f"Epoch {epoch + 1}/3", flush=True)
"""


@pytest.fixture
def scripts_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "allowed"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "train.py").write_text("print('hi')\n")
    (tmp_path / "outside.py").write_text("print('outside')\n")
    (folder / "link.py").symlink_to(tmp_path / "outside.py")
    settings.TRAINING_SCRIPT_DIRS = [folder.resolve()]
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    return folder


@pytest.mark.parametrize(
    "path", ["../outside.py", "/etc/passwd.py", "sub/../../outside.py", "link.py", "sub//train.py", "sub/train.txt",
             "missing.py", "sub\\train.py", "%2e%2e/outside.py", "sub/train.py\x00"],
)  # fmt: skip
def test_only_scripts_inside_the_allowed_directories_run(scripts_dir: Path, path: str) -> None:
    assert allowed_script(path) is None
    assert allowed_script("sub/train.py") == ((scripts_dir / "sub" / "train.py").resolve(), scripts_dir.resolve())


def test_the_api_lists_queues_and_refuses_scripts_naming_the_field(
    scripts_dir: Path, editor: Any, viewer: Any, settings: Any
) -> None:
    experiment = tracking.create_experiment("scripts", owner=editor)
    client = Client(**bearer(editor))
    assert client.get("/api/v1/script-jobs/").json() == {"results": ["sub/train.py"]}  # not the symlink out
    settings.SCRIPT_MAX_BYTES = 100
    cases = [({"path": "../outside.py"}, "path"), ({}, "file"), ({"path": "sub/train.py", "args": "x"}, "args"),
             ({"path": "sub/train.py", "args": [1]}, "args"), ({"path": "sub/train.py", "memory_mb": 10}, "memory_mb"),
             ({"experiment": "nope"}, "experiment")]  # fmt: skip
    for body, field in cases:
        response = client.post(
            "/api/v1/script-jobs/", {"experiment": "scripts", **body}, content_type="application/json"
        )
        assert response.status_code == 400 and response.json()["error"]["field"] == field, (body, response.content)
    big = io.BytesIO(b"#" * 101)
    big.name = "big.py"
    response = client.post("/api/v1/script-jobs/", {"experiment": "scripts", "file": big})
    assert response.status_code == 400 and "SCRIPT_MAX_BYTES" in response.json()["error"]["message"]
    assert not list(settings.ARTIFACT_ROOT.rglob("*"))  # nothing kept
    viewer_post = Client(**bearer(viewer)).post(
        "/api/v1/script-jobs/", {"experiment": "scripts", "path": "sub/train.py"}, content_type="application/json"
    )
    assert viewer_post.status_code == 403
    assert not Job.objects.exists()

    upload = io.BytesIO(b"print('uploaded')\n")
    upload.name = "mine.py"
    created = client.post("/api/v1/script-jobs/", {"experiment": "scripts", "file": upload, "args": '["--x", "1"]'})
    assert created.status_code == 202, created.content
    job = Job.objects.get(pk=created.json()["id"])
    assert (job.type, job.queue, job.params["args"], job.params["name"]) == (
        "experiments.script", "training", ["--x", "1"], "mine.py",
    )  # fmt: skip
    assert (settings.ARTIFACT_ROOT / "scripts" / job.params["upload"]).read_bytes() == b"print('uploaded')\n"
    assert job.params["experiment_id"] == experiment.pk and job.timeout_seconds == settings.SCRIPT_TIMEOUT_SECONDS


def _job(editor: Any, source: str, live_server: Any, settings: Any, **extra: Any) -> Job:
    settings.SCRIPT_TRACKING_URI = live_server.url
    experiment = _experiment(editor)
    upload = SimpleUploadedFile("train.py", textwrap.dedent(source).encode())
    return start_script_job(experiment, requested_by=editor, upload=upload, **extra)


def _experiment(editor: Any) -> Any:
    return Experiment.objects.filter(name="script-runs").first() or tracking.create_experiment(
        "script-runs", owner=editor
    )


def test_a_script_logs_into_the_jobs_run_with_a_clean_environment_and_a_token_that_dies_with_it(
    scripts_dir: Path, editor: Any, live_server: Any, settings: Any
) -> None:
    job = _job(editor, LOGGING_SCRIPT, live_server, settings, args=["0.5"])
    assert runner.execute(job.pk) == "succeeded", Job.objects.get(pk=job.pk).error
    job.refresh_from_db()
    run = Run.objects.get(run_uuid=job.result["run_id"])
    assert run.status == RunStatus.FINISHED and dict(run.params.values_list("key", "value")) == {"alpha": "0.5"}
    assert list(run.metrics.filter(key="loss").order_by("step").values_list("value", flat=True)) == [1.0, 0.5, 1 / 3]
    assert job.result["metrics"]["loss"] == pytest.approx(1 / 3) and job.progress == 100
    assert "env: ['MLFLOW_EXPERIMENT_ID', 'MLFLOW_HTTP_REQUEST_MAX_RETRIES', 'MLFLOW_RUN_ID'," in job.log
    assert "'MLFLOW_TRACKING_TOKEN', 'MLFLOW_TRACKING_URI']" in job.log and "own workdir: True" in job.log
    assert "Epoch 3/3" in job.log
    token = ApiToken.objects.get(name=f"script job #{job.pk}")
    assert token.revoked_at is not None and token.expires_at is not None
    stored = list(settings.ARTIFACT_ROOT.rglob("code/train.py"))
    assert stored and "mlflow.start_run()" in stored[0].read_text()  # what ran is kept with the run


@pytest.mark.parametrize(
    ("source", "extra", "reason"),
    [
        ("import sys; print('bad things'); sys.exit(3)", {}, "the script exited with code 3"),
        ("import time\nwhile True: time.sleep(0.1)", {"timeout_seconds": 2}, "timed out after 2s"),
        ("x = bytearray(512 * 1024 * 1024)", {"memory_mb": 200}, "out of memory (limit 200 MB)"),
    ],
)
def test_a_script_that_fails_runs_too_long_or_too_big_fails_its_job_and_run(
    scripts_dir: Path, editor: Any, live_server: Any, settings: Any, source: str, extra: dict[str, Any], reason: str
) -> None:
    job = _job(editor, source, live_server, settings, **extra)
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and reason in job.error, job.error
    assert Run.objects.get().status == RunStatus.FAILED
    assert ApiToken.objects.get().revoked_at is not None


def test_a_cancelled_script_is_stopped_and_its_run_killed(
    scripts_dir: Path, editor: Any, live_server: Any, settings: Any
) -> None:
    source = "import time\nprint('started', flush=True)\nwhile True: time.sleep(0.1)"
    job = _job(editor, source, live_server, settings)
    settings.JOB_HEARTBEAT_INTERVAL = 0.2

    def click_cancel() -> None:  # the user clicks Cancel while the script runs
        try:
            wait_until(lambda: "started" in Job.objects.get(pk=job.pk).log, timeout=30, message="the script")
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        finally:
            connection.close()

    clicker = threading.Thread(target=click_cancel)
    clicker.start()
    assert runner.execute(job.pk) == "cancelled"
    clicker.join()
    assert Run.objects.get().status == RunStatus.KILLED


def test_the_form_runs_an_allowed_script_and_the_job_page_shows_its_log(
    scripts_dir: Path, editor: Any, editor_client: Any, viewer_client: Any, live_server: Any, settings: Any
) -> None:
    settings.SCRIPT_TRACKING_URI = live_server.url
    (scripts_dir / "log.py").write_text(LOGGING_SCRIPT)
    experiment = _experiment(editor)
    page = editor_client.get("/experiments/scripts/new/").content.decode()
    assert 'id="script-form"' in page and '<option value="log.py">' in page and live_server.url in page
    bad = editor_client.post("/experiments/scripts/new/", {"experiment": experiment.pk, "path": "log.py",
                                                            "args": "'unclosed"}, follow=True)  # fmt: skip
    assert "args: No closing quotation" in bad.content.decode() and not Job.objects.exists()
    assert viewer_client.post("/experiments/scripts/new/", {"experiment": experiment.pk}).status_code == 403
    form = {"experiment": experiment.pk, "path": "log.py", "args": "'two words'", "timeout_minutes": "5"}
    response = editor_client.post("/experiments/scripts/new/", form)
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/training/{job.pk}/"
    assert job.params["args"] == ["two words"] and job.timeout_seconds == 300
    runner.execute(job.pk)
    done = editor_client.get(response["Location"]).content.decode()
    assert "Script job #" in done and 'id="curves-chart"' in done and "Epoch 3/3" in done
    assert "python log.py" in done
    assert sys.executable not in done  # the page shows the command, not the worker's paths


def test_portal_processes_are_not_dumpable_so_a_script_cannot_read_their_environment() -> None:
    from mlops_portal.apps import is_protected

    # /proc/<pid>/environ of a non-dumpable process is closed to other processes of the same user.
    assert sys.platform != "linux" or is_protected()

"""The `experiments.script` job: run a user's own training script (`python train.py`) against the portal.

The script runs in a child process started from an argument list (never a shell string), in an empty
working directory, with an environment that holds nothing of the portal's (no database URL, no secret
key): only `MLFLOW_TRACKING_URI`, a token that expires with the job (and is revoked when it ends), and
`MLFLOW_RUN_ID`/`MLFLOW_EXPERIMENT_ID`, so the script's `mlflow.start_run()` logs into the job's run.
Its address space is capped (`memory_mb`), it is killed at the job's timeout or on cancel, and it dies
with the worker (PR_SET_PDEATHSIG), so a killed worker leaves no orphan; the next attempt marks the dead
attempt's run FAILED, as training jobs do. Output streams into the job log; Keras's "Epoch k/N" lines
move the progress bar.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.services import create_api_token, revoke_api_token
from experiments import artifacts
from experiments import services as tracking
from experiments.handlers import JOB_TAG
from experiments.models import Experiment, Run, RunStatus
from experiments.services import now_ms
from experiments.training.job import fail_earlier_attempts
from jobs.models import JobStatus
from jobs.runner import JobContext, JobStopped

EPOCH = re.compile(rb"Epoch (\d+)/(\d+)")
FLUSH_SECONDS = 0.5
LAUNCHER = Path(__file__).with_name("launch.py")


def script_file(params: dict[str, Any]) -> Path | None:
    """Where the job's script is: an upload in the artifact store, or a file under an allowed directory.
    Checked again here, in the worker, in case the settings changed since the job was queued."""
    if params.get("upload"):
        path = (settings.ARTIFACT_ROOT / "scripts" / params["upload"]).resolve()
        root = (settings.ARTIFACT_ROOT / "scripts").resolve()
    else:
        from experiments.training.services import allowed_script

        found = allowed_script(params.get("path", ""))
        if found is None:
            return None
        path, root = found
    return path if path.is_relative_to(root) and path.is_file() else None


def _environment(workdir: Path, token: str, run: Run) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "", "MLFLOW_TRACKING_URI": settings.SCRIPT_TRACKING_URI,
        "MLFLOW_TRACKING_TOKEN": token, "MLFLOW_RUN_ID": run.run_uuid,
        "MLFLOW_EXPERIMENT_ID": str(run.experiment_id), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    }  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script's process group, SIGKILL if it is still there after 5 s."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


class _Output(threading.Thread):
    """Reads the script's output so a chatty script never blocks on a full pipe."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[bytes] = []
        self.tail: list[str] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            with self.lock:
                self.lines.append(line[:4000])

    def take(self) -> list[bytes]:
        with self.lock:
            lines, self.lines = self.lines, []
        self.tail = (self.tail + [line.decode(errors="replace").rstrip() for line in lines])[-20:]
        return lines


def run_script(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    experiment = Experiment.objects.filter(pk=p["experiment_id"]).first()
    user = get_user_model().objects.filter(pk=ctx.job.requested_by_id, is_active=True).first()
    if experiment is None or user is None:
        return {"skipped": "the experiment or the user who asked was deleted or deactivated"}
    script = script_file(p)
    if script is None:
        raise JobStopped(JobStatus.FAILED, f"the script {p.get('name')!r} is not there or no longer allowed")
    fail_earlier_attempts(ctx.job.pk)
    run = tracking.create_run(
        experiment, user_id=user.get_username(), start_time=None, run_name=p.get("run_name") or None,
        tags=[(JOB_TAG, str(ctx.job.pk)), ("mlflow.source.name", p["name"]), ("mlflow.source.type", "JOB")],
    )  # fmt: skip
    lifetime = timedelta(seconds=(ctx.job.timeout_seconds or settings.SCRIPT_TIMEOUT_SECONDS) + 600)
    issued = create_api_token(user, f"script job #{ctx.job.pk}", expires_at=timezone.now() + lifetime)
    workdir = Path(tempfile.mkdtemp(prefix=f"portal-script-{ctx.job.pk}-"))
    status = RunStatus.FAILED
    try:
        code_dir = artifacts.resolve(artifacts.relative_of_uri(run.artifact_uri)) / "code"
        code_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(script, code_dir / Path(p["name"]).name)  # what ran, next to what it logged
        memory = str(int(p.get("memory_mb", settings.SCRIPT_MEMORY_MB)))
        args = [sys.executable, "-I", str(LAUNCHER), str(os.getpid()), memory, str(script), *p.get("args", [])]
        ctx.log(f"run {run.run_uuid}: python {p['name']} {' '.join(p.get('args', []))}".rstrip())
        ctx.progress(2, "starting the script")
        proc = subprocess.Popen(
            args, cwd=workdir, env=_environment(workdir, issued.secret, run), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        output = _Output(proc)
        output.start()
        started, lines_seen = time.monotonic(), 0
        try:
            while True:
                done = proc.poll() is not None
                if done:
                    output.join(timeout=5)
                lines = output.take()
                if lines:
                    lines_seen += len(lines)
                    ctx.log(b"".join(lines).decode(errors="replace").rstrip("\n"))
                    epochs = [EPOCH.search(line) for line in lines]
                    last = next((m for m in reversed(epochs) if m), None)
                    if last:
                        k, n = int(last.group(1)), max(int(last.group(2)), 1)
                        ctx.progress(5 + 90 * min(k, n) / n, f"epoch {k} of {n}")
                    else:
                        ctx.progress(
                            5, f"running for {int(time.monotonic() - started)} s, {lines_seen} lines of output"
                        )
                else:
                    ctx.checkpoint()  # a cancel or the timeout stops the script here
                if done:
                    break
                time.sleep(FLUSH_SECONDS)
        except JobStopped as stop:
            _stop(proc)
            ctx.log(b"".join(output.take()).decode(errors="replace").rstrip("\n") or "(no more output)")
            status = RunStatus.KILLED if stop.status == JobStatus.CANCELLED else RunStatus.FAILED
            raise
        code = proc.returncode
        if code != 0:
            tail = "\n".join(output.tail[-5:])
            reason = f"the script exited with code {code}"
            if code < 0:
                reason = f"the script was killed by signal {-code}"
            if "MemoryError" in tail or "std::bad_alloc" in tail:
                reason += f" after running out of memory (limit {p.get('memory_mb')} MB)"
            raise JobStopped(JobStatus.FAILED, f"{reason}:\n{tail}")
        status = RunStatus.FINISHED
        run.refresh_from_db()
        metrics = dict(run.latest_metrics.values_list("key", "value"))
        ctx.progress(99, "finished")
        return {"run_id": run.run_uuid, "metrics": metrics, "lines": lines_seen}
    finally:
        if "proc" in locals() and proc.poll() is None:  # the job ended some other way: the script goes too
            _stop(proc)
        revoke_api_token(issued.token, actor=None)
        shutil.rmtree(workdir, ignore_errors=True)
        _end_run(run.pk, status)


def _end_run(run_id: str, status: str) -> None:
    """The run ends as the job did, unless the script ended it the same way itself."""
    run = Run.objects.filter(pk=run_id, lifecycle_stage="active").first()
    if run is not None and run.status != status and (run.status == RunStatus.RUNNING or status != RunStatus.FINISHED):
        tracking.update_run(run, status=status, end_time=now_ms(), run_name=None)

"""A canary rollout with every real part: a Celery worker and beat on Redis, the model server process and
PostgreSQL. Traffic flows the whole time; the worker is SIGKILLed mid-bake and another one carries on."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deployments import services
from deployments.models import PredictionLog, Rollout, RolloutStatus, Strategy
from registry.models import RegisteredModel
from tests.deployments.conftest import add_version
from tests.deployments.test_rollouts import GOOD
from tests.deployments.test_serve_models_e2e import free_port, get
from tests.services import Process, child_env, require_postgres, running, start_beat, start_worker, wait_until

pytestmark = pytest.mark.e2e


class Traffic(threading.Thread):
    """Single-row predictions in a loop, counting the answers by status and by model version."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.statuses: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        body = json.dumps({"instances": [[1.0, 1.0]]}).encode()
        while not self.stop.is_set():
            request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.stop.wait(0.02)


def rollout_ended(pk: int) -> bool:
    return not Rollout.objects.get(pk=pk).is_active


def test_a_canary_is_walked_to_full_traffic_through_a_worker_crash_without_failing_a_request(
    transactional_db: None,
    tmp_path: Path,
    store: Path,
    registered_model: RegisteredModel,
    editor: Any,
) -> None:
    require_postgres()
    add_version(registered_model, editor, GOOD)
    add_version(registered_model, editor, GOOD)
    deployment = services.create_deployment(
        "churn", registered_model, "1", owner=editor, strategy=Strategy.CANARY, canary_steps=[50, 100],
        bake_seconds=6, min_canary_requests=5, max_error_rate=0.2,
    )  # fmt: skip
    env = child_env(
        tmp_path, ARTIFACT_ROOT=str(store), MODEL_SERVER_POLL_SECONDS="0.3", MODEL_SERVER_LOG_FLUSH_SECONDS="0.2",
        ROLLOUT_TICK_SECONDS="0.2",
    )  # fmt: skip
    port = free_port()
    server = Process("modelserver", [sys.executable, "manage.py", "serve_models", "--port", str(port)], env)
    beat = start_beat(env)
    worker = start_worker(env, name="doomed")
    base = f"http://127.0.0.1:{port}"
    with running(server, beat, worker):
        first = services.deploy(deployment, 1, actor=editor)
        wait_until(lambda: rollout_ended(first.pk), timeout=120, message="the first deploy to finish")
        first.refresh_from_db()
        assert first.status == RolloutStatus.SUCCEEDED, (first.reason, worker.output(), server.output())
        wait_until(lambda: get(f"{base}/ready")[0] == 200, timeout=60, message="the model server to be ready")

        traffic = Traffic(f"{base}/v1/models/churn:predict")
        traffic.start()
        try:
            second = services.deploy(deployment, 2, actor=editor)
            wait_until(
                lambda: (
                    Rollout.objects.get(pk=second.pk).step_index == 0
                    and Rollout.objects.get(pk=second.pk).baked_seconds > 1
                ),
                timeout=120,
                message="the canary to take half the traffic and bake",
            )
            worker.kill()  # SIGKILL mid-bake: no cleanup, the job's heartbeat stops
            rescuer = start_worker(env, name="rescuer")
            with running(rescuer):
                wait_until(lambda: rollout_ended(second.pk), timeout=120, message="the rollout to be carried on")
            traffic.stop.set()
            traffic.join(timeout=10)
        finally:
            traffic.stop.set()

    second.refresh_from_db()
    assert second.status == RolloutStatus.SUCCEEDED, (second.reason, rescuer.output())
    assert second.job.attempts == 2 and "rescuer" in second.job.worker
    assert [(r.model_version.version, r.traffic_weight) for r in services.active_revisions(deployment)] == [(2, 100)]
    weights = [
        e.detail["traffic_weight"]
        for e in deployment.events.filter(kind="traffic_shifted", detail__rollout=second.pk).order_by("id")
    ]
    assert weights == [50, 100]  # the rescuer resumed at 50 %, it did not start over
    assert set(traffic.statuses) == {200}, traffic.statuses  # no request failed through swaps and the crash
    arms = set(PredictionLog.objects.filter(deployment=deployment).values_list("model_version", "arm").distinct())
    assert {(1, "stable"), (2, "canary")} <= arms
    assert second.health["candidate"]["requests"] >= 5 and second.health["candidate"]["errors"] == 0

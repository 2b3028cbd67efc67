"""Monitoring end to end: a model server process under simulated traffic, a real Celery beat and worker on
Redis and PostgreSQL; beat rolls the log up and evaluates an alert rule, the worker sends its signed
webhook, and the charts' data shows the traffic."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from deployments import services
from monitoring import services as monitoring
from monitoring.models import Alert, MinuteRollup
from registry import services as registry
from tests.deployments.conftest import add_version, serve_now
from tests.deployments.test_rollouts import GOOD
from tests.deployments.test_serve_models_e2e import free_port, get
from tests.monitoring.test_alerts import Receiver, receiver  # noqa: F401  (a fixture)
from tests.services import Process, child_env, require_postgres, running, start_beat, start_worker, wait_until

pytestmark = pytest.mark.e2e


def test_traffic_rolls_up_and_an_alert_fires_a_signed_webhook(
    transactional_db: None,
    tmp_path: Path,
    editor: Any,
    settings: Any,
    receiver: str,  # noqa: F811
) -> None:
    require_postgres()
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    model = registry.create_registered_model("clf", owner=editor)
    add_version(model, editor, GOOD)
    deployment = services.create_deployment("clf-prod", model, "1", owner=editor)
    serve_now(deployment, 1, actor=editor)
    rule = monitoring.create_alert_rule(
        deployment, owner=editor, name="busy", metric="request_rate", comparator=">", threshold=0.3,
        window_minutes=2, min_requests=1, webhook_url=receiver,
    )  # fmt: skip
    env = child_env(
        tmp_path, ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), MODEL_SERVER_POLL_SECONDS="0.5",
        ROLLUP_INTERVAL_SECONDS="1", ALERT_EVAL_SECONDS="5", WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
    )  # fmt: skip
    port = free_port()
    server = Process("modelserver", [sys.executable, "manage.py", "serve_models", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    beat = start_beat(env)
    worker = start_worker(env)
    with running(server, beat, worker):
        wait_until(lambda: get(f"{url}/ready")[0] == 200, timeout=120, message="the model server to be ready")
        call_command("simulate_traffic", deployment="clf-prod", rps=20, duration=5, url=url, stdout=None)
        wait_until(
            lambda: sum(MinuteRollup.objects.filter(deployment=deployment).values_list("requests", flat=True)) == 100,
            timeout=60, message="beat to roll the 100 predictions up",
        )  # fmt: skip
        wait_until(lambda: Alert.objects.filter(rule=rule).exists(), timeout=60, message="the alert to open")
        wait_until(lambda: Receiver.received, timeout=60, message="the worker to send the webhook")
    headers, body = Receiver.received[0]
    signature = hmac.new(rule.webhook_secret.encode(), headers["X-Portal-Timestamp"].encode() + b"." + body,
                         hashlib.sha256).hexdigest()  # fmt: skip
    assert headers["X-Portal-Signature"] == f"sha256={signature}"
    payload = json.loads(body)
    assert (payload["event"], payload["deployment"], payload["rule"]["name"]) == ("alert.opened", "clf-prod", "busy")
    alert = Alert.objects.get(rule=rule)
    assert alert.value > 0.3 and any(n["channel"] == "webhook" and n["status"] == "sent" for n in alert.notifications)

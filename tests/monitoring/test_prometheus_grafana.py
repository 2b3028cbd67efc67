"""Prometheus and Grafana for deployments: the generated dashboard (with the founding document's "Model
Latency" panel) and prometheus.yml, checked by promtool, and a real Prometheus scraping a live model
server under traffic, whose mean latency must agree with the portal's own rollups within 10 %."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client

from deployments import services
from deployments.models import PredictionLog
from monitoring import grafana, rollups
from monitoring.models import MinuteRollup
from registry import services as registry
from tests.deploy.compose import DEPLOY
from tests.deploy.test_monitoring_config import _free_port, _get_json, tool
from tests.deployments.conftest import add_version, serve_now
from tests.deployments.test_rollouts import GOOD
from tests.services import Process, child_env, require_postgres, running, wait_until

PROVISIONED = DEPLOY / "grafana" / "dashboards" / "model-deployments.json"
FOUNDING = "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])"


def expressions(board: dict[str, Any]) -> dict[str, str]:
    return {panel["title"]: target["expr"] for panel in board["panels"] for target in panel["targets"]}


def test_the_provisioned_dashboard_is_the_generated_one_with_a_deployment_picker() -> None:
    board = json.loads(PROVISIONED.read_text())
    assert board == json.loads(json.dumps(grafana.dashboard("$deployment", title="Model deployments",
                                                            uid="mlops-model-deployments")))  # fmt: skip
    assert board["templating"]["list"][0]["name"] == "deployment"


def test_the_model_latency_panel_is_the_founding_documents_expression_for_one_deployment() -> None:
    latency = expressions(grafana.dashboard("churn-prod"))["Model Latency"]
    assert latency.replace('{deployment="churn-prod"}', "") == FOUNDING
    assert set(expressions(grafana.dashboard("x"))) == {
        "Model Latency", "p95 latency", "Requests per second", "Error rate", "Accuracy", "Labelled predictions",
        "Drift (PSI)",
    }  # fmt: skip


def test_every_expression_and_the_generated_prometheus_config_pass_promtool(tmp_path: Path, db: None) -> None:
    promtool = tool("promtool")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"panel:{i}", "expr": expr.replace("$deployment", "x")}
        for i, expr in enumerate(expressions(json.loads(PROVISIONED.read_text())).values())
    ]}]}  # fmt: skip
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = grafana.prometheus_config([], portal="web:8000")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(tmp_path / "token")
    (tmp_path / "token").write_text("x")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_and_config_download_from_the_monitoring_pages(editor: Any, store: Any) -> None:
    model = registry.create_registered_model("churn", owner=editor)
    add_version(model, editor)
    serve_now(services.create_deployment("2026-churn", model, "1", owner=editor), actor=editor)
    client = Client()
    client.force_login(editor)
    board = client.get("/monitoring/2026-churn/grafana.json")
    assert board.status_code == 200 and board.json()["title"] == "Deployment 2026-churn"
    config = yaml.safe_load(client.get("/monitoring/prometheus.yml").content)
    assert config["scrape_configs"][1]["static_configs"][0]["targets"] == ["d-2026-churn:80"]
    assert 'id="grafana-link"' in client.get("/monitoring/2026-churn/").content.decode()


def test_the_portal_exports_accuracy_from_feedback_for_prometheus(editor: Any, store: Any, predict: Any) -> None:
    from django.utils import timezone

    from accounts.services import create_api_token
    from monitoring import services as monitoring

    predict(timezone.now(), request_id="a", outputs=[[0.9]])
    predict(timezone.now(), request_id="b", outputs=[[0.9]])
    monitoring.record_feedback([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}], actor=editor)
    rollups.fill_rollups()
    token = create_api_token(editor, "prometheus").secret
    body = Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/metrics").content.decode()
    assert 'mlops_model_accuracy{arm="stable",deployment="churn-prod",model_version="1"} 0.5' in body
    assert 'mlops_model_labelled_predictions{arm="stable",deployment="churn-prod",model_version="1"} 2.0' in body


@pytest.mark.e2e
def test_prometheus_and_the_rollups_agree_on_the_mean_latency_of_live_traffic(
    transactional_db: None, tmp_path: Path, editor: Any, settings: Any
) -> None:
    require_postgres()
    prometheus = tool("prometheus")
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    model = registry.create_registered_model("clf", owner=editor)
    add_version(model, editor, GOOD)
    deployment = services.create_deployment("clf-prod", model, "1", owner=editor)
    serve_now(deployment, 1, actor=editor)
    env = child_env(tmp_path, ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), MODEL_SERVER_POLL_SECONDS="0.5",
                    MODEL_SERVER_LOG_FLUSH_SECONDS="0.2")  # fmt: skip
    server_port, prometheus_port = _free_port(), _free_port()
    server = Process("modelserver", [sys.executable, "manage.py", "serve_models", "--port", str(server_port)], env)
    config = grafana.prometheus_config([deployment], targets={"clf-prod": f"127.0.0.1:{server_port}"})
    config["global"]["scrape_interval"] = "1s"
    config["scrape_configs"] = config["scrape_configs"][1:]  # the model server only: the portal is not running
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (tmp_path / "prometheus.log").open("w") as log:
        scraper = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"
    url = f"http://127.0.0.1:{server_port}"
    try:
        with running(server):
            wait_until(lambda: _ready(url), timeout=120, message="the model server to load the model")
            # The histogram's series exist from the first prediction on, and rate() counts from its first
            # scrape: one warm-up request, scraped, before the traffic; it is left out of both sides below.
            call_command("simulate_traffic", deployment="clf-prod", rps=1, duration=1, url=url, stdout=None)
            wait_until(lambda: _query(api, "http_request_duration_seconds_count"), timeout=60,
                       message="a first scrape of the prediction histogram")  # fmt: skip
            time.sleep(1.5)
            warm_up = PredictionLog.objects.get(deployment=deployment)
            call_command("simulate_traffic", deployment="clf-prod", rps=50, duration=8, url=url, stdout=None)
            time.sleep(3)  # two more scrapes, and the model server's last log flush
            expression = grafana.model_latency_expression("clf-prod")
            result = _query(api, f"sum({expression.split(' / ')[0]}) / sum({expression.split(' / ')[1]})")
        assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
        promql_ms = float(result[0]["value"][1]) * 1000
        rollups.fill_rollups()
        totals = MinuteRollup.objects.filter(deployment=deployment).aggregate(
            latency=Sum("latency_sum_ms"), requests=Sum("requests")
        )
        rollup_ms = (totals["latency"] - warm_up.latency_ms) / (totals["requests"] - 1)
        assert totals["requests"] == PredictionLog.objects.filter(deployment=deployment).count() == 401
        assert abs(promql_ms - rollup_ms) <= 0.1 * rollup_ms, (promql_ms, rollup_ms)
    finally:
        scraper.terminate()
        scraper.wait(timeout=20)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:  # noqa: S310  (a local server)
            return bool(response.status == 200)
    except OSError:
        return False


def _query(api: str, expr: str) -> list[Any]:
    try:
        return list(_get_json(f"{api}/query?{urllib.parse.urlencode({'query': expr})}")["data"]["result"])
    except (OSError, KeyError):
        return []

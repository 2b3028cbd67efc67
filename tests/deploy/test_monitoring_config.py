"""Prometheus scrapes the portal with a token; Grafana shows it through the provisioned data source."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from jobs.models import Job, JobStatus
from tests.conftest import REQUIRE_SERVICES
from tests.deploy.compose import DEPLOY, load_compose, mount_of

SERVICES = load_compose()["services"]
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mlops-portal.json"
# The founding document's Grafana "Model Latency" panel.
LATENCY_EXPRESSION = "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])"


def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_CONFIG.read_text())  # type: ignore[no-any-return]


def portal_job(config: dict[str, Any]) -> dict[str, Any]:
    jobs = [job for job in config["scrape_configs"] if "web:8000" in job["static_configs"][0]["targets"]]
    assert len(jobs) == 1, "exactly one scrape job targets web:8000"
    return jobs[0]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panel_targets() -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{name} is not installed (PORTAL_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(f"{name} is not installed")
    return path


def test_prometheus_scrapes_the_portal_metrics_with_a_bearer_token() -> None:
    job = portal_job(prometheus_config())
    assert job["static_configs"][0]["targets"] == ["web:8000"]
    assert job["metrics_path"] == "/metrics"
    assert job.get("scheme", "http") == "http"
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"].startswith("/")
    assert "credentials" not in job["authorization"], "the token lives in a file, never in the config"


def test_prometheus_reads_the_config_file_from_the_repository() -> None:
    mount, relative = mount_of(SERVICES["prometheus"], "/etc/prometheus/prometheus.yml")
    assert relative == ""
    assert mount.host_path == PROMETHEUS_CONFIG
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]


def test_prometheus_scrapes_the_model_server_service() -> None:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    assert jobs["modelserver"]["static_configs"][0]["targets"] == ["modelserver:8001"]
    assert jobs["modelserver"]["metrics_path"] == "/metrics"
    assert "modelserver" in SERVICES


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = tool("promtool")
    token = tmp_path / "token"
    token.write_text("mlp_" + secrets.token_urlsafe(32))
    config = prometheus_config()
    portal_job(config)["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_grafana_datasource_points_at_the_prometheus_service() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    url = urllib.parse.urlsplit(source["url"])
    assert source["type"] == "prometheus"
    assert url.hostname == "prometheus" and url.hostname in SERVICES
    assert url.port == 9090  # Prometheus's listen port in its image
    assert source["isDefault"] is True
    mount, relative = mount_of(SERVICES["grafana"], "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert (mount.host_path / relative) == DATASOURCES


def test_grafana_loads_the_dashboards_directory_of_the_repository() -> None:
    (provider_file,) = DASHBOARD_PROVIDERS.glob("*.yml")
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["type"] == "file"
    mount, relative = mount_of(SERVICES["grafana"], provider["options"]["path"])
    assert (mount.host_path / relative) == DASHBOARD.parent
    mount, relative = mount_of(SERVICES["grafana"], f"/etc/grafana/provisioning/dashboards/{provider_file.name}")
    assert (mount.host_path / relative) == provider_file


def test_the_dashboard_shows_the_founding_documents_latency_expression() -> None:
    assert dashboard()["title"] == "MLOps Portal"
    expressions = {title: target["expr"] for title, target in panel_targets()}
    assert expressions["Request latency"] == LATENCY_EXPRESSION
    assert "histogram_quantile(0.95" in expressions["Request latency p95"]
    assert "http_request_duration_seconds_bucket" in expressions["Request latency p95"]
    assert "mlops_jobs" in expressions["Jobs"]


def test_every_panel_queries_the_provisioned_datasource() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    for panel in dashboard()["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_the_dashboard_panels_have_unique_ids_and_ref_ids() -> None:
    panels = dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"panel:{index}", "expr": target["expr"]} for index, (_, target) in
                          enumerate(panel_targets())],
            }
        ]
    }  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_dashboard_queries_is_exposed_by_the_portal(db: None, tmp_path: Path) -> None:
    Job.objects.create(type="test.sleep", status=JobStatus.SUCCEEDED)
    Job.objects.create(type="test.sleep", status=JobStatus.RUNNING)
    secret = "mlp_" + secrets.token_urlsafe(32)
    (tmp_path / "token").write_text(secret)
    call_command("ensure_service_token", "prometheus", "--secret-file", str(tmp_path / "token"), stdout=None)
    Client().get("/health")

    body = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {secret}").content.decode()

    exposed = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}
    queried = {
        name
        for _, target in panel_targets()
        for name in re.findall(r"\b(http_request_duration_seconds_\w+|mlops_\w+)\b", target["expr"])
    }
    assert queried, "the dashboard queries the portal's metrics"
    assert queried <= exposed, f"the dashboard queries series the portal does not expose: {queried - exposed}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (a local Prometheus)
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.mark.e2e
def test_a_real_prometheus_scrapes_the_portal_with_the_registered_token(
    transactional_db: None, live_server: Any, tmp_path: Path
) -> None:
    """The deployed configuration, pointed at a live portal, with only the target and file paths changed."""
    prometheus = tool("prometheus")
    token = tmp_path / "token"
    token.write_text("mlp_" + secrets.token_urlsafe(32) + "\n")
    call_command("ensure_service_token", "prometheus", "--secret-file", str(token), stdout=None)

    config = prometheus_config()
    config["global"]["scrape_interval"] = "1s"
    job = portal_job(config)
    job["static_configs"][0]["targets"] = [urllib.parse.urlsplit(live_server.url).netloc]
    job["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL, stderr=log_file,
        )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        target: dict[str, Any] = {}
        latency: list[Any] = []
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                targets = _get_json(f"{api}/targets")["data"]["activeTargets"]
                target = next(t for t in targets if t["labels"]["job"] == job["job_name"])
                query = urllib.parse.urlencode({"query": LATENCY_EXPRESSION})
                latency = _get_json(f"{api}/query?{query}")["data"]["result"]
            except (OSError, StopIteration, KeyError):
                continue
            if target.get("health") == "down":
                break
            if target.get("health") == "up" and latency:
                break
        assert target.get("health") == "up", f"scrape failed: {target.get('lastError')}\n{log.read_text()[-3000:]}"
        # Prometheus's own scrapes are requests to /metrics, so their latency is there to divide.
        assert any(series["metric"].get("route", "").strip("/") == "metrics" for series in latency), latency
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

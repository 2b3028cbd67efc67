"""Grafana dashboards and Prometheus scrape configs for deployments, generated from the portal's state.

`dashboard(selector)` builds one dashboard whose every query is filtered by `deployment`: for one
deployment (its name, exported from its monitoring page and the API), or for a Grafana template variable
(`$deployment`, the provisioned "Model deployments" dashboard in deploy/grafana/dashboards/). The first
panel is the founding document's "Model Latency" panel, the same expression narrowed to the deployment:

    rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])

`prometheus_config(deployments)` writes a prometheus.yml that scrapes the portal and each deployment's
model server (the Service of its generated Kubernetes manifests, or a given address).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from deployments.kubernetes import service_name
from deployments.models import Deployment

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def model_latency_expression(deployment: str) -> str:
    """The founding document's expression, narrowed to one deployment's prediction routes."""
    selector = f'{{deployment="{deployment}"}}'
    return (
        f"rate(http_request_duration_seconds_sum{selector}[5m]) / "
        f"rate(http_request_duration_seconds_count{selector}[5m])"
    )


def _panel(panel_id: int, title: str, description: str, expr: str, legend: str, unit: str, x: int, y: int,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, **extra}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi"},
        },
        "targets": [{"datasource": DATASOURCE, "refId": "A", "expr": expr, "legendFormat": legend}],
    }


def dashboard(deployment: str, *, title: str | None = None, uid: str | None = None) -> dict[str, Any]:
    """A dashboard for `deployment` (a name, or "$deployment" with a template variable to pick it)."""
    d = f'deployment="{deployment}"'
    templated = deployment.startswith("$")
    panels = [
        _panel(
            1, "Model Latency",
            "Mean time to answer a prediction over 5 minutes, per model version, route and status: the "
            "founding document's panel, narrowed to this deployment.",
            model_latency_expression(deployment), "v{{model_version}} {{route}} {{status}}", "s", 0, 0,
        ),
        _panel(
            2, "p95 latency", "95th percentile of prediction latency over 5 minutes, per model version.",
            "histogram_quantile(0.95, sum by (le, model_version) "
            f"(rate(http_request_duration_seconds_bucket{{{d}}}[5m])))",
            "v{{model_version}}", "s", 12, 0,
        ),
        _panel(
            3, "Requests per second", "Prediction requests answered per second, per model version and status.",
            f"sum by (model_version, status) (rate(http_request_duration_seconds_count{{{d}}}[5m]))",
            "v{{model_version}} {{status}}", "reqps", 0, 8,
        ),
        _panel(
            4, "Error rate", "Share of prediction requests that failed (any reason), per model version.",
            f"sum by (model_version) (rate(model_prediction_errors_total{{{d}}}[5m])) / "
            f"sum by (model_version) (rate(http_request_duration_seconds_count{{{d}}}[5m]))",
            "v{{model_version}}", "percentunit", 12, 8, min=0,
        ),
        _panel(
            5, "Accuracy", "Accuracy over the last hour from ground-truth feedback, per model version and arm "
            "(the portal's rollups, exported on its /metrics).",
            f"mlops_model_accuracy{{{d}}}", "v{{model_version}} {{arm}}", "percentunit", 0, 16, min=0, max=1,
        ),
        _panel(
            6, "Labelled predictions", "Predictions with ground truth over the last hour, per model version and arm.",
            f"mlops_model_labelled_predictions{{{d}}}", "v{{model_version}} {{arm}}", "short", 12, 16,
        ),
        _panel(
            7, "Drift (PSI)", "Population stability index of each feature's live inputs against the training data "
            "(latest window; above 0.25 is a major shift).",
            f"mlops_feature_drift_psi{{{d}}}", "{{feature}}", "short", 0, 24, min=0,
        ),
    ]  # fmt: skip
    templating: list[dict[str, Any]] = []
    if templated:
        templating.append(
            {
                "name": deployment[1:],
                "label": "Deployment",
                "type": "query",
                "datasource": DATASOURCE,
                "query": {"query": "label_values(http_request_duration_seconds_count, deployment)", "refId": "A"},
                "definition": "label_values(http_request_duration_seconds_count, deployment)",
                "refresh": 2,
                "includeAll": False,
                "multi": False,
                "sort": 1,
            }
        )
    return {
        # Grafana uids are at most 40 characters: a hash keeps long names that share a prefix apart.
        "uid": uid or f"mlops-{hashlib.sha256(deployment.encode()).hexdigest()[:8]}-{deployment}"[:40],
        "title": title or f"Deployment {deployment}",
        "description": "Latency, traffic, errors and accuracy of a model deployment served by MLOps Portal.",
        "tags": ["mlops-portal", "deployment"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": templating},
        "annotations": {"list": []},
        "panels": panels,
    }


def prometheus_config(
    deployments: Iterable[Deployment], *, portal: str = "web:8000", targets: dict[str, str] | None = None
) -> dict[str, Any]:
    """A prometheus.yml scraping the portal (with a token) and each deployment's model server.

    `targets` maps a deployment name to its model server's host:port; by default the Service the
    generated Kubernetes manifests create (`<name>:80`)."""
    targets = targets or {}
    jobs: list[dict[str, Any]] = [
        {
            "job_name": "portal",
            "metrics_path": "/metrics",
            "authorization": {"type": "Bearer", "credentials_file": "/etc/prometheus/secrets/token"},
            "static_configs": [{"targets": [portal]}],
        }
    ]
    for deployment in deployments:
        target = targets.get(deployment.name, f"{service_name(deployment.name)}:80")
        jobs.append(
            {
                "job_name": f"model-server-{deployment.name}",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target], "labels": {"portal_deployment": deployment.name}}],
            }
        )
    return {"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}, "scrape_configs": jobs}

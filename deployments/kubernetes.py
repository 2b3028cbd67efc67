"""Kubernetes manifests for one deployment: its model server Deployment, Service and routing ConfigMap.

Each portal deployment gets its own model server pods (`serve_models` limited to that deployment by
MODEL_SERVER_DEPLOYMENTS), so replicas and resources are per model. The pods read revisions and weights
from the portal's database, as the laptop model server does; the ConfigMap records the weights the
manifests were generated with, and its checksum in the pod template rolls the pods when they change.
Rolling updates never take a ready pod away before its replacement is ready (`maxUnavailable: 0`), and
readiness waits for the model to be loaded and warmed up (`/ready` answers 503 until then).

Applying them is `kubectl apply -f` (docs/deployments.md); the portal does not talk to a cluster itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml
from django.conf import settings

from deployments.models import Deployment, DeploymentRevision, RevisionState

CONTAINER_PORT = 8001
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def is_dns_label(value: str) -> bool:
    return bool(_DNS_LABEL.match(value))


def service_name(name: str) -> str:
    """A Service name must start with a letter (RFC 1035), which a deployment name need not."""
    return name if name[:1].isalpha() else f"d-{name}"[:63].rstrip("-")


RESOURCE_KEYS = ("requests", "limits")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


def _labels(deployment: Deployment) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "mlops-model-server",
        "app.kubernetes.io/part-of": "mlops-portal",
        "mlops-portal/deployment": deployment.name,
    }


def _resources(deployment: Deployment) -> dict[str, dict[str, str]]:
    """The deployment's `resources` ({"requests": {"cpu": "500m"}, "limits": {...}}), known keys only."""
    raw = deployment.resources if isinstance(deployment.resources, dict) else {}
    out: dict[str, dict[str, str]] = {}
    for key in RESOURCE_KEYS:
        values = raw.get(key)
        if isinstance(values, dict):
            kept = {name: str(values[name]) for name in RESOURCE_NAMES if values.get(name) not in (None, "")}
            if kept:
                out[key] = kept
    return out or {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}


def routing(deployment: Deployment) -> dict[str, int]:
    """Active model versions and their traffic weights, as served now."""
    revisions = DeploymentRevision.objects.filter(deployment=deployment, state=RevisionState.ACTIVE).select_related(
        "model_version"
    )
    return {str(r.model_version.version): r.traffic_weight for r in revisions.order_by("-traffic_weight", "-id")}


def manifests(deployment: Deployment, *, namespace: str | None = None) -> list[dict[str, Any]]:
    """The ConfigMap, Deployment and Service of `deployment`, as plain dicts in the API's shapes."""
    namespace = namespace or settings.KUBERNETES_NAMESPACE
    labels = _labels(deployment)
    selector = {"mlops-portal/deployment": deployment.name, "app.kubernetes.io/name": "mlops-model-server"}
    weights = routing(deployment)
    routing_json = json.dumps(
        {"deployment": deployment.name, "model": deployment.registered_model.name, "weights": weights},
        sort_keys=True,
    )
    checksum = hashlib.sha256(routing_json.encode()).hexdigest()[:16]
    scrape = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(CONTAINER_PORT),
        "prometheus.io/path": "/metrics",
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{deployment.name}-routing", "namespace": namespace, "labels": labels},
        "data": {"routing.json": routing_json},
    }

    def secret(key: str) -> dict[str, Any]:
        return {"name": key, "valueFrom": {"secretKeyRef": {"name": settings.KUBERNETES_SECRET, "key": key}}}

    env = [
        {"name": "DJANGO_SETTINGS_MODULE", "value": "mlops_portal.settings"},
        {"name": "MODEL_SERVER_DEPLOYMENTS", "value": deployment.name},
        {"name": "ARTIFACT_ROOT", "value": "/data/artifacts"},
        # The database and the secret key come from the Secret the portal itself runs with.
        secret("DATABASE_URL"),
        secret("SECRET_KEY"),
    ]
    container = {
        "name": "model-server",
        "image": settings.KUBERNETES_IMAGE,
        "args": ["python", "manage.py", "serve_models", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)],  # noqa: S104
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": _resources(deployment),
        # Ready only once the model is loaded and its warm-up prediction ran: no traffic before that.
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3,
        },
        # Alive as long as the process answers; loading a big model must not get the pod killed.
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6,
        },
        "volumeMounts": [{"name": "artifacts", "mountPath": "/data/artifacts", "readOnly": True}],
        # The image's `portal` user, by number: Kubernetes cannot check runAsNonRoot against a user name.
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 10001},
    }  # fmt: skip
    workload = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{deployment.name}-model-server", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": deployment.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**scrape, "mlops-portal/routing-checksum": checksum},
                },
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": 30,  # the prediction log is flushed on SIGTERM
                    "volumes": [
                        {"name": "artifacts", "persistentVolumeClaim": {"claimName": settings.KUBERNETES_ARTIFACT_PVC}}
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(deployment.name),
            "namespace": namespace,
            "labels": labels,
            "annotations": scrape,
        },
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [config_map, workload, service]


def manifests_yaml(deployment: Deployment, *, namespace: str | None = None) -> str:
    header = (
        f"# Kubernetes manifests of deployment {deployment.name!r} (model {deployment.registered_model.name!r}),\n"
        "# generated by MLOps Portal. Apply with: kubectl apply -f <this file>\n"
    )
    return header + yaml.safe_dump_all(manifests(deployment, namespace=namespace), sort_keys=False)

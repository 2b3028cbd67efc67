"""Generated Kubernetes manifests, checked against the Kubernetes API's own models (the `kubernetes`
client): required fields present, no unknown or mistyped field (a round trip must give them back whole)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from django.test import Client
from kubernetes.client import ApiClient

from deployments import kubernetes, services
from deployments.management.commands.serve_models import STOP_SECONDS
from deployments.models import Strategy
from registry.models import RegisteredModel
from tests.conftest import bearer
from tests.deployments.conftest import add_version, serve_now

MODELS = {("v1", "ConfigMap"): "V1ConfigMap", ("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service"}


class _Body:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = json.dumps(data)


def validated(document: dict[str, Any]) -> Any:
    """The document as the API's model; raises when a required field is missing or a field is unknown."""
    api = ApiClient()
    model = api.deserialize(_Body(document), MODELS[(document["apiVersion"], document["kind"])])
    assert api.sanitize_for_serialization(model) == document, "a field was dropped or changed: unknown or mistyped"
    return model


@pytest.fixture
def canary(registered_model: RegisteredModel, editor: Any) -> Any:
    add_version(registered_model, editor)
    add_version(registered_model, editor)
    deployment = services.create_deployment(
        "churn-prod", registered_model, "1", owner=editor, replicas=3, strategy=Strategy.CANARY,
        canary_steps=[10, 100], resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
    )  # fmt: skip
    serve_now(deployment, 1, actor=editor)
    services.shift_traffic(services.deploy(deployment, 2, actor=editor), 0)
    return deployment


def test_the_manifests_are_valid_kubernetes_objects(canary: Any) -> None:
    config_map, workload, service = (validated(d) for d in kubernetes.manifests(canary))
    assert json.loads(config_map.data["routing.json"])["weights"] == {"1": 90, "2": 10}
    spec = workload.spec
    assert spec.replicas == 3 and spec.strategy.rolling_update.max_unavailable == 0
    container = spec.template.spec.containers[0]
    assert container.readiness_probe.http_get.path == "/ready" and container.liveness_probe.http_get.path == "/health"
    assert container.resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert {e.name: e.value for e in container.env}["MODEL_SERVER_DEPLOYMENTS"] == "churn-prod"
    annotations = spec.template.metadata.annotations
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8001"
    assert service.spec.selector == spec.selector.match_labels
    assert set(spec.selector.match_labels.items()) <= set(spec.template.metadata.labels.items())
    # A stopping pod writes its queued prediction log before Kubernetes kills it.
    assert spec.template.spec.termination_grace_period_seconds > STOP_SECONDS


def test_a_new_split_changes_the_pod_template_so_the_pods_roll(canary: Any, editor: Any) -> None:
    before = kubernetes.manifests(canary)[1]["spec"]["template"]["metadata"]["annotations"]
    services.complete_rollout(services.current_rollout(canary), actor=editor)
    after = kubernetes.manifests(canary)[1]["spec"]["template"]["metadata"]["annotations"]
    assert before["mlops-portal/routing-checksum"] != after["mlops-portal/routing-checksum"]


def test_they_download_from_the_api_and_the_page(canary: Any, viewer: Any, editor_client: Client) -> None:
    response = Client(**bearer(viewer)).get("/api/v1/deployments/churn-prod/manifests/", {"namespace": "ml"})
    assert response.status_code == 200 and response["Content-Type"] == "application/yaml"
    assert 'filename="churn-prod-kubernetes.yaml"' in response["Content-Disposition"]
    documents = list(yaml.safe_load_all(response.content))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Deployment", "Service"]
    assert {d["metadata"]["namespace"] for d in documents} == {"ml"}
    for document in documents:
        validated(document)
    bad = Client(**bearer(viewer)).get("/api/v1/deployments/churn-prod/manifests/", {"namespace": "Not_OK"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "namespace"
    page = editor_client.get("/deployments/churn-prod/manifests.yaml")
    assert page.status_code == 200 and b"kind: Deployment" in page.content
    assert (
        'href="/deployments/churn-prod/manifests.yaml"'
        in editor_client.get("/deployments/churn-prod/").content.decode()
    )


def test_a_deployment_without_resources_gets_sane_defaults(registered_model: RegisteredModel, editor: Any) -> None:
    deployment = services.create_deployment("plain", registered_model, "1", owner=editor)
    workload = validated(kubernetes.manifests(deployment)[1])
    assert workload.spec.template.spec.containers[0].resources.limits == {"memory": "2Gi"}


def test_the_model_server_can_be_limited_to_one_deployment(canary: Any, settings: Any, editor: Any) -> None:
    from prometheus_client import CollectorRegistry

    from deployments.server.app import ModelServer

    serve_now(services.create_deployment("other", canary.registered_model, "1", owner=editor), actor=editor)
    settings.MODEL_SERVER_DEPLOYMENTS = ["other"]
    app = ModelServer(CollectorRegistry())
    app.refresh()
    assert list(app.table) == ["other"]


def test_a_deployment_named_with_a_leading_digit_gets_a_valid_service_name(
    registered_model: RegisteredModel, editor: Any
) -> None:
    deployment = services.create_deployment("2026-churn", registered_model, "1", owner=editor)
    service = validated(kubernetes.manifests(deployment)[2])
    assert service.metadata.name == "d-2026-churn"

"""A registered model's page shows where it serves, its deployments' rollouts on its timeline, and its
versions' source-run metrics side by side."""

from __future__ import annotations

from typing import Any

from django.test import Client

from deployments import services
from deployments.models import Strategy
from experiments import services as tracking
from experiments.services import MetricPoint
from registry.models import RegisteredModel
from tests.deployments.conftest import add_version, serve_now


def test_the_model_page_shows_deployments_and_their_timeline(
    registered_model: RegisteredModel, editor: Any, editor_client: Client, django_assert_max_num_queries: Any
) -> None:
    v1 = add_version(registered_model, editor)
    v2 = add_version(registered_model, editor)
    for version, acc in ((v1, 0.81), (v2, 0.87)):
        tracking.log_batch(version.run, metrics=[MetricPoint("acc", acc, 1, 0), MetricPoint("loss", 1 - acc, 1, 0)],
                           params=[], tags=[])  # fmt: skip
    deployment = services.create_deployment(
        "churn-prod", registered_model, "1", owner=editor, environment="production", strategy=Strategy.CANARY,
        canary_steps=[10, 100],
    )  # fmt: skip
    serve_now(deployment, 1, actor=editor)
    services.shift_traffic(services.deploy(deployment, 2, actor=editor), 0)
    with django_assert_max_num_queries(25):
        page = editor_client.get(f"/models/{registered_model.name}/").content.decode()
    assert 'href="/deployments/churn-prod/"' in page
    assert "v1 · 90%, v2 · 10%" in page and "version 2 rolling out" in page.lower()
    assert "version 2 at 10%, version 1 at 90%" in page  # a deployment event on the model's timeline
    assert page.index("version 2 at 10%") < page.index("Version 2 registered from")  # newest first
    assert '<th class="num" title="the source run\'s latest acc">acc</th>' in page
    assert "0.8100" in page and "0.8700" in page and "0.1900" in page


def test_a_model_without_deployments_has_no_deployments_card(
    registered_model: RegisteredModel, editor: Any, editor_client: Client
) -> None:
    add_version(registered_model, editor)
    page = editor_client.get(f"/models/{registered_model.name}/").content.decode()
    assert 'id="deployments"' not in page

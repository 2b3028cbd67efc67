"""Creating deployments, deploying versions and aliases, rolling back, and the events it all leaves."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent
from deployments import services
from deployments.models import DeploymentEvent, RevisionState, Strategy
from registry import services as registry
from registry.models import RegisteredModel
from tests.deployments.conftest import add_version, serve_now


@pytest.fixture
def deployment(registered_model: RegisteredModel, editor: Any) -> Any:
    return services.create_deployment(
        "churn-prod", registered_model, "champion", owner=editor, environment="production"
    )


def test_creating_a_deployment_records_a_created_event(deployment: Any, editor: Any) -> None:
    event = deployment.events.get()
    assert (event.kind, event.actor, event.detail["selector"]) == ("created", editor, "champion")
    assert AuditEvent.objects.filter(action="deployment.create").exists()


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("name", {"name": "Not A Label"}),
        ("environment", {"environment": "qa"}),
        ("strategy", {"strategy": "yolo"}),
        ("replicas", {"replicas": 0}),
        ("canary_steps", {"strategy": "canary", "canary_steps": [50, 10]}),
        ("canary_steps", {"strategy": "canary", "canary_steps": [10, 50]}),
    ],
)
def test_it_refuses_bad_settings_naming_the_field(
    registered_model: RegisteredModel, editor: Any, field: str, kwargs: dict[str, Any]
) -> None:
    name = kwargs.pop("name", "ok")
    with pytest.raises(services.DeploymentError) as caught:
        services.create_deployment(name, registered_model, "1", owner=editor, **kwargs)
    assert caught.value.field == field


def test_a_canary_deployment_keeps_its_steps_and_bake_time(registered_model: RegisteredModel, editor: Any) -> None:
    deployment = services.create_deployment(
        "c", registered_model, "1", owner=editor, strategy=Strategy.CANARY, canary_steps=[10, 50, 100], bake_seconds=60
    )
    assert (deployment.canary_steps, deployment.bake_seconds) == ([10, 50, 100], 60)


def test_names_are_unique(deployment: Any, registered_model: RegisteredModel, editor: Any) -> None:
    with pytest.raises(services.DeploymentError, match="already exists"):
        services.create_deployment("churn-prod", registered_model, "1", owner=editor)


def test_deploying_the_alias_serves_its_version_at_full_traffic(
    deployment: Any, registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor)
    v2 = add_version(registered_model, editor)
    registry.set_alias(registered_model, "champion", v2, actor=editor)
    revision = serve_now(deployment, actor=editor)
    assert (revision.model_version, revision.state, revision.traffic_weight) == (v2, RevisionState.ACTIVE, 100)
    kinds = list(deployment.events.order_by("id").values_list("kind", "from_version", "to_version"))
    assert kinds == [
        ("created", None, None),
        ("rollout_started", None, 2),
        ("traffic_shifted", None, 2),
        ("promoted", None, 2),
    ]


def test_a_new_deploy_retires_the_previous_revision(
    deployment: Any, registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor)
    add_version(registered_model, editor)
    first = serve_now(deployment, 1, actor=editor)
    second = serve_now(deployment, "2", actor=editor)
    first.refresh_from_db()
    assert (first.state, first.traffic_weight) == (RevisionState.RETIRED, 0)
    assert services.active_revisions(deployment) == [second]
    promoted = deployment.events.filter(kind="promoted").order_by("-id").first()
    assert (promoted.from_version, promoted.to_version, promoted.detail["strategy"]) == (1, 2, "all_at_once")


def test_an_unknown_version_or_alias_is_refused(
    deployment: Any, registered_model: RegisteredModel, editor: Any
) -> None:
    with pytest.raises(services.DeploymentError, match="no alias 'champion'"):
        serve_now(deployment, actor=editor)
    with pytest.raises(services.DeploymentError, match="no version 7"):
        serve_now(deployment, 7, actor=editor)


def test_rollback_serves_the_earlier_revision_again(
    deployment: Any, registered_model: RegisteredModel, editor: Any
) -> None:
    add_version(registered_model, editor)
    add_version(registered_model, editor)
    first = serve_now(deployment, 1, actor=editor)
    second = serve_now(deployment, 2, actor=editor)
    services.rollback(deployment, first, actor=editor)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.traffic_weight, second.state) == ("active", 100, "retired")
    event = deployment.events.filter(kind=DeploymentEvent.Kind.ROLLED_BACK).get()
    assert (event.from_version, event.to_version, event.actor) == (2, 1, editor)
    with pytest.raises(services.DeploymentError, match="already serving"):
        services.rollback(deployment, first, actor=editor)

"""The deployments' write path: create a deployment, deploy a model version to it, roll it back.

Views, the API, tasks and commands call these. Each runs in one transaction, locks the deployment row
so two deploys of one deployment queue up instead of both leaving a revision active, and records what
it did as `DeploymentEvent`s (and in the audit log).

For now every strategy rolls out all at once: the new revision becomes active at 100 % and the previous
one is retired. The canary steps and bake time are stored for the rollout job that will walk them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from accounts.services import record_audit
from deployments.models import (
    NAME_PATTERN,
    Deployment,
    DeploymentEvent,
    DeploymentRevision,
    Environment,
    RevisionState,
    Strategy,
)
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias, VersionStatus

MAX_REPLICAS = 100
_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")


class DeploymentError(ValueError):
    """A request the deployment cannot carry out; `field` names the offending input when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _actor_fields(actor: Any) -> dict[str, Any]:
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    if not authenticated:
        return {"actor": None, "actor_name": "system"}
    return {"actor": actor, "actor_name": actor.get_username()}


def _event(deployment: Deployment, kind: str, actor: Any, **fields: Any) -> DeploymentEvent:
    return DeploymentEvent.objects.create(deployment=deployment, kind=kind, **_actor_fields(actor), **fields)


def validate_canary_steps(steps: Any) -> list[int]:
    """Increasing percentages in 1..100 that end at 100, e.g. [10, 50, 100]."""
    if steps is None or steps == []:
        return []
    if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        raise DeploymentError("canary steps must be a list of whole percentages, e.g. [10, 50, 100]", "canary_steps")
    if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
        raise DeploymentError("canary steps must increase, lie in 1..100 and end at 100", "canary_steps")
    return steps


def create_deployment(
    name: str,
    registered_model: RegisteredModel,
    selector: str | int,
    *,
    owner: Any,
    environment: str = Environment.STAGING,
    replicas: int = 1,
    resources: dict[str, Any] | None = None,
    strategy: str = Strategy.ALL_AT_ONCE,
    canary_steps: Iterable[int] | None = None,
    bake_seconds: int = 300,
) -> Deployment:
    """Create a deployment (nothing is served until the first `deploy`)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DeploymentError("a deployment name is a DNS label: lowercase letters, digits and '-'", "name")
    selector = str(selector).strip()
    if not selector:
        raise DeploymentError("the selector is an alias or a version number", "selector")
    if environment not in Environment.values:
        raise DeploymentError(f"environment must be one of {', '.join(Environment.values)}", "environment")
    if strategy not in Strategy.values:
        raise DeploymentError(f"strategy must be one of {', '.join(Strategy.values)}", "strategy")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise DeploymentError(f"replicas must be between 1 and {MAX_REPLICAS}", "replicas")
    steps = validate_canary_steps(list(canary_steps) if canary_steps is not None else [])
    if strategy == Strategy.CANARY and not steps:
        steps = [10, 50, 100]
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                name=name,
                registered_model=registered_model,
                selector=selector,
                environment=environment,
                replicas=replicas,
                resources=resources or {},
                strategy=strategy,
                canary_steps=steps,
                bake_seconds=bake_seconds,
                **({"owner": owner} if getattr(owner, "is_authenticated", False) else {}),
            )
            _event(
                deployment,
                DeploymentEvent.Kind.CREATED,
                owner,
                detail={"model": registered_model.name, "selector": selector, "environment": environment},
            )
            record_audit(owner, "deployment.create", deployment, {"name": name, "model": registered_model.name})
    except IntegrityError:
        raise DeploymentError(f"a deployment named {name!r} already exists", "name") from None
    return deployment


def resolve_version(deployment: Deployment, selector: str | int | None = None) -> ModelVersion:
    """The model version `selector` (default: the deployment's own) names: a number or an alias."""
    selector = str(deployment.selector if selector is None else selector).strip()
    model = deployment.registered_model
    if selector.isdigit():
        version = ModelVersion.objects.filter(model=model, version=int(selector)).first()
        if version is None:
            raise DeploymentError(f"model {model.name!r} has no version {selector}", "version")
    else:
        alias = RegisteredModelAlias.objects.select_related("version").filter(model=model, alias=selector).first()
        if alias is None:
            raise DeploymentError(f"model {model.name!r} has no alias {selector!r}", "alias")
        version = alias.version
    if version.status != VersionStatus.READY:
        raise DeploymentError(f"version {version.version} of {model.name!r} is not READY", "version")
    version.model = model
    return version


def active_revisions(deployment: Deployment) -> list[DeploymentRevision]:
    return list(
        deployment.revisions.filter(state=RevisionState.ACTIVE)
        .select_related("model_version")
        .order_by("-traffic_weight", "-id")
    )


def _lock(deployment: Deployment) -> None:
    # Serialises deploys and rollbacks of one deployment (a row lock on PostgreSQL, the write lock on SQLite).
    Deployment.objects.select_for_update().filter(pk=deployment.pk).values_list("pk", flat=True).first()


def _switch(deployment: Deployment, revision: DeploymentRevision) -> int | None:
    """Make `revision` the only active one at 100 %; return the version number it replaced."""
    previous = active_revisions(deployment)
    DeploymentRevision.objects.filter(pk__in=[r.pk for r in previous if r.pk != revision.pk]).update(
        state=RevisionState.RETIRED, traffic_weight=0
    )
    revision.state = RevisionState.ACTIVE
    revision.traffic_weight = 100
    revision.save(update_fields=["state", "traffic_weight"])
    others = [r for r in previous if r.pk != revision.pk]
    return others[0].model_version.version if others else None


def deploy(deployment: Deployment, target: ModelVersion | str | int | None = None, *, actor: Any) -> DeploymentRevision:
    """Roll `target` (a version, a number, an alias; default: the deployment's selector) out.

    All strategies currently roll out all at once; the event records which strategy was asked for."""
    version = target if isinstance(target, ModelVersion) else resolve_version(deployment, target)
    if version.model_id != deployment.registered_model_id:
        raise DeploymentError(f"version {version} is not a version of {deployment.registered_model.name!r}", "version")
    with transaction.atomic():
        _lock(deployment)
        revision = DeploymentRevision.objects.create(deployment=deployment, model_version=version)
        detail = {"revision": revision.pk, "strategy": deployment.strategy, "applied": Strategy.ALL_AT_ONCE}
        current = active_revisions(deployment)
        from_version = current[0].model_version.version if current else None
        _event(
            deployment, DeploymentEvent.Kind.ROLLOUT_STARTED, actor,
            from_version=from_version, to_version=version.version, detail=detail,
        )  # fmt: skip
        _switch(deployment, revision)
        _event(
            deployment, DeploymentEvent.Kind.PROMOTED, actor,
            from_version=from_version, to_version=version.version, detail={**detail, "traffic_weight": 100},
        )  # fmt: skip
        record_audit(actor, "deployment.deploy", deployment, {"version": version.version, "revision": revision.pk})
    return revision


def rollback(deployment: Deployment, to_revision: DeploymentRevision, *, actor: Any) -> DeploymentRevision:
    """Serve an earlier revision again, at 100 %, and retire the current one."""
    if to_revision.deployment_id != deployment.pk:
        raise DeploymentError("that revision belongs to another deployment", "revision")
    with transaction.atomic():
        _lock(deployment)
        to_revision.refresh_from_db()
        if to_revision.state == RevisionState.ACTIVE and to_revision.traffic_weight == 100:
            raise DeploymentError("that revision is already serving all the traffic", "revision")
        from_version = _switch(deployment, to_revision)
        _event(
            deployment, DeploymentEvent.Kind.ROLLED_BACK, actor, from_version=from_version,
            to_version=to_revision.model_version.version, detail={"revision": to_revision.pk},
        )  # fmt: skip
        record_audit(actor, "deployment.rollback", deployment, {"revision": to_revision.pk})
    return to_revision

"""The deployments' write path: create a deployment, deploy a model version to it, roll it back.

Views, the API, tasks and commands call these. Each runs in one transaction, locks the deployment row
so two deploys of one deployment queue up instead of both leaving a revision active, and records what
it did as `DeploymentEvent`s (and in the audit log).

A deploy creates a `Rollout` and submits the rollout job (deployments/rollouts.py), which calls the
traffic moves here (`shift_traffic`, `complete_rollout`, `abort_rollout`); users steer it with
`command_rollout` and `rollback`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import record_audit
from deployments.models import (
    ACTIVE_ROLLOUT_STATUSES,
    NAME_PATTERN,
    Deployment,
    DeploymentEvent,
    DeploymentRevision,
    Environment,
    RevisionState,
    Rollout,
    RolloutStatus,
    Strategy,
)
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias, VersionStatus

MAX_REPLICAS = 100
RESERVED_NAMES = frozenset({"alerts"})  # /monitoring/alerts/ is the alerts page, not a deployment's
ROLLOUT_JOB = "deployments.rollout"
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


GATE_FIELDS = (
    "holdout_dataset_version", "target_column", "min_accuracy", "champion_margin", "latency_budget_ms",
    "max_error_rate", "min_canary_requests",
)  # fmt: skip


def validate_gates(gates: dict[str, Any]) -> dict[str, Any]:
    """The gate settings, checked: a holdout needs its label column; rates and accuracies lie in 0..1."""
    unknown = set(gates) - set(GATE_FIELDS)
    if unknown:
        raise DeploymentError(f"unknown setting {sorted(unknown)[0]!r}", sorted(unknown)[0])
    values = {k: v for k, v in gates.items() if v is not None}
    for name in ("min_accuracy", "champion_margin", "max_error_rate"):
        if name in values and not 0.0 <= float(values[name]) <= 1.0:
            raise DeploymentError(f"{name} must lie between 0 and 1", name)
    if "latency_budget_ms" in values and not 0.0 < float(values["latency_budget_ms"]) <= 600_000:
        raise DeploymentError("latency_budget_ms must lie between 0 and 600000", "latency_budget_ms")
    if values.get("holdout_dataset_version") is not None and not values.get("target_column"):
        raise DeploymentError("a holdout dataset version needs the name of its label column", "target_column")
    if values.get("min_accuracy") is not None and values.get("holdout_dataset_version") is None:
        raise DeploymentError("an accuracy gate needs a holdout dataset version", "holdout_dataset_version")
    return values


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
    **gates: Any,
) -> Deployment:
    """Create a deployment (nothing is served until the first `deploy`).

    `gates` are the Deployment's gate fields (holdout_dataset_version, target_column, min_accuracy,
    champion_margin, latency_budget_ms, max_error_rate, min_canary_requests)."""
    gates = validate_gates(gates)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DeploymentError("a deployment name is a DNS label: lowercase letters, digits and '-'", "name")
    if name in RESERVED_NAMES:
        raise DeploymentError(f"{name!r} is reserved (a page of the portal has that path)", "name")
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
                **gates,
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
    if selector.isascii() and selector.isdecimal():  # "²".isdigit() is true, and int() refuses it
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


def rollout_steps(deployment: Deployment) -> tuple[list[int], int]:
    """The traffic percentages the candidate walks, and the bake time of each, by strategy."""
    if deployment.strategy == Strategy.CANARY:
        return list(deployment.canary_steps or [10, 50, 100]), deployment.bake_seconds
    if deployment.strategy == Strategy.BLUE_GREEN:
        return [100], deployment.bake_seconds  # the old (blue) revision stays loaded at 0 % while green bakes
    return [100], 0


def current_rollout(deployment: Deployment) -> Rollout | None:
    """The rollout in flight, if any (at most one: a constraint says so)."""
    return deployment.rollouts.filter(status__in=ACTIVE_ROLLOUT_STATUSES).select_related("revision").first()


def deploy(deployment: Deployment, target: ModelVersion | str | int | None = None, *, actor: Any) -> Rollout:
    """Start rolling `target` (a version, a number, an alias; default: the deployment's selector) out.

    Creates a pending revision and a `Rollout`, and submits the `deployments.rollout` job on the
    `deployments` queue, which validates and gates the candidate and then shifts traffic by the strategy
    (see deployments/rollouts.py). Nothing is served by the candidate before the job says so."""
    from jobs.services import submit_job

    version = target if isinstance(target, ModelVersion) else resolve_version(deployment, target)
    if version.model_id != deployment.registered_model_id:
        raise DeploymentError(f"version {version} is not a version of {deployment.registered_model.name!r}", "version")
    steps, bake = rollout_steps(deployment)
    with transaction.atomic():
        _lock(deployment)
        if current_rollout(deployment) is not None:
            raise DeploymentError(
                "a rollout of this deployment is in progress: promote it, roll it back or wait for it", "deployment"
            )
        current = active_revisions(deployment)
        baseline = current[0] if current else None
        if baseline is None:
            steps, bake = [100], 0  # nothing serves yet: no traffic to split, nothing to fall back to
        revision = DeploymentRevision.objects.create(deployment=deployment, model_version=version)
        rollout = Rollout.objects.create(
            deployment=deployment, revision=revision, baseline=baseline, strategy=deployment.strategy,
            steps=steps, bake_seconds=bake,
            **({"requested_by": actor} if getattr(actor, "is_authenticated", False) else {}),
        )  # fmt: skip
        job = submit_job(ROLLOUT_JOB, params={"rollout": rollout.pk}, requested_by=actor)
        rollout.job = job
        rollout.save(update_fields=["job"])
        _event(
            deployment, DeploymentEvent.Kind.ROLLOUT_STARTED, actor,
            from_version=baseline.model_version.version if baseline else None, to_version=version.version,
            detail={"revision": revision.pk, "rollout": rollout.pk, "strategy": deployment.strategy, "steps": steps},
        )  # fmt: skip
        record_audit(actor, "deployment.deploy", deployment, {"version": version.version, "revision": revision.pk})
    return rollout


def _version_of(revision: DeploymentRevision | None) -> int | None:
    return revision.model_version.version if revision is not None else None


def _fresh(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_related("deployment", "revision__model_version", "baseline__model_version").get(
        pk=rollout.pk
    )


def shift_traffic(rollout: Rollout, index: int) -> Rollout:
    """Move to step `index`: the candidate serves `steps[index]` % and the baseline the rest (both loaded).

    The weights and the rollout's step move in one transaction, so a job that dies between them resumes
    at the step the traffic is actually at."""
    with transaction.atomic():
        _lock(rollout.deployment)
        rollout = _fresh(rollout)
        if not rollout.is_active:
            return rollout
        candidate, baseline = rollout.revision, rollout.baseline
        weight = rollout.steps[index] if baseline is not None else 100  # alone, it takes all the traffic
        DeploymentRevision.objects.filter(pk=candidate.pk).update(state=RevisionState.ACTIVE, traffic_weight=weight)
        if baseline is not None:
            DeploymentRevision.objects.filter(pk=baseline.pk).update(
                state=RevisionState.ACTIVE, traffic_weight=100 - weight
            )
        rollout.status = RolloutStatus.ROLLING_OUT
        rollout.step_index = index
        rollout.step_started = timezone.now()
        rollout.baked_seconds = 0.0
        rollout.save(update_fields=["status", "step_index", "step_started", "baked_seconds"])
        weights = {"candidate": weight, "baseline": 100 - weight if baseline is not None else 0}
        _event(
            rollout.deployment, DeploymentEvent.Kind.TRAFFIC_SHIFTED, None,
            from_version=_version_of(baseline), to_version=candidate.model_version.version,
            detail={"revision": candidate.pk, "rollout": rollout.pk, "step": index + 1, "steps": len(rollout.steps),
                    "weights": weights, "traffic_weight": weight},
        )  # fmt: skip
    return rollout


def complete_rollout(rollout: Rollout, *, actor: Any = None, reason: str = "") -> Rollout:
    """The candidate serves all the traffic; the baseline is retired and the rollout succeeds."""
    with transaction.atomic():
        _lock(rollout.deployment)
        rollout = _fresh(rollout)
        if not rollout.is_active:
            return rollout
        _switch(rollout.deployment, rollout.revision)
        rollout.status = RolloutStatus.SUCCEEDED
        rollout.finished = timezone.now()
        rollout.reason = reason
        rollout.save(update_fields=["status", "finished", "reason"])
        _event(
            rollout.deployment, DeploymentEvent.Kind.PROMOTED, actor,
            from_version=_version_of(rollout.baseline), to_version=rollout.revision.model_version.version,
            detail={"revision": rollout.revision.pk, "rollout": rollout.pk, "traffic_weight": 100,
                    "strategy": rollout.strategy, **({"reason": reason} if reason else {})},
        )  # fmt: skip
        record_audit(actor, "deployment.promote", rollout.deployment, {"rollout": rollout.pk})
    return rollout


def abort_rollout(rollout: Rollout, reason: str, *, actor: Any = None) -> Rollout:
    """Give the baseline all the traffic back and retire the candidate.

    A candidate that never served (it failed validation or a gate) makes the rollout FAILED; one that
    took traffic makes it ROLLED_BACK, with a `rolled_back` event on the timeline."""
    with transaction.atomic():
        _lock(rollout.deployment)
        rollout = _fresh(rollout)
        if not rollout.is_active:
            return rollout
        # A rollout stopped by a user, or whose candidate took traffic, was rolled back; one whose candidate
        # never served because it failed validation or a gate failed.
        served = rollout.step_index >= 0 or getattr(actor, "is_authenticated", False)
        candidate, baseline = rollout.revision, rollout.baseline
        if baseline is not None and baseline.state != RevisionState.RETIRED:
            _switch(rollout.deployment, baseline)
        DeploymentRevision.objects.filter(pk=candidate.pk).update(state=RevisionState.RETIRED, traffic_weight=0)
        rollout.status = RolloutStatus.ROLLED_BACK if served else RolloutStatus.FAILED
        rollout.finished = timezone.now()
        rollout.reason = reason
        rollout.save(update_fields=["status", "finished", "reason"])
        kind = DeploymentEvent.Kind.ROLLED_BACK if served else DeploymentEvent.Kind.ROLLOUT_FAILED
        _event(
            rollout.deployment, kind, actor, from_version=candidate.model_version.version,
            to_version=_version_of(baseline),
            detail={"revision": baseline.pk if baseline else None, "rollout": rollout.pk, "reason": reason,
                    **({"traffic_weight": 100} if baseline else {})},
        )  # fmt: skip
        record_audit(actor, "deployment.rollout_aborted", rollout.deployment, {"rollout": rollout.pk, "reason": reason})
    return rollout


def command_rollout(rollout: Rollout, command: str, *, actor: Any) -> Rollout:
    """A user's pause, resume, promote or rollback of the rollout in flight.

    Promote and rollback act at once (the job notices at its next tick that the rollout ended); promote
    needs the candidate past its gates. Pause stops the bake clock at the current split until resume."""
    if command not in ("pause", "resume", "promote", "rollback"):
        raise DeploymentError("the command is one of pause, resume, promote, rollback", "command")
    if command == "rollback":
        return rollback_rollout(rollout, actor=actor)
    with transaction.atomic():
        _lock(rollout.deployment)
        rollout = _fresh(rollout)
        if not rollout.is_active:
            raise DeploymentError(f"the rollout has already ended ({rollout.status})", "rollout")
        if command == "promote":
            candidate = rollout.revision
            if candidate.load_error and candidate.loaded_at is None:
                raise DeploymentError(f"the model server cannot load the candidate: {candidate.load_error}", "rollout")
            if rollout.status != RolloutStatus.ROLLING_OUT:
                raise DeploymentError(
                    f"the candidate is still {rollout.status.replace('_', ' ')}: it can be promoted once its "
                    "gates have passed",
                    "rollout",
                )
            return complete_rollout(rollout, actor=actor, reason="promoted by hand")
        if command == "pause":
            if rollout.paused:
                raise DeploymentError("the rollout is already paused", "command")
            rollout.paused = True
        else:
            if not rollout.paused:
                raise DeploymentError("the rollout is not paused", "command")
            rollout.paused = False
        rollout.save(update_fields=["paused"])
        kind = DeploymentEvent.Kind.PAUSED if command == "pause" else DeploymentEvent.Kind.RESUMED
        _event(
            rollout.deployment, kind, actor, to_version=rollout.revision.model_version.version,
            detail={"rollout": rollout.pk, "traffic_weight": rollout.current_weight},
        )  # fmt: skip
        record_audit(actor, f"deployment.rollout_{command}", rollout.deployment, {"rollout": rollout.pk})
    return rollout


def rollback_rollout(rollout: Rollout, *, actor: Any) -> Rollout:
    """Roll the rollout in flight back by hand: what served before it gets all the traffic again."""
    with transaction.atomic():
        _lock(rollout.deployment)
        rollout = _fresh(rollout)
        if not rollout.is_active:
            raise DeploymentError(f"the rollout has already ended ({rollout.status})", "rollout")
        return abort_rollout(rollout, "rolled back by hand", actor=actor)


def record_rollout_event(rollout: Rollout, kind: str, **detail: Any) -> None:
    """A step of the rollout job (validated, a gate passed or failed) on the deployment's timeline."""
    _event(
        rollout.deployment, kind, None, from_version=_version_of(rollout.baseline),
        to_version=rollout.revision.model_version.version, detail={"rollout": rollout.pk, **detail},
    )  # fmt: skip


def served_revisions(deployment: Deployment) -> set[int]:
    """The revisions of `deployment` that ever took traffic: only those are safe to go back to without
    validation (one query, for the page's buttons as for the check)."""
    from deployments.queries import TRAFFIC_EVENTS

    details = DeploymentEvent.objects.filter(deployment=deployment, kind__in=TRAFFIC_EVENTS).values_list(
        "detail__revision", flat=True
    )
    return {int(pk) for pk in details if pk is not None}


def has_served(revision: DeploymentRevision) -> bool:
    return revision.pk in served_revisions(revision.deployment)


def rollback(deployment: Deployment, to_revision: DeploymentRevision, *, actor: Any) -> DeploymentRevision:
    """Serve an earlier revision again, at 100 %, and retire the current one.

    Only a revision that served before (and that the model server has not failed to load) qualifies:
    going back skips validation and gates, so it must be to something known to work."""
    if to_revision.deployment_id != deployment.pk:
        raise DeploymentError("that revision belongs to another deployment", "revision")
    with transaction.atomic():
        _lock(deployment)
        to_revision.refresh_from_db()
        if to_revision.load_error and to_revision.loaded_at is None:
            raise DeploymentError(
                f"the model server could not load that revision: {to_revision.load_error}", "revision"
            )
        if not has_served(to_revision):
            raise DeploymentError(
                "that revision never served traffic: deploy its version instead, so it is validated and gated",
                "revision",
            )
        running = current_rollout(deployment)
        if running is not None and running.revision_id == to_revision.pk:
            raise DeploymentError(
                "that revision is the candidate of the rollout in flight: promote it instead", "revision"
            )
        if running is not None:
            # A rollback by hand ends the rollout in flight; its job sees that at its next tick and stops.
            Rollout.objects.filter(pk=running.pk).update(
                status=RolloutStatus.ROLLED_BACK, finished=timezone.now(), reason="rolled back by hand"
            )
            if running.revision_id != to_revision.pk:
                DeploymentRevision.objects.filter(pk=running.revision_id).update(
                    state=RevisionState.RETIRED, traffic_weight=0
                )
        if to_revision.state == RevisionState.ACTIVE and to_revision.traffic_weight == 100:
            raise DeploymentError("that revision is already serving all the traffic", "revision")
        from_version = _switch(deployment, to_revision)
        _event(
            deployment, DeploymentEvent.Kind.ROLLED_BACK, actor, from_version=from_version,
            to_version=to_revision.model_version.version, detail={"revision": to_revision.pk},
        )  # fmt: skip
        record_audit(actor, "deployment.rollback", deployment, {"revision": to_revision.pk})
    return to_revision


def reconcile_rollouts() -> list[int]:
    """End rollouts whose job ended without ending them (its worker died for good, or it was failed by
    the job reconciler): the baseline gets the traffic back. Returns the rollouts it ended."""
    from jobs.models import FINISHED_STATUSES

    ended = []
    stuck = Rollout.objects.filter(status__in=ACTIVE_ROLLOUT_STATUSES, job__status__in=FINISHED_STATUSES)
    for rollout in stuck.select_related("job")[:100]:
        reason = f"its job ended ({rollout.job.status}): {rollout.job.error or 'no reason given'}"[:2000]
        abort_rollout(rollout, reason)
        ended.append(rollout.pk)
    return ended

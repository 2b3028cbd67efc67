"""The registry's write path: every change to registered models, versions, tags and aliases.

The MLflow-compatible API and the pages both call these. Each runs in one transaction and records
what it moved (stages, aliases, versions) as a `RegistryEvent`, so the timeline is never missing a
step that happened. Errors are `MlflowError`s with MLflow's codes and messages, which the API sends
as they are and the pages show as messages.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError

from accounts.services import record_audit
from experiments import artifacts
from experiments.mlflow_api.common import MlflowError, invalid, not_found
from experiments.mlflow_api.logged_models import model_for as logged_model_for
from experiments.mlflow_api.lookups import run_for
from experiments.models import Run, now_ms
from experiments.services import validate_key, validate_value
from registry.models import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
    RegistryEvent,
    Stage,
)

MAX_MODEL_NAME_LENGTH = 256
MAX_TAG_VALUE_LENGTH = 100_000  # MLflow's MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH
MAX_ALIAS_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 100_000
MAX_SOURCE_LENGTH = 1000
_ALIAS_RE = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS_RE = re.compile(r"^[vV]\d+$")  # `v3` would be ambiguous with version 3
ACTIVE_STAGES = (Stage.STAGING, Stage.PRODUCTION)
_CANONICAL_STAGES = {s.value.lower(): s.value for s in Stage}


# Validation with MLflow's messages ---------------------------------------------------------------


def validate_model_name(name: Any, path: str = "name") -> str:
    if name is None or not isinstance(name, str) or name.strip() == "":
        raise invalid(f"Missing value for required parameter '{path}'.")
    if "/" in name or ":" in name:
        raise invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise invalid(
            f"Invalid value '{name}' for parameter '{path}' supplied: Names may be treated as files in certain "
            f"cases, and must not resolve to other names when treated as such. This name would resolve to {norm!r}"
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise invalid(f"'{path}' exceeds the maximum length of {MAX_MODEL_NAME_LENGTH} characters")
    if "\x00" in name:
        raise invalid(f"Invalid model name {name!r}: NUL characters are not allowed.")
    return name


def parse_version(value: Any) -> int:
    """A version number as clients send it (a string of digits, or a number)."""
    if isinstance(value, bool) or value is None or value == "":
        raise invalid("Missing value for required parameter 'version'.")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise invalid(f"Parameter 'version' must be an integer, got '{value}'.") from None
    if not 0 < number < 2**31:
        raise invalid(f"Parameter 'version' must be a positive integer, got '{value}'.")
    return number


def canonical_stage(stage: Any) -> str:
    key = stage.lower() if isinstance(stage, str) else None
    if key not in _CANONICAL_STAGES:
        raise invalid(
            f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(s.value for s in Stage)}."
        )
    return _CANONICAL_STAGES[key]


def validate_alias(alias: Any, *, for_write: bool = True) -> str:
    if alias is None or alias == "":
        raise invalid("Registered model alias name cannot be empty.")
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise invalid(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_) and dashes (-)."
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise invalid(f"Registered model alias name exceeds the maximum length of {MAX_ALIAS_LENGTH} characters")
    if for_write and alias.lower() == "latest":
        raise invalid("'latest' alias name (case insensitive) is reserved.")
    if for_write and _VERSION_ALIAS_RE.match(alias):
        raise invalid(f"Version alias name '{alias}' is reserved.")
    return alias


def _clean_tags(tags: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    # A repeated key keeps its last value, as MLflow's store does.
    return {validate_key("Tag", k, "key"): validate_value(v, MAX_TAG_VALUE_LENGTH, "value") for k, v in tags}


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("Invalid value for parameter 'description' supplied: must be a string")
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise invalid(f"'description' exceeds the maximum length of {MAX_DESCRIPTION_LENGTH} characters")
    return value


def _event(
    model: RegisteredModel,
    kind: str,
    actor: Any,
    *,
    version: int | None = None,
    alias: str = "",
    from_value: Any = "",
    to_value: Any = "",
    timestamp: int | None = None,
) -> RegistryEvent:
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return RegistryEvent.objects.create(
        model=model,
        kind=kind,
        version=version,
        alias=alias,
        from_value="" if from_value is None else str(from_value),
        to_value="" if to_value is None else str(to_value),
        actor=actor if authenticated else None,
        actor_name=actor.get_username() if authenticated else "system",
        timestamp=timestamp or now_ms(),
    )


def _touch(model: RegisteredModel, when: int) -> None:
    model.last_updated_timestamp = when
    RegisteredModel.objects.filter(pk=model.pk).update(last_updated_timestamp=when)


# Registered models -------------------------------------------------------------------------------


def create_registered_model(
    name: Any, *, owner: Any, description: Any = None, tags: Iterable[tuple[Any, Any]] = ()
) -> RegisteredModel:
    """Create a model (no versions yet); its creator gets MANAGE on it."""
    name = validate_model_name(name)
    tag_map = _clean_tags(tags)
    authenticated = owner is not None and getattr(owner, "is_authenticated", False)
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name, description=_description(description), owner=owner if authenticated else None
            )
            RegisteredModelTag.objects.bulk_create(
                [RegisteredModelTag(model=model, key=k, value=v) for k, v in tag_map.items()]
            )
            _event(model, RegistryEvent.Kind.MODEL_CREATED, owner, to_value=name, timestamp=model.creation_timestamp)
            record_audit(owner, "registered_model.create", model, {"name": name})
    except IntegrityError:
        # `register_model` relies on this exact code to go on and add a version to the existing model.
        raise MlflowError(f"Registered Model (name={name}) already exists.", "RESOURCE_ALREADY_EXISTS") from None
    return model


def update_registered_model(model: RegisteredModel, *, description: Any, actor: Any) -> RegisteredModel:
    model.description = _description(description)
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["description", "last_updated_timestamp"])
    return model


def rename_registered_model(model: RegisteredModel, new_name: Any, *, actor: Any) -> RegisteredModel:
    if new_name is None or (isinstance(new_name, str) and new_name.strip() == ""):
        raise invalid("Missing value for required parameter 'new_name'.")
    new_name = validate_model_name(new_name, "new_name")
    old_name = model.name
    if new_name == old_name:
        return model
    try:
        with transaction.atomic():
            model.name = new_name
            model.last_updated_timestamp = now_ms()
            model.save(update_fields=["name", "last_updated_timestamp"])
            _event(model, RegistryEvent.Kind.MODEL_RENAMED, actor, from_value=old_name, to_value=new_name)
            record_audit(actor, "registered_model.rename", model, {"from": old_name, "to": new_name})
    except IntegrityError:
        model.name = old_name
        raise MlflowError(f"Registered Model (name={new_name}) already exists.", "RESOURCE_ALREADY_EXISTS") from None
    return model


def delete_registered_model(model: RegisteredModel, *, actor: Any) -> None:
    """Delete the model, its versions, tags, aliases and timeline (the audit log keeps the deletion)."""
    with transaction.atomic(), _refuse_if_deployed(f"Registered model '{model.name}'"):
        record_audit(actor, "registered_model.delete", model, {"name": model.name, "versions": model.last_version})
        model.delete()


@contextmanager
def _refuse_if_deployed(what: str) -> Iterator[None]:
    """Deployments protect the versions they serve (the registry may not import them): a deletion
    they block is the client's mistake, a 400 naming them, never a 500."""
    try:
        yield
    except ProtectedError as exc:
        names = sorted({str(getattr(obj, "deployment", obj)) for obj in exc.protected_objects})
        raise MlflowError(
            f"{what} is deployed ({', '.join(names)}): remove it from its deployments first.", "INVALID_STATE"
        ) from None


def set_registered_model_tag(model: RegisteredModel, key: Any, value: Any) -> None:
    ((key, value),) = _clean_tags([(key, value)]).items()
    with transaction.atomic():
        RegisteredModelTag.objects.update_or_create(model=model, key=key, defaults={"value": value})
        _touch(model, now_ms())


def delete_registered_model_tag(model: RegisteredModel, key: Any) -> None:
    """Deleting a tag that is not there succeeds, as in MLflow."""
    validate_key("Tag", key, "key")
    RegisteredModelTag.objects.filter(model=model, key=key).delete()


# Sources -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedSource:
    """Where a version's files are (`mlflow-artifacts:/…`) and what produced them."""

    storage_location: str
    run: Run | None
    model_id: str | None


def _refuse(source: str, why: str) -> MlflowError:
    return invalid(
        f"Invalid model version source '{source}': {why}. A source must be in this portal's artifact store: "
        "'runs:/<run_id>/<path>', 'models:/<logged_model_id>', 'models:/<name>/<version>' or "
        "'mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path>'."
    )


def resolve_source(user: Any, source: Any, *, run_id: str | None = None, model_id: str | None = None) -> ResolvedSource:
    """Check that `source` is in the portal's artifact store and that `user` may READ what it points at.

    Anything else (`file:` URIs, absolute or relative local paths, `..`, other schemes or hosts) is
    refused: a version's files must be downloadable through the portal, with its permission checks,
    by every client and by the model server."""
    if not isinstance(source, str) or not source:
        raise invalid("Missing value for required parameter 'source'.")
    if len(source) > MAX_SOURCE_LENGTH:
        raise _refuse(source[:100] + "…", f"longer than {MAX_SOURCE_LENGTH} characters")
    parsed = urlparse(source)
    if parsed.scheme == "runs":
        if parsed.netloc:
            raise _refuse(source, "runs:/ URIs name no host")
        source_run_id, _, path = parsed.path.lstrip("/").partition("/")
        run = run_for(user, source_run_id)
        root = artifacts.relative_of_uri(run.artifact_uri)
        relative = artifacts.join(root, artifacts.safe_relative_path(path)) if path.strip("/") else root
        resolved = ResolvedSource(f"{artifacts.ARTIFACT_SCHEME}:/{relative}", run, None)
    elif parsed.scheme == "models":
        resolved = _resolve_models_uri(user, source, parsed.netloc, parsed.path)
    elif parsed.scheme == artifacts.ARTIFACT_SCHEME:
        if parsed.netloc:
            raise _refuse(source, "mlflow-artifacts URIs of other hosts are not served by this portal")
        resolved = _resolve_artifact_path(user, source, parsed.path.lstrip("/"))
    elif parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and source[1:3] in (":\\", ":/")):
        raise _refuse(source, "local paths are not in the portal's artifact store")
    else:
        raise _refuse(source, f"the {parsed.scheme!r} scheme is not served by this portal")
    if run_id:
        run = run_for(user, run_id)
        if resolved.run is not None and resolved.run.pk != run.pk:
            raise invalid(f"The source '{source}' does not belong to run '{run_id}'.")
        resolved = ResolvedSource(resolved.storage_location, run, resolved.model_id)
    if model_id:
        logged = logged_model_for(user, model_id)
        if resolved.model_id is not None and resolved.model_id != logged.pk:
            raise invalid(f"The source '{source}' is not logged model '{model_id}'.")
        resolved = ResolvedSource(resolved.storage_location, resolved.run or logged.source_run, logged.pk)
    return resolved


def _resolve_models_uri(user: Any, source: str, netloc: str, path: str) -> ResolvedSource:
    if netloc:
        raise _refuse(source, "models:/ URIs of other registries are not served by this portal")
    parts = path.lstrip("/").split("/")
    if len(parts) == 1 and parts[0] and "@" not in parts[0]:
        logged = logged_model_for(user, parts[0])
        artifacts.relative_of_uri(logged.artifact_location)  # the portal's own store, or 400
        return ResolvedSource(logged.artifact_location, logged.source_run, logged.pk)
    if len(parts) == 2 and parts[1].isdigit():
        from registry.lookups import version_for  # lookups builds on this module's validation

        version = version_for(user, parts[0], parts[1])
        # Reading the registry is not enough: the files are the source run's, so is the permission.
        run = run_for(user, version.run_id) if version.run_id else None
        return ResolvedSource(version.storage_location, run, version.logged_model_id)
    raise _refuse(source, "a models:/ source is 'models:/<logged_model_id>' or 'models:/<name>/<version>'")


def _resolve_artifact_path(user: Any, source: str, path: str) -> ResolvedSource:
    relative = artifacts.safe_relative_path(path)
    segments = relative.split("/")
    artifacts.experiment_id_of(relative)
    if len(segments) >= 3 and segments[2] == "artifacts":
        run = run_for(user, segments[1])
        if str(run.experiment_id) != segments[0] or artifacts.relative_of_uri(run.artifact_uri) != "/".join(
            segments[:3]
        ):
            raise _refuse(source, f"run '{segments[1]}' keeps its artifacts elsewhere")
        return ResolvedSource(f"{artifacts.ARTIFACT_SCHEME}:/{relative}", run, None)
    if len(segments) >= 4 and segments[1] == "models" and segments[3] == "artifacts":
        logged = logged_model_for(user, segments[2])
        if artifacts.relative_of_uri(logged.artifact_location) != "/".join(segments[:4]):
            raise _refuse(source, f"logged model '{segments[2]}' keeps its artifacts elsewhere")
        return ResolvedSource(f"{artifacts.ARTIFACT_SCHEME}:/{relative}", logged.source_run, logged.pk)
    raise _refuse(source, "it is neither under a run's artifacts nor under a logged model's")


# Model versions ----------------------------------------------------------------------------------


def create_model_version(
    model: RegisteredModel,
    resolved: ResolvedSource,
    *,
    source: str,
    creator: Any,
    run_link: Any = None,
    description: Any = None,
    tags: Iterable[tuple[Any, Any]] = (),
) -> ModelVersion:
    """Add the next version (READY at once: its files are already in the store)."""
    tag_map = _clean_tags(tags)
    authenticated = creator is not None and getattr(creator, "is_authenticated", False)
    if run_link is not None and not isinstance(run_link, str):
        raise invalid("Invalid value for parameter 'run_link' supplied: must be a string")
    with transaction.atomic():
        # Claim the number with one UPDATE first: it takes the row lock on PostgreSQL (and the write
        # lock on SQLite) before anything is read, so concurrent registrations queue here and each
        # reads back its own number. The unique constraint on (model, version) is the backstop.
        when = now_ms()
        updated = RegisteredModel.objects.filter(pk=model.pk).update(
            last_version=F("last_version") + 1, last_updated_timestamp=when
        )
        if not updated:
            raise not_found(f"Registered Model with name={model.name} not found")
        model.last_version = RegisteredModel.objects.values_list("last_version", flat=True).get(pk=model.pk)
        model.last_updated_timestamp = when
        version = ModelVersion.objects.create(
            model=model,
            version=model.last_version,
            source=source,
            storage_location=resolved.storage_location,
            run=resolved.run,
            logged_model_id=resolved.model_id,
            run_link=run_link or "",
            description=_description(description),
            creation_timestamp=when,
            last_updated_timestamp=when,
            user_id=creator.get_username() if authenticated else "",
            creator=creator if authenticated else None,
        )
        ModelVersionTag.objects.bulk_create(
            [ModelVersionTag(version=version, key=k, value=v) for k, v in tag_map.items()]
        )
        _event(
            model, RegistryEvent.Kind.VERSION_CREATED, creator, version=version.version, to_value=source, timestamp=when
        )
    return version


def update_model_version(version: ModelVersion, *, description: Any) -> ModelVersion:
    version.description = _description(description)
    version.last_updated_timestamp = now_ms()
    version.save(update_fields=["description", "last_updated_timestamp"])
    return version


def transition_stage(version: ModelVersion, stage: Any, *, archive_existing_versions: bool, actor: Any) -> ModelVersion:
    """Move a version to a stage; with `archive_existing_versions`, the versions already in that
    (active) stage move to Archived. Every move is a timeline event."""
    target = canonical_stage(stage)
    if archive_existing_versions and target not in ACTIVE_STAGES:
        raise invalid(
            f"Model version transition cannot archive existing model versions because '{stage}' is not an "
            f"Active stage. Valid stages are {[s.value for s in ACTIVE_STAGES]}"
        )
    model = version.model
    with transaction.atomic():
        when = now_ms()
        if archive_existing_versions:
            others = list(
                ModelVersion.objects.select_for_update()
                .filter(model=model, current_stage=target)
                .exclude(pk=version.pk)
                .order_by("version")
            )
            for other in others:
                _event(
                    model, RegistryEvent.Kind.STAGE_CHANGED, actor, version=other.version,
                    from_value=other.current_stage, to_value=Stage.ARCHIVED, timestamp=when,
                )  # fmt: skip
            ModelVersion.objects.filter(pk__in=[o.pk for o in others]).update(
                current_stage=Stage.ARCHIVED, last_updated_timestamp=when
            )
        previous = ModelVersion.objects.values_list("current_stage", flat=True).get(pk=version.pk)
        version.current_stage = target
        version.last_updated_timestamp = when
        version.save(update_fields=["current_stage", "last_updated_timestamp"])
        if previous != target:
            _event(
                model, RegistryEvent.Kind.STAGE_CHANGED, actor, version=version.version,
                from_value=previous, to_value=target, timestamp=when,
            )  # fmt: skip
        _touch(model, when)
    return version


def delete_model_version(version: ModelVersion, *, actor: Any) -> None:
    """Delete a version and the aliases pointing at it; its number is never given again."""
    model = version.model
    with transaction.atomic():
        when = now_ms()
        for alias in RegisteredModelAlias.objects.filter(version=version).order_by("alias"):
            _event(
                model, RegistryEvent.Kind.ALIAS_DELETED, actor, version=version.version, alias=alias.alias,
                from_value=version.version, timestamp=when,
            )  # fmt: skip
        _event(
            model, RegistryEvent.Kind.VERSION_DELETED, actor, version=version.version,
            from_value=version.current_stage, timestamp=when,
        )  # fmt: skip
        record_audit(actor, "model_version.delete", version, {"name": model.name, "version": version.version})
        with _refuse_if_deployed(f"Version {version.version} of model '{model.name}'"):
            version.delete()
        _touch(model, when)


def set_model_version_tag(version: ModelVersion, key: Any, value: Any) -> None:
    if value is None:
        raise invalid("Tag value cannot be None")
    ((key, value),) = _clean_tags([(key, value)]).items()
    ModelVersionTag.objects.update_or_create(version=version, key=key, defaults={"value": value})


def delete_model_version_tag(version: ModelVersion, key: Any) -> None:
    """Deleting a tag that is not there succeeds, as in MLflow."""
    validate_key("Tag", key, "key")
    ModelVersionTag.objects.filter(version=version, key=key).delete()


# Aliases -----------------------------------------------------------------------------------------


def set_alias(model: RegisteredModel, alias: Any, version: ModelVersion, *, actor: Any) -> RegisteredModelAlias:
    """Point `alias` at `version` (creating it, or moving it from the version it pointed at)."""
    alias = validate_alias(alias)
    with transaction.atomic():
        when = now_ms()
        existing = (
            RegisteredModelAlias.objects.select_for_update().select_related("version").filter(model=model, alias=alias)
        ).first()
        if existing is not None and existing.version_id == version.pk:
            return existing
        previous = existing.version.version if existing is not None else None
        row, _ = RegisteredModelAlias.objects.update_or_create(model=model, alias=alias, defaults={"version": version})
        _event(
            model, RegistryEvent.Kind.ALIAS_SET, actor, version=version.version, alias=alias,
            from_value=previous, to_value=version.version, timestamp=when,
        )  # fmt: skip
        _touch(model, when)
    return row


def delete_alias(model: RegisteredModel, alias: Any, *, actor: Any) -> None:
    """Remove an alias; removing one that is not there succeeds, as in MLflow."""
    alias = validate_alias(alias, for_write=False)
    with transaction.atomic():
        existing = RegisteredModelAlias.objects.select_related("version").filter(model=model, alias=alias).first()
        if existing is None:
            return
        when = now_ms()
        _event(
            model, RegistryEvent.Kind.ALIAS_DELETED, actor, version=existing.version.version, alias=alias,
            from_value=existing.version.version, timestamp=when,
        )  # fmt: skip
        existing.delete()
        _touch(model, when)


# Reads used by several callers -------------------------------------------------------------------


def latest_versions(model: RegisteredModel, stages: list[str] | None = None) -> list[ModelVersion]:
    """The highest version in each stage (all stages when `stages` is empty), lowest number first."""
    wanted = {canonical_stage(s) for s in stages} if stages else {s.value for s in Stage}
    rows = ModelVersion.objects.filter(model=model, current_stage__in=wanted).order_by("current_stage", "-version")
    latest: dict[str, ModelVersion] = {}
    for row in rows:
        latest.setdefault(row.current_stage, row)
    return sorted(latest.values(), key=lambda v: v.version)


def register_source(user: Any, name: str, source: str) -> ModelVersion:
    """Register a model (`runs:/<id>/model`, `models:/<id>`, ...) as the next version of `name`, creating the
    registered model (its creator gets MANAGE) when there is none: the page's "Register" and pipelines call
    this. The MLflow API's checks: READ on the source, EDIT on an existing model, a source in the store."""
    from registry.lookups import registered_model_for

    resolved = resolve_source(user, source)  # first: a refused source creates nothing
    with transaction.atomic():
        if RegisteredModel.objects.filter(name=name).exists():
            model = registered_model_for(user, name, "EDIT")
        else:
            model = create_registered_model(name, owner=user)
        return create_model_version(model, resolved, source=source, creator=user)

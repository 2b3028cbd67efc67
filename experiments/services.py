"""The write path of experiment tracking. The MLflow API, the dashboard and jobs all call these.

Every write is idempotent where clients retry: metric points are unique, params accept the same
value again, tags are upserts, deletes of deleted things succeed.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from accounts.services import record_audit
from experiments.mlflow_api.common import MlflowError, invalid, not_found
from experiments.models import (
    BUCKET_BITS,
    Experiment,
    ExperimentKey,
    ExperimentPermission,
    ExperimentTag,
    LatestMetric,
    LifecycleStage,
    Metric,
    MetricBucket,
    Param,
    Permission,
    Run,
    RunInput,
    RunStatus,
    RunTag,
    now_ms,
)
from mlops_portal import rawsql

MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
_NAME_RE = re.compile(r"^[/\w.\- :]*$")
ARTIFACT_SCHEME = "mlflow-artifacts:"


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int
    step: int


# Validation with MLflow's own messages ------------------------------------------------------------


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def validate_key(kind: str, key: Any, path: str) -> str:
    if not isinstance(key, str) or key == "":
        raise invalid(f"Invalid value {_json(key)} for parameter '{path}' supplied: {kind} name cannot be empty.")
    if not _NAME_RE.match(key):
        raise invalid(
            f"Invalid value {_json(key)} for parameter '{path}' supplied: Names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise invalid(
            f"Invalid value {_json(key)} for parameter '{path}' supplied: Names may be treated as files in certain "
            f"cases, and must not resolve to other names when treated as such. This name would resolve to {norm!r}"
        )
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise invalid(f"'{path}' exceeds the maximum length of {MAX_ENTITY_KEY_LENGTH} characters")
    return key


def validate_value(value: Any, limit: int, path: str) -> str:
    if value is None:
        raise invalid(f"Missing value for required parameter '{path}'.")
    if not isinstance(value, str):
        value = str(value)
    if len(value) > limit:
        raise invalid(f"'{path}' exceeds the maximum length of {limit} characters")
    return value


def validate_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid("Invalid experiment name: '{}'".format(name if name is not None else ""))
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise invalid(f"'name' exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters")
    return name


def validate_batch_limits(metrics: int, params: int, tags: int) -> None:
    for name, limit, count in (
        ("metrics", MAX_METRICS_PER_BATCH, metrics),
        ("params", MAX_PARAMS_TAGS_PER_BATCH, params),
        ("tags", MAX_PARAMS_TAGS_PER_BATCH, tags),
        ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, metrics + params + tags),
    ):
        if count > limit:
            raise invalid(
                f"A batch logging request can contain at most {limit} {name}. Got {count} {name}. "
                f"Please split up {name} across multiple requests and try again."
            )


# Experiments -------------------------------------------------------------------------------------


DEFAULT_EXPERIMENT_NAME = "Default"


def ensure_default_experiment() -> Experiment:
    """Experiment 0, "Default": MLflow clients assume it exists. A migration creates it; this puts it
    back if it was removed (a flushed database, an admin's delete)."""
    experiment, _ = Experiment.objects.get_or_create(
        pk=0, defaults={"name": DEFAULT_EXPERIMENT_NAME, "artifact_location": f"{ARTIFACT_SCHEME}/0"}
    )
    return experiment


def create_experiment(
    name: str, *, owner: Any, tags: Iterable[tuple[str, str]] = (), artifact_location: str | None = None
) -> Experiment:
    name = validate_experiment_name(name)
    if artifact_location:
        # Every byte goes through the portal's own store: a client cannot point an experiment elsewhere.
        raise invalid(
            f"Invalid value {_json(artifact_location)} for parameter 'artifact_location' supplied: the portal "
            "chooses artifact locations (under mlflow-artifacts:/); leave it empty"
        )
    tag_rows = [(validate_key("Tag", k, "tags.key"), validate_value(v, MAX_EXPERIMENT_TAG_VAL_LENGTH, "tags.value"))
                for k, v in tags]  # fmt: skip
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(name=name, artifact_location="", owner=owner)
            experiment.artifact_location = f"{ARTIFACT_SCHEME}/{experiment.pk}"
            experiment.save(update_fields=["artifact_location"])
            ExperimentTag.objects.bulk_create(
                [ExperimentTag(experiment=experiment, key=k, value=v) for k, v in tag_rows]
            )
            if owner is not None and getattr(owner, "is_authenticated", False):
                ExperimentPermission.objects.create(experiment=experiment, user=owner, level=Permission.MANAGE)
            record_audit(owner, "experiment.create", experiment, {"name": name})
    except IntegrityError:
        raise MlflowError(f"Experiment '{name}' already exists.", "RESOURCE_ALREADY_EXISTS") from None
    return experiment


def rename_experiment(experiment: Experiment, new_name: str, *, actor: Any) -> None:
    new_name = validate_experiment_name(new_name)
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise MlflowError("Cannot rename a non-active experiment.", "INVALID_STATE")
    try:
        with transaction.atomic():
            old = experiment.name
            experiment.name = new_name
            experiment.last_update_time = now_ms()
            experiment.save(update_fields=["name", "last_update_time"])
            record_audit(actor, "experiment.rename", experiment, {"from": old, "to": new_name})
    except IntegrityError:
        raise MlflowError(f"Experiment '{new_name}' already exists.", "RESOURCE_ALREADY_EXISTS") from None


def set_experiment_lifecycle(experiment: Experiment, stage: str, *, actor: Any) -> None:
    """Delete (soft) or restore an experiment and its runs. Experiment 0 cannot be deleted."""
    if experiment.pk == 0 and stage == LifecycleStage.DELETED:
        raise invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
    with transaction.atomic():
        experiment.lifecycle_stage = stage
        experiment.last_update_time = now_ms()
        experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
        Run.objects.filter(experiment=experiment).update(
            lifecycle_stage=stage, deleted_time=now_ms() if stage == LifecycleStage.DELETED else None
        )
        record_audit(actor, f"experiment.{'delete' if stage == LifecycleStage.DELETED else 'restore'}", experiment)


def set_experiment_tag(experiment: Experiment, key: str, value: Any) -> None:
    key = validate_key("Tag", key, "key")
    value = validate_value(value, MAX_EXPERIMENT_TAG_VAL_LENGTH, "value")
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise MlflowError(f"The experiment {experiment.pk} must be in the 'active' state.", "INVALID_STATE")
    ExperimentTag.objects.update_or_create(experiment=experiment, key=key, defaults={"value": value})


def delete_experiment_tag(experiment: Experiment, key: str) -> None:
    deleted, _ = ExperimentTag.objects.filter(experiment=experiment, key=key).delete()
    if not deleted:
        raise not_found(f"No tag with name: {key} in experiment with id {experiment.pk}")


# Runs --------------------------------------------------------------------------------------------


def create_run(
    experiment: Experiment,
    *,
    user_id: str,
    start_time: int | None,
    run_name: str | None,
    tags: list[tuple[str, str]],
) -> Run:
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise MlflowError(
            f"The experiment {experiment.pk} must be in the 'active' state. "
            f"Current state is {experiment.lifecycle_stage}.",
            "INVALID_PARAMETER_VALUE",
        )
    tag_map = {validate_key("Tag", k, "tags.key"): validate_value(v, MAX_TAG_VAL_LENGTH, "tags.value") for k, v in tags}
    name = run_name or tag_map.get("mlflow.runName") or _generated_name()
    tag_map["mlflow.runName"] = name
    if user_id:
        tag_map.setdefault("mlflow.user", user_id)
    run = Run(experiment=experiment, name=name[:250], user_id=user_id, start_time=start_time or now_ms())
    run.artifact_uri = f"{experiment.artifact_location}/{run.run_uuid}/artifacts"
    if connection.vendor == "postgresql":
        _insert_run_postgres(run, tag_map)
    else:
        with transaction.atomic():
            run.save(force_insert=True)
            RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in tag_map.items()])
            remember_keys(experiment.pk, ExperimentKey.Kind.TAG, _column_keys(tag_map))
            Experiment.objects.filter(pk=experiment.pk).update(last_update_time=now_ms())
    run.initial_tags = tag_map  # type: ignore[attr-defined]  (lets the API answer without reading back)
    return run


def _keys_cte(name: str) -> str:
    """A CTE recording keys in ExperimentKey (params: experiment, kind, keys). Sorted, so two requests
    adding the same new keys take their locks in the same order and cannot deadlock."""
    return (
        f" {name} AS (INSERT INTO {ExperimentKey._meta.db_table} (experiment_id, kind, key)"  # noqa: S608
        " SELECT %s, %s, k FROM unnest(%s::varchar[]) AS u(k) ORDER BY k ON CONFLICT DO NOTHING)"
    )


def _guarded_keys_cte(name: str) -> str:
    """`_keys_cte` for the experiment of the statement's `guard` row, when the guard allows (params:
    kind, keys)."""
    return (
        f" {name} AS (INSERT INTO {ExperimentKey._meta.db_table} (experiment_id, kind, key)"  # noqa: S608
        " SELECT guard.w_exp, %s, k FROM guard, unnest(%s::varchar[]) AS u(k) WHERE guard.w_ok"
        " ORDER BY k ON CONFLICT DO NOTHING)"
    )


# The `guard` CTE of a write whose owner is already read and checked: the owner, its experiment (or
# NULL) and a yes (see experiments.mlflow_api.lookups.RunGuard for the one that checks).
KNOWN_OWNER = "guard AS (SELECT %s AS w_run, %s::bigint AS w_exp, TRUE AS w_ok)"
KNOWN_OWNER_COLUMNS = 3
# The same for metric points, which have no foreign key to the run (see Metric): the run, read again
# and locked against deletion (FOR KEY SHARE) until the points are committed. No row: the run is gone.
RUN_FOR_POINTS = (
    f"guard AS (SELECT run_uuid AS w_run, experiment_id AS w_exp, TRUE AS w_ok"  # noqa: S608
    f" FROM {Run._meta.db_table} WHERE run_uuid = %s FOR KEY SHARE)"
)


def remember_keys(experiment_id: int, kind: str, keys: Iterable[str]) -> None:
    """Record keys in ExperimentKey where they are not written by one of the statements above."""
    keys = sorted(set(keys))
    if keys:
        ExperimentKey.objects.bulk_create(
            [ExperimentKey(experiment_id=experiment_id, kind=kind, key=k) for k in keys], ignore_conflicts=True
        )


def _column_keys(tags: Iterable[str]) -> list[str]:
    return sorted(k for k in set(tags) if not k.startswith("mlflow."))  # system tags are not columns


def _insert_run_postgres(run: Run, tags: dict[str, str]) -> None:
    """The run, its tags and the experiment's last update in one statement, so in one round trip and
    atomic without BEGIN and COMMIT (Django's foreign keys are checked at commit, so the tags may
    reference the run inserted beside them)."""
    fields = Run._meta.concrete_fields
    columns = ", ".join(f'"{f.column}"' for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    values = [f.get_db_prep_save(getattr(run, f.attname), connection) for f in fields]
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(
            f"WITH new_run AS (INSERT INTO {Run._meta.db_table} ({columns}) VALUES ({placeholders})),"  # noqa: S608
            f" new_tags AS (INSERT INTO {RunTag._meta.db_table} (run_id, key, value)"
            " SELECT %s, k, v FROM unnest(%s::varchar[], %s::text[]) AS u(k, v)),"
            + _keys_cte("tag_keys")
            + f" UPDATE {Experiment._meta.db_table} SET last_update_time = %s WHERE id = %s",  # noqa: S608
            [
                *values,
                run.pk,
                list(tags),
                list(tags.values()),
                run.experiment_id,
                ExperimentKey.Kind.TAG,
                _column_keys(tags),
                now_ms(),
                run.experiment_id,
            ],
        )
    run._state.adding = False
    run._state.db = "default"


def _generated_name() -> str:
    import secrets

    adjectives = ["bright", "calm", "eager", "gentle", "keen", "lucky", "merry", "quick", "sharp", "wise"]
    animals = ["otter", "heron", "lynx", "panda", "fox", "owl", "whale", "yak", "crane", "bee"]
    return f"{secrets.choice(adjectives)}-{secrets.choice(animals)}-{secrets.randbelow(1000)}"


def require_active(run: Run) -> None:
    if run.lifecycle_stage != LifecycleStage.ACTIVE:
        raise invalid(f"The run {run.run_uuid} must be in the 'active' state. Current state is {run.lifecycle_stage}.")


def update_run(run: Run, *, status: str | None, end_time: int | None, run_name: str | None) -> Run:
    require_active(run)
    fields = []
    if status:
        if status not in RunStatus.values:
            raise invalid(f"Invalid value {_json(status)} for parameter 'status' supplied.")
        run.status = status
        fields.append("status")
    if end_time is not None:
        run.end_time = end_time
        fields.append("end_time")
    with transaction.atomic():
        if run_name:
            run.name = run_name[:250]
            fields.append("name")
            RunTag.objects.update_or_create(run=run, key="mlflow.runName", defaults={"value": run_name})
        if fields:
            run.save(update_fields=fields)
    return run


def set_run_lifecycle(run: Run, stage: str, *, actor: Any) -> None:
    with transaction.atomic():
        run.lifecycle_stage = stage
        run.deleted_time = now_ms() if stage == LifecycleStage.DELETED else None
        run.save(update_fields=["lifecycle_stage", "deleted_time"])
        record_audit(actor, f"run.{'delete' if stage == LifecycleStage.DELETED else 'restore'}", run)


def clean_params(params: list[tuple[Any, Any]], field: str | None = None) -> dict[str, str]:
    """Validated params; one key twice with two values in one request is an error. `field` names the
    request's list of params in error messages (default: `params[i].` in batches, nothing for one)."""
    clean: dict[str, str] = {}
    for index, (key, value) in enumerate(params):
        path = f"{field}." if field else f"params[{index}]." if len(params) > 1 else ""
        key = validate_key("Param", key, f"{path}key")
        value = validate_value(value, MAX_PARAM_VAL_LENGTH, f"{path}value")
        if key in clean and clean[key] != value:
            raise invalid(
                f"Duplicate parameter keys have been submitted: [{key!r}]. Please ensure the request contains only "
                "one param value per param key."
            )
        clean[key] = value
    return clean


def store_immutable_params(
    model: type[models.Model],
    owner_column: str,
    owner_id: Any,
    clean: dict[str, str],
    owner: str,
    experiment_id: int | None = None,
) -> None:
    """Insert params that are new; the same value again is fine; a different value for a stored key is
    an error that rolls back the whole request. `model` has (owner_column, key, value) with one row
    per owner and key (runs' params, logged models' params). `experiment_id`: record the keys in
    ExperimentKey too (runs' params)."""
    if not clean:
        return
    # One key on its own writes nothing when it clashes, so it needs no transaction (no BEGIN and
    # COMMIT round trips); several keys must not leave the new ones behind when one clashes.
    with transaction.atomic() if len(clean) > 1 else nullcontext():
        if connection.vendor == "postgresql":
            _, existing = _store_params_postgres(
                KNOWN_OWNER,
                [owner_id, experiment_id],
                KNOWN_OWNER_COLUMNS,
                model,
                owner_column,
                clean,
                experiment_id is not None,
            )
        else:
            existing = _store_params(model, owner_column, owner_id, clean, experiment_id)
        _refuse_changed_params(clean, existing, owner)


def log_params_guarded(guard: Any, params: list[tuple[Any, Any]]) -> None:
    """`log_params` for a run not read yet: on PostgreSQL one statement finds the run, checks the
    caller's permission and writes (see RunGuard); elsewhere the lookup, then the write. The params
    are checked first either way. Raises the lookup's error."""
    clean = clean_params(params)
    if connection.vendor != "postgresql":
        log_params(guard.lookup(), params)
        return
    with transaction.atomic() if len(clean) > 1 else nullcontext():
        row, existing = _store_params_postgres(guard.cte, guard.params, guard.columns, Param, "run_id", clean, True)
        guard.resolve(row)
        if clean:
            _refuse_changed_params(clean, existing, f"run ID='{guard.run_id}'")


def _refuse_changed_params(clean: dict[str, str], existing: dict[str, str], owner: str) -> None:
    for key, value in clean.items():
        if existing.get(key) != value:
            raise invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{existing.get(key)}' for {owner}. Attempted logging new value '{value}'."
            )


def _store_params_postgres(
    source: str,
    source_params: list[Any],
    source_width: int,
    model: type[models.Model],
    owner_column: str,
    clean: dict[str, str],
    remember: bool,
) -> tuple[Any, dict[str, str]]:
    """Insert the new keys for the owner of the `guard` CTE `source` (if it allows); the guard's row
    (None: no such owner) and every key's stored value, in one statement (a statement's snapshot
    does not see its own inserts, which are ours by definition)."""
    table = model._meta.db_table
    keys = list(clean)
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(
            f"WITH {source}, new AS (SELECT * FROM unnest(%s::varchar[], %s::text[]) AS u(k, v)),"  # noqa: S608
            f" ins AS (INSERT INTO {table} ({owner_column}, key, value) SELECT guard.w_run, k, v FROM guard, new"
            " WHERE guard.w_ok ON CONFLICT DO NOTHING RETURNING key)"
            + ("," + _guarded_keys_cte("param_keys") if remember else "")
            # A subquery per key, so each is one probe of the (owner, key) index: a join would read
            # every param of the owner and filter them. The guard's row comes with every key (and
            # alone when there are none).
            + f" SELECT guard.*, new.k, (SELECT old.value FROM {table} old"  # noqa: S608
            f" WHERE old.{owner_column} = guard.w_run AND old.key = new.k), new.k IN (SELECT key FROM ins)"
            " FROM guard LEFT JOIN new ON TRUE",
            [
                *source_params,
                keys,
                list(clean.values()),
                *((ExperimentKey.Kind.PARAM, sorted(keys)) if remember else ()),
            ],
        )
        rows = cursor.fetchall()
        if not rows:
            return None, {}
        existing: dict[str, str] = {}
        raced = []
        for row in rows:
            key, old_value, inserted = row[source_width:]
            if key is None:
                continue
            if inserted:
                existing[key] = clean[key]
            elif old_value is not None:
                existing[key] = old_value
            elif row[source_width - 1]:  # another request stored this key after our snapshot began
                raced.append(key)
        if raced:
            cursor.execute(
                f"SELECT key, value FROM {table} WHERE {owner_column} = %s AND key = ANY(%s)",  # noqa: S608
                [rows[0][source_width - 3], raced],
            )
            existing.update(cursor.fetchall())
        return rows[0][:source_width], existing


def _store_params(
    model: type[models.Model], owner_column: str, owner_id: Any, clean: dict[str, str], experiment_id: int | None
) -> dict[str, str]:
    """Insert the new keys; return every key's stored value (SQLite)."""
    keys = list(clean)
    owner_field = model._meta.get_field(owner_column.removesuffix("_id"))
    model.objects.bulk_create(
        [model(**{owner_field.attname: owner_id, "key": k, "value": v}) for k, v in clean.items()],
        ignore_conflicts=True,
    )
    rows = model.objects.filter(**{owner_field.attname: owner_id, "key__in": keys})
    if experiment_id is not None:
        remember_keys(experiment_id, ExperimentKey.Kind.PARAM, keys)
    return dict(rows.values_list("key", "value"))


def log_params(run: Run, params: list[tuple[Any, Any]]) -> None:
    """Log params; the same value again is fine, a different value for a logged key is an error."""
    require_active(run)
    store_immutable_params(
        Param, "run_id", run.pk, clean_params(params), f"run ID='{run.run_uuid}'", experiment_id=run.experiment_id
    )


def set_tags(run: Run, tags: list[tuple[Any, Any]]) -> None:
    require_active(run)
    clean = {}
    for key, value in tags:
        clean[validate_key("Tag", key, "key")] = validate_value(value, MAX_TAG_VAL_LENGTH, "value")
    if not clean:
        return
    with transaction.atomic():
        RunTag.objects.bulk_create(
            [RunTag(run=run, key=k, value=v) for k, v in clean.items()],
            update_conflicts=True,
            unique_fields=["run", "key"],
            update_fields=["value"],
        )
        remember_keys(run.experiment_id, ExperimentKey.Kind.TAG, _column_keys(clean))
        if "mlflow.runName" in clean:
            Run.objects.filter(pk=run.pk).update(name=clean["mlflow.runName"][:250])


def delete_tag(run: Run, key: str) -> None:
    require_active(run)
    deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
    if not deleted:
        raise not_found(f"No tag with name: {key} in run with id {run.run_uuid}")


def _stored(value: float) -> tuple[float, bool]:
    """(value, is_nan) as stored: SQLite has no NaN, so NaN is 0 with a flag (as MLflow stores it)."""
    return (0.0, True) if math.isnan(value) else (value, False)


def _latest_key(point: MetricPoint) -> tuple[int, int, float]:
    # MLflow's rule for the latest value: the highest step, then timestamp, then (stored) value.
    return (point.step, point.timestamp, _stored(point.value)[0])


def log_metrics(run: Run, points: list[MetricPoint]) -> None:
    """Append metric points (identical points are stored once) and move each key's latest value.

    On PostgreSQL one statement whatever the batch size: an INSERT that skips points already stored
    (so a retried request adds nothing), and an upsert of the latest value per key that only moves
    forward (so concurrent batches for the same run cannot move it backwards).
    """
    require_active(run)
    if not points:
        return
    newest = _check_points(points)
    if connection.vendor == "postgresql":
        # One statement (a data-modifying CTE) is atomic by itself: no BEGIN and COMMIT round trips.
        if _insert_points_postgres(RUN_FOR_POINTS, [run.pk], points, newest) is None:
            raise not_found(f"Run with id={run.run_uuid} not found")  # deleted meanwhile: nothing written
        return
    _insert_points_sqlite(run, points, newest)


def log_metrics_guarded(guard: Any, points: list[MetricPoint]) -> None:
    """`log_metrics` for a run not read yet: on PostgreSQL one statement finds the run, checks the
    caller's permission and writes (see RunGuard); elsewhere the lookup, then the write. The points
    are checked first either way. Raises the lookup's error."""
    newest = _check_points(points)
    if connection.vendor != "postgresql":
        log_metrics(guard.lookup(), points)
        return
    if points:
        row = _insert_points_postgres(guard.locking_cte, guard.params, points, newest)
    else:
        row = rawsql.fetch_one(f"WITH {guard.cte} SELECT * FROM guard", guard.params)  # noqa: S608
    guard.resolve(row)


def _check_points(points: list[MetricPoint]) -> list[MetricPoint]:
    """Validate the keys; the newest point of each key (MLflow's order: step, timestamp, value)."""
    checked: set[str] = set()
    for index, point in enumerate(points):
        if point.key not in checked:
            validate_key("Metric", point.key, f"metrics[{index}].key" if len(points) > 1 else "key")
            checked.add(point.key)
    newest: dict[str, MetricPoint] = {}
    for p in points:
        current = newest.get(p.key)
        if current is None:
            newest[p.key] = p
            continue
        mine, theirs = (p.step, p.timestamp), (current.step, current.timestamp)
        if mine > theirs or (mine == theirs and _latest_key(p) > _latest_key(current)):
            newest[p.key] = p
    return list(newest.values())


def _upsert_latest() -> str:
    latest_table = LatestMetric._meta.db_table
    return (
        f" ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,"
        f" timestamp = excluded.timestamp, step = excluded.step"
        f" WHERE (excluded.step, excluded.timestamp, excluded.value)"
        f" > ({latest_table}.step, {latest_table}.timestamp, {latest_table}.value)"
    )


def _insert_points_sqlite(run: Run, points: list[MetricPoint], newest: list[MetricPoint]) -> None:
    latest_table = LatestMetric._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # No foreign key to stop points for a run deleted since it was read (see Metric). The
        # transaction holds SQLite's write lock from its start (transaction_mode IMMEDIATE in settings),
        # so no deletion commits between this check and the inserts below: no point outlives its run.
        cursor.execute(f"SELECT 1 FROM {Run._meta.db_table} WHERE run_uuid = %s", [run.pk])  # noqa: S608
        if cursor.fetchone() is None:
            raise not_found(f"Run with id={run.run_uuid} not found")
        inserted = _insert_points_values(
            cursor,
            run.pk,
            points,
            Metric._meta.db_table,
            " ON CONFLICT DO NOTHING",
            " RETURNING key, value, is_nan, step",
        )
        _upsert_buckets_values(cursor, run.pk, summarise_buckets(inserted))
        _insert_points_values(cursor, run.pk, newest, latest_table, _upsert_latest())
        remember_keys(run.experiment_id, ExperimentKey.Kind.METRIC, [p.key for p in newest])


_COLUMNS = "(run_id, key, value, is_nan, timestamp, step)"
_UNNEST = "unnest(%s::varchar[], %s::float8[], %s::bool[], %s::bigint[], %s::bigint[]) AS u(k, v, n, t, s)"


def _arrays(points: list[MetricPoint]) -> list[str]:
    """The five columns as PostgreSQL array literals: psycopg adapts a list element by element in
    Python, which cost more than the insert for a batch of 1000. Keys are safe to quote as they are
    (validate_key allows no quotes, backslashes, braces or commas)."""
    values, nans = [], []
    for p in points:
        value = p.value
        if value != value:  # NaN: stored as 0 with the flag, as MLflow stores it
            values.append("0")
            nans.append("t")
        else:
            values.append(repr(value) if -_INF < value < _INF else ("Infinity" if value > 0 else "-Infinity"))
            nans.append("f")
    return [
        '{"' + '","'.join([p.key for p in points]) + '"}',
        "{" + ",".join(values) + "}",
        "{" + ",".join(nans) + "}",
        "{" + ",".join([str(p.timestamp) for p in points]) + "}",
        "{" + ",".join([str(p.step) for p in points]) + "}",
    ]


_INF = float("inf")


def _insert_points_postgres(
    source: str, source_params: list[Any], points: list[MetricPoint], newest: list[MetricPoint]
) -> Any:
    """Write the points for the run of the `guard` CTE `source`, if it allows; the guard's row (None:
    no such run). Array parameters keep the statement's text the same whatever the batch size, so
    PostgreSQL and psycopg reuse the parsed statement (6,000 placeholders would be re-parsed)."""
    bucket_table = MetricBucket._meta.db_table
    return rawsql.fetch_one(
        f"WITH {source}, appended AS (INSERT INTO {Metric._meta.db_table} {_COLUMNS}"  # noqa: S608
        f" SELECT guard.w_run, k, v, n, t, s FROM guard, {_UNNEST} WHERE guard.w_ok"
        " ON CONFLICT DO NOTHING RETURNING run_id, key, value, is_nan, step),"
        + _guarded_keys_cte("metric_keys")
        # The points actually inserted, summarised per block of steps (see MetricBucket).
        + f", bucketed AS (INSERT INTO {bucket_table} {_BUCKET_COLUMNS}"  # noqa: S608
        f" SELECT run_id, key, step >> {BUCKET_BITS}, count(*), count(*) FILTER (WHERE NOT f),"
        " min(value) FILTER (WHERE f), (array_agg(step ORDER BY value, step) FILTER (WHERE f))[1],"
        " max(value) FILTER (WHERE f), (array_agg(step ORDER BY value DESC, step) FILTER (WHERE f))[1]"
        " FROM (SELECT run_id, key, value, step,"
        " NOT is_nan AND value <> 'Infinity'::float8 AND value <> '-Infinity'::float8 AS f FROM appended) a"
        f" GROUP BY run_id, key, step >> {BUCKET_BITS} ORDER BY 2, 3"
        + _bucket_upsert()
        + f"), latest AS (INSERT INTO {LatestMetric._meta.db_table} {_COLUMNS}"  # noqa: S608
        f" SELECT guard.w_run, k, v, n, t, s FROM guard, {_UNNEST} WHERE guard.w_ok"
        + _upsert_latest()
        + ") SELECT * FROM guard",
        [
            *source_params,
            *_arrays(points),
            ExperimentKey.Kind.METRIC,
            sorted(p.key for p in newest),
            *_arrays(newest),
        ],
    )


def _insert_points_values(
    cursor: Any, run_id: str, points: list[MetricPoint], table: str, conflict: str, returning: str = ""
) -> list[Any]:
    inserted: list[Any] = []
    for start in range(0, len(points), 1000):
        chunk = points[start : start + 1000]
        values: list[Any] = []
        for p in chunk:
            value, is_nan = _stored(p.value)
            values += [run_id, p.key, value, is_nan, p.timestamp, p.step]
        cursor.execute(
            f"INSERT INTO {table} {_COLUMNS} VALUES "  # noqa: S608
            + ",".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            + conflict
            + returning,
            values,
        )
        if returning:
            inserted += cursor.fetchall()
    return inserted


_BUCKET_COLUMNS = "(run_id, key, bucket, points, non_finite, min_value, min_step, max_value, max_step)"


def _bucket_upsert() -> str:
    """Merge a batch's bucket into the stored one: counts add up, the extremes move outwards."""
    t = MetricBucket._meta.db_table
    lower = f"excluded.min_value IS NOT NULL AND ({t}.min_value IS NULL OR excluded.min_value < {t}.min_value)"
    higher = f"excluded.max_value IS NOT NULL AND ({t}.max_value IS NULL OR excluded.max_value > {t}.max_value)"
    return (
        f" ON CONFLICT (run_id, key, bucket) DO UPDATE SET points = {t}.points + excluded.points,"
        f" non_finite = {t}.non_finite + excluded.non_finite,"
        f" min_value = CASE WHEN {lower} THEN excluded.min_value ELSE {t}.min_value END,"
        f" min_step = CASE WHEN {lower} THEN excluded.min_step ELSE {t}.min_step END,"
        f" max_value = CASE WHEN {higher} THEN excluded.max_value ELSE {t}.max_value END,"
        f" max_step = CASE WHEN {higher} THEN excluded.max_step ELSE {t}.max_step END"
    )


def summarise_buckets(rows: Iterable[tuple[str, float, bool, int]]) -> dict[tuple[str, int], list[Any]]:
    """(key, value, is_nan, step) points as MetricBucket rows: {(key, bucket): [points, non_finite,
    min_value, min_step, max_value, max_step]}, ties going to the lowest step (as the SQL does)."""
    out: dict[tuple[str, int], list[Any]] = {}
    for key, value, is_nan, step in rows:
        b = out.setdefault((key, step >> BUCKET_BITS), [0, 0, None, None, None, None])
        b[0] += 1
        if is_nan or value in (_INF, -_INF):
            b[1] += 1
            continue
        if b[2] is None or (value, step) < (b[2], b[3]):
            b[2], b[3] = value, step
        if b[4] is None or value > b[4] or (value == b[4] and step < b[5]):
            b[4], b[5] = value, step
    return out


def _upsert_buckets_values(cursor: Any, run_id: str, buckets: dict[tuple[str, int], list[Any]]) -> None:
    for (key, bucket), stats in sorted(buckets.items()):
        cursor.execute(
            f"INSERT INTO {MetricBucket._meta.db_table} {_BUCKET_COLUMNS}"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)" + _bucket_upsert(),
            [run_id, key, bucket, *stats],
        )


def log_batch(
    run: Run, *, metrics: list[MetricPoint], params: list[tuple[Any, Any]], tags: list[tuple[Any, Any]]
) -> None:
    validate_batch_limits(len(metrics), len(params), len(tags))
    if not params and not tags:  # one statement: atomic without a transaction's two round trips
        log_metrics(run, metrics)
        return
    with transaction.atomic():
        log_params(run, params)
        set_tags(run, tags)
        log_metrics(run, metrics)


def log_inputs(run: Run, datasets: list[dict[str, Any]]) -> None:
    require_active(run)
    with transaction.atomic():
        for index, item in enumerate(datasets):
            if not isinstance(item, dict) or not isinstance(item.get("dataset") or {}, dict):
                raise invalid(f"Invalid value for parameter 'datasets[{index}]' supplied: must be an object")
            if not isinstance(item.get("tags") or [], list):
                raise invalid(f"Invalid value for parameter 'datasets[{index}].tags' supplied: must be a list")
            dataset = item.get("dataset") or {}
            name = dataset.get("name")
            digest = dataset.get("digest")
            if not name or not digest:
                raise invalid(f"Missing value for required parameter 'datasets[{index}].dataset.name/digest'.")
            RunInput.objects.update_or_create(
                run=run,
                name=validate_value(name, 500, f"datasets[{index}].dataset.name"),
                digest=validate_value(digest, 64, f"datasets[{index}].dataset.digest"),
                defaults={
                    "source_type": validate_value(dataset.get("source_type", ""), 100, "source_type"),
                    "source": validate_value(dataset.get("source", ""), 65535, "source"),
                    "schema": dataset.get("schema") or "",
                    "profile": dataset.get("profile") or "",
                    "tags": [
                        {"key": str(t.get("key", ""))[:255], "value": str(t.get("value", ""))[:500]}
                        for t in item.get("tags") or []
                        if isinstance(t, dict)
                    ],
                },
            )

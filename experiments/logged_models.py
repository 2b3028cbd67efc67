"""Logged models (MLflow 3): the write path, and the search behind `logged-models/search`.

A logged model belongs to an experiment; its files live at
`mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts`. It is created PENDING, the client
uploads its files, then finalizes it READY (or UPLOAD_FAILED). Deleting is soft, like runs.

Writes are idempotent where clients retry: params accept the same value again, tags are upserts,
deleting a deleted model succeeds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, OrderBy, Q, QuerySet

from accounts.services import record_audit
from experiments import permissions
from experiments.mlflow_api.common import MlflowError, invalid, not_found
from experiments.models import (
    Experiment,
    LifecycleStage,
    LoggedModel,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Run,
    now_ms,
)
from experiments.services import (
    MAX_TAG_VAL_LENGTH,
    _generated_name,
    clean_params,
    store_immutable_params,
    validate_key,
    validate_value,
)

MAX_MODEL_NAME_LENGTH = 500
MAX_MODEL_TYPE_LENGTH = 500
_NAME_FORBIDDEN = ("/", ":", ".", "%", '"', "'")  # MLflow's rule: names become paths and URIs
# The protobuf enum's numbers, which clients may send instead of the names.
STATUS_BY_NUMBER = {1: LoggedModelStatus.PENDING, 2: LoggedModelStatus.READY, 3: LoggedModelStatus.FAILED}


def new_model_id() -> str:
    return f"m-{uuid.uuid4().hex}"


def validate_model_name(name: Any) -> str | None:
    """The name, or None when the client left it out (a name is then generated)."""
    if name is None or name == "":
        return None
    if not isinstance(name, str) or any(c in name for c in _NAME_FORBIDDEN):
        raise invalid(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_NAME_FORBIDDEN}"
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise invalid(f"'name' exceeds the maximum length of {MAX_MODEL_NAME_LENGTH} characters")
    return name


def parse_status(value: Any) -> str:
    """`LOGGED_MODEL_READY`, `READY` or the enum number 2 → `LOGGED_MODEL_READY`."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        status = STATUS_BY_NUMBER.get(value)
    elif isinstance(value, str):
        name = value if value.startswith("LOGGED_MODEL_") else f"LOGGED_MODEL_{value}"
        name = "LOGGED_MODEL_UPLOAD_FAILED" if name == "LOGGED_MODEL_FAILED" else name
        status = LoggedModelStatus(name) if name in LoggedModelStatus.values else None
    else:
        status = None
    if status is None:
        raise invalid(
            f"Invalid value {json.dumps(value)} for parameter 'status' supplied: must be one of "
            f"{', '.join(LoggedModelStatus.values)}"
        )
    return str(status)


def _clean_tags(tags: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    # A repeated key keeps its last value, as MLflow's store does.
    return {validate_key("Tag", k, "tags.key"): validate_value(v, MAX_TAG_VAL_LENGTH, "tags.value") for k, v in tags}


def _touch(model: LoggedModel) -> None:
    model.last_updated_timestamp_ms = now_ms()
    LoggedModel.objects.filter(pk=model.pk).update(last_updated_timestamp_ms=model.last_updated_timestamp_ms)


# Writes ------------------------------------------------------------------------------------------


def create_logged_model(
    experiment: Experiment,
    *,
    name: str | None,
    model_type: str | None,
    source_run: Run | None,
    params: Iterable[tuple[Any, Any]] = (),
    tags: Iterable[tuple[Any, Any]] = (),
    creator: Any,
) -> LoggedModel:
    """Create a PENDING logged model whose artifacts go under the experiment's `models/<model_id>/`."""
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise invalid(
            f"The experiment {experiment.pk} must be in the 'active' state. "
            f"Current state is {experiment.lifecycle_stage}."
        )
    name = validate_model_name(name) or _generated_name()
    if model_type and len(model_type) > MAX_MODEL_TYPE_LENGTH:
        raise invalid(f"'model_type' exceeds the maximum length of {MAX_MODEL_TYPE_LENGTH} characters")
    param_map = clean_params(list(params), "params")
    tag_map = _clean_tags(tags)
    model_id = new_model_id()
    authenticated = creator is not None and getattr(creator, "is_authenticated", False)
    with transaction.atomic():
        model = LoggedModel.objects.create(
            model_id=model_id,
            experiment=experiment,
            name=name,
            artifact_location=f"{experiment.artifact_location}/models/{model_id}/artifacts",
            model_type=model_type or "",
            source_run=source_run,
            creator=creator if authenticated else None,
        )
        LoggedModelParam.objects.bulk_create(
            [LoggedModelParam(model=model, key=k, value=v) for k, v in param_map.items()]
        )
        LoggedModelTag.objects.bulk_create([LoggedModelTag(model=model, key=k, value=v) for k, v in tag_map.items()])
        record_audit(creator, "logged_model.create", model, {"name": name, "experiment_id": experiment.pk})
    return model


def log_logged_model_params(model: LoggedModel, params: list[tuple[Any, Any]]) -> None:
    """Log params; the same value again is fine, a different value for a logged key is an error."""
    with transaction.atomic():
        store_immutable_params(
            LoggedModelParam, "model_id", model.pk, clean_params(list(params), "params"), f"model ID='{model.model_id}'"
        )
        _touch(model)


def finalize_logged_model(model: LoggedModel, status: str) -> LoggedModel:
    """Set the upload status (READY once the files are in place, UPLOAD_FAILED if they never will be)."""
    model.status = parse_status(status)
    model.last_updated_timestamp_ms = now_ms()
    model.save(update_fields=["status", "last_updated_timestamp_ms"])
    return model


def set_logged_model_tags(model: LoggedModel, tags: list[tuple[Any, Any]]) -> None:
    clean = _clean_tags(tags)
    if not clean:
        return
    with transaction.atomic():
        LoggedModelTag.objects.bulk_create(
            [LoggedModelTag(model=model, key=k, value=v) for k, v in clean.items()],
            update_conflicts=True,
            unique_fields=["model", "key"],
            update_fields=["value"],
        )
        _touch(model)


def delete_logged_model_tag(model: LoggedModel, key: str) -> None:
    deleted, _ = LoggedModelTag.objects.filter(model=model, key=key).delete()
    if not deleted:
        raise not_found(f"No tag with key {key!r} found for model with ID {model.model_id!r}.")


def delete_logged_model(model: LoggedModel, *, actor: Any) -> None:
    """Soft delete: the model disappears from reads and searches; its files stay until an operator purges them."""
    if model.lifecycle_stage == LifecycleStage.DELETED:
        return
    with transaction.atomic():
        model.lifecycle_stage = LifecycleStage.DELETED
        model.last_updated_timestamp_ms = now_ms()
        model.save(update_fields=["lifecycle_stage", "last_updated_timestamp_ms"])
        record_audit(actor, "logged_model.delete", model)


# Search ------------------------------------------------------------------------------------------

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000
_STRING_ATTRIBUTES = {"name", "model_id", "model_type", "status", "source_run_id"}
_NUMERIC_ATTRIBUTES = {
    "creation_timestamp": "creation_timestamp_ms",
    "creation_time": "creation_timestamp_ms",
    "creation_timestamp_ms": "creation_timestamp_ms",
    "last_updated_timestamp": "last_updated_timestamp_ms",
    "last_updated_time": "last_updated_timestamp_ms",
    "last_updated_timestamp_ms": "last_updated_timestamp_ms",
}
_ENTITIES = {"attributes": "attribute", "params": "param", "tags": "tag", "metrics": "metric"}
_NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>(?:[A-Za-z_]\w*\.)?(?:`[^`]+`|"[^"]+"|[\w][\w.\-/:]*))
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Comparison:
    entity: str  # attribute, param, tag or metric
    key: str
    op: str
    value: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid(f"Invalid filter string: {text!r}. Unexpected text at {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        return re.sub(r"\\(.)", r"\1", text[1:-1]) if text[0] != "`" else text[1:-1]
    return text


def _entity(identifier: str) -> tuple[str, str]:
    prefix, dot, rest = identifier.partition(".")
    if dot and not identifier.startswith(("`", '"')) and prefix in _ENTITIES:
        entity, key = _ENTITIES[prefix], _unquote(rest)
    elif dot and prefix.isidentifier() and prefix not in _ENTITIES and not rest.startswith(("`", '"')):
        raise invalid(f"Invalid entity type: {prefix!r}. Expected one of {sorted(_ENTITIES)}.")
    else:
        entity, key = "attribute", _unquote(identifier)
    if entity == "attribute" and key not in _STRING_ATTRIBUTES and key not in _NUMERIC_ATTRIBUTES:
        raise invalid(f"Invalid logged model search key '{key}'")
    return entity, key


def parse_filter(filter_string: str) -> list[Comparison]:
    """`name = 'm' AND tags.team LIKE 'vis%' AND creation_time > 1700000000000` → comparisons (all must hold)."""
    tokens = _tokens(filter_string or "")
    comparisons: list[Comparison] = []
    i = 0

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(tokens):
            raise invalid(f"Invalid filter string: {filter_string!r}. It ends in the middle of a comparison.")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        if comparisons:
            kind, text = take()
            if kind != "word" or text.upper() != "AND":
                raise invalid(
                    f"Invalid filter string: {filter_string!r}. Expected a list of comparisons separated by 'AND' "
                    "(e.g. \"name = 'model' AND params.lr = '0.01'\")."
                )
        kind, identifier = take()
        if kind != "word":
            raise invalid(f"Invalid filter string: {filter_string!r}. Expected a field name, got {identifier!r}.")
        entity, key = _entity(identifier)
        kind, op = take()
        op = op.upper()
        if kind == "word" and op == "NOT":
            kind, word = take()
            op = f"NOT {word.upper()}"
        op = {"==": "=", "<>": "!="}.get(op, op)
        numeric = entity == "metric" or (entity == "attribute" and key in _NUMERIC_ATTRIBUTES)
        allowed = _NUMERIC_OPS if numeric else _STRING_OPS
        if op not in allowed:
            raise invalid(f"Invalid comparison operator for {identifier}: {op!r}. Expected one of {sorted(allowed)}.")
        value: Any
        if op in ("IN", "NOT IN"):
            if take() != ("punct", "("):
                raise invalid(f"Invalid filter string: {filter_string!r}. {op} needs a list like ('a', 'b').")
            items = []
            while True:
                kind, text = take()
                if kind not in ("string", "number"):
                    raise invalid(f"Invalid filter string: {filter_string!r}. Bad list item {text!r}.")
                items.append(_unquote(text))
                kind, text = take()
                if (kind, text) == ("punct", ")"):
                    break
                if (kind, text) != ("punct", ","):
                    raise invalid(f"Invalid filter string: {filter_string!r}. Bad list separator {text!r}.")
            value = items
        else:
            kind, text = take()
            if kind not in ("string", "number"):
                raise invalid(f"Invalid filter string: {filter_string!r}. Expected a value, got {text!r}.")
            if numeric:
                try:
                    value = float(_unquote(text))
                except ValueError:
                    raise invalid(f"Invalid filter string: {filter_string!r}. {text} is not a number.") from None
            else:
                value = _unquote(text)
        comparisons.append(Comparison(entity, key, op, value))
    return comparisons


def like_regex(pattern: str) -> str:
    """SQL LIKE (`%` any run, `_` one character) as a regex both SQLite and PostgreSQL understand."""
    parts = []
    for char in pattern:
        parts.append(r"(?:.|\n)*" if char == "%" else r"(?:.|\n)" if char == "_" else re.escape(char))
    return "^" + "".join(parts) + "$"


def string_q(field: str, op: str, value: Any) -> Q:
    present = Q(**{f"{field}__isnull": False})
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        return present & ~Q(**{field: value})
    if op == "LIKE":
        return Q(**{f"{field}__regex": like_regex(value)})
    if op == "ILIKE":
        return Q(**{f"{field}__iregex": like_regex(value)})
    if op == "IN":
        return Q(**{f"{field}__in": value})
    return present & ~Q(**{f"{field}__in": value})  # NOT IN


def numeric_q(field: str, op: str, value: float) -> Q:
    if not math.isfinite(value) or not -(2**63) <= value < 2**63:
        raise invalid(f"Invalid value {value!r} for {field}: expected a timestamp in milliseconds")
    number = int(value)
    lookups = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
    if op == "!=":
        return ~Q(**{field: number})
    return Q(**{f"{field}__{lookups[op]}": number})


def _status_value(value: Any) -> Any:
    def one(v: str) -> str:
        try:
            return parse_status(v)
        except MlflowError:
            return v  # not a status: it simply matches nothing

    return [one(v) for v in value] if isinstance(value, list) else one(value)


def comparison_q(comparison: Comparison) -> Q:
    c = comparison
    if c.entity == "metric":
        return Q(pk__in=[])  # the portal records no metrics on logged models, so none has this one
    if c.entity in ("param", "tag"):
        rows = LoggedModelParam.objects if c.entity == "param" else LoggedModelTag.objects
        return Q(pk__in=rows.filter(string_q("value", c.op, c.value), key=c.key).values("model_id"))
    if c.key in _NUMERIC_ATTRIBUTES:
        return numeric_q(_NUMERIC_ATTRIBUTES[c.key], c.op, c.value)
    value = _status_value(c.value) if c.key == "status" and c.op in ("=", "!=", "IN", "NOT IN") else c.value
    return string_q(c.key, c.op, value)


def _order_by(order_by: list[Any]) -> list[OrderBy]:
    clauses: list[OrderBy] = []
    fields: set[str] = set()
    for item in order_by:
        if isinstance(item, str):
            name, _, direction = item.strip().partition(" ")
            ascending = direction.strip().upper() != "DESC"
        elif isinstance(item, dict):
            name, ascending = str(item.get("field_name") or ""), item.get("ascending", True) is not False
        else:
            raise invalid(f"Invalid order by clause: {item!r}")
        name = name.strip("`")
        if name.startswith("metrics."):
            continue  # no model has metrics, and MLflow sorts missing values last: the order is unchanged
        if "." in name:
            raise invalid(f"Invalid order by field name: {name}. Only metrics are supported.")
        field = _NUMERIC_ATTRIBUTES.get(name, name)
        if field not in _STRING_ATTRIBUTES and field not in _NUMERIC_ATTRIBUTES.values():
            raise invalid(f"Invalid order by field name: {name}")
        fields.add(field)
        expression = F(field)
        clauses.append(expression.asc(nulls_last=True) if ascending else expression.desc(nulls_last=True))
    if "creation_timestamp_ms" not in fields:
        clauses.append(F("creation_timestamp_ms").desc())
    if "model_id" not in fields:
        clauses.append(F("model_id").asc())
    return clauses


def _query_key(experiment_ids: list[int], filter_string: str, order_by: list[Any]) -> str:
    raw = json.dumps([experiment_ids, filter_string, order_by], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _offset(page_token: str | None, key: str) -> int:
    if not page_token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode()))
        offset, token_key = int(data["offset"]), str(data["key"])
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        raise invalid(f"Invalid page token: {page_token!r}") from None
    if token_key != key or offset < 0:
        raise invalid("The page token belongs to a different search; repeat the search without it.")
    return offset


def search_logged_models(
    user: Any,
    *,
    experiment_ids: list[int],
    filter_string: str = "",
    order_by: list[Any] | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
    datasets: list[Any] | None = None,
) -> tuple[list[LoggedModel], str | None]:
    """Active logged models in the experiments `user` may read, one page at a time (offset tokens, like MLflow)."""
    order_by = order_by or []
    limit = max_results or DEFAULT_MAX_RESULTS
    if not 1 <= limit <= MAX_RESULTS_LIMIT:
        raise invalid(f"Invalid value {limit} for parameter 'max_results' supplied: must be 1 to {MAX_RESULTS_LIMIT}")
    for dataset in datasets or []:
        if not isinstance(dataset, dict) or not dataset.get("dataset_name"):
            raise invalid("`dataset_name` in the `datasets` clause must be specified.")
    key = _query_key(sorted(experiment_ids), filter_string, order_by)
    offset = _offset(page_token, key)
    visible = permissions.visible_experiments(user, Experiment.objects.filter(pk__in=experiment_ids))
    qs: QuerySet[LoggedModel] = LoggedModel.objects.filter(experiment__in=visible).exclude(
        lifecycle_stage=LifecycleStage.DELETED
    )
    for comparison in parse_filter(filter_string):
        qs = qs.filter(comparison_q(comparison))
    if datasets:
        qs = qs.none()  # dataset clauses select models with metrics on those datasets; none has metrics
    rows = list(qs.order_by(*_order_by(order_by)).prefetch_related("tags", "params")[offset : offset + limit + 1])
    token = None
    if len(rows) > limit:
        token = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit, "key": key}).encode()).decode()
    return rows[:limit], token

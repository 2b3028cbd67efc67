"""`registered-models/search` and `model-versions/search`: MLflow's filter and order_by syntax.

Filters go through the tracking search's grammar (experiments.search) with the registry's own
schemas, so the syntax, quoting, LIKE semantics and error messages are the same as for runs (AND, OR
and parentheses included, a superset of what MLflow's registry accepts). Page tokens are offsets, as
in MLflow, bound to the search they came from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from django.db.models import Exists, F, Model, OuterRef, Q, QuerySet

from experiments.mlflow_api.common import invalid
from experiments.search.compile import numeric_q, string_q
from experiments.search.grammar import NULL_OPS, NUMERIC_OPS, STRING_OPS, BoolOp, Field, Node, Schema, parse_with_schema
from registry.models import ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelTag

MODELS_MAX_RESULTS_DEFAULT = 100  # MLflow's SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT
MODELS_MAX_RESULTS_THRESHOLD = 1000
VERSIONS_MAX_RESULTS_DEFAULT = 10_000  # MLflow's SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT
VERSIONS_MAX_RESULTS_THRESHOLD = 200_000
PROMPT_TAG = "mlflow.prompt.is_prompt"

REGISTERED_MODELS = Schema(
    name="registered models",
    entities={"tag": Field("string", "value", STRING_OPS | NULL_OPS)},
    attributes={"name": Field("string", "name", STRING_OPS)},
    orderable=frozenset({"name"}),
)

MODEL_VERSIONS = Schema(
    name="model versions",
    entities={"tag": Field("string", "value", STRING_OPS | NULL_OPS)},
    attributes={
        "name": Field("string", "model__name", STRING_OPS),
        "version_number": Field("number", "version", NUMERIC_OPS),
        "run_id": Field("string", "run_id", STRING_OPS),
        "source_path": Field("string", "source", STRING_OPS),
        "current_stage": Field("string", "current_stage", STRING_OPS),
        "creation_timestamp": Field("number", "creation_timestamp", NUMERIC_OPS),
        "last_updated_timestamp": Field("number", "last_updated_timestamp", NUMERIC_OPS),
    },
    orderable=frozenset(),
)

_MODEL_ORDER = {
    "name": "name",
    "timestamp": "last_updated_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "creation_timestamp": "creation_timestamp",
}
_VERSION_ORDER = {
    "name": "model__name",
    "version_number": "version",
    "creation_timestamp": "creation_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
}


def _compile(node: Node | None, schema: Schema, tag_model: type[Model], parent: str) -> Q:
    if node is None:
        return Q()
    if isinstance(node, BoolOp):
        children = [_compile(child, schema, tag_model, parent) for child in node.children]
        out = children[0]
        for child in children[1:]:
            out = (out & child) if node.op == "AND" else (out | child)
        return out
    if node.entity == "tag":
        rows = tag_model._default_manager.filter(**{parent: OuterRef("pk"), "key": node.key})
        if node.key == PROMPT_TAG and node.op == "!=":
            # The client adds `tag.mlflow.prompt.is_prompt != 'true'` to every search to leave prompts
            # out; models never tagged must match it, so this one tag's != means "no such value".
            return ~Q(Exists(rows.filter(value=node.value)))
        if node.op == "IS NULL":
            return ~Q(Exists(rows))
        if node.op == "IS NOT NULL":
            return Q(Exists(rows))
        return Q(Exists(rows.filter(string_q("value", node.op, node.value))))
    field = schema.attributes[node.key]
    if field.kind == "number":
        return numeric_q(field.column, node.op, node.value)
    value = list(node.value) if isinstance(node.value, tuple) else node.value
    return string_q(field.column, node.op, value)


def _order(order_by: Any, columns: dict[str, str], default: list[str], tiebreak: list[str]) -> list[Any]:
    if order_by in (None, ""):
        order_by = []
    if isinstance(order_by, str):
        order_by = [order_by]
    if not isinstance(order_by, list):
        raise invalid(f"Invalid value for parameter 'order_by' supplied: {order_by!r}")
    clauses: list[Any] = []
    seen: set[str] = set()
    for item in order_by or default:
        if not isinstance(item, str) or not item.strip():
            raise invalid(f"Invalid order_by clause {item!r}")
        words = item.strip().split()
        name = words[0].strip("`").lower()
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if len(words) > 2 or direction not in ("ASC", "DESC"):
            raise invalid(f"Invalid order_by clause '{item}'. Expected '<key> [ASC|DESC]'.")
        if name not in columns:
            raise invalid(f"Invalid order by key '{name}' specified. Valid keys are {sorted(columns)}")
        column = columns[name]
        if column in seen:
            raise invalid(f"`order_by` contains duplicate fields: {order_by}")
        seen.add(column)
        clauses.append(F(column).asc() if direction == "ASC" else F(column).desc())
    for item in tiebreak:
        column = item.lstrip("-")
        if column not in seen:
            clauses.append(F(column).desc() if item.startswith("-") else F(column).asc())
    return clauses


def _max_results(value: Any, default: int, threshold: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value {value!r} for parameter 'max_results' supplied.") from None
    if number < 1:
        raise invalid(f"Invalid value for max_results. It must be a positive integer, but got {number}")
    if number > threshold:
        raise invalid(
            f"Invalid value for request parameter max_results. It must be at most {threshold}, but got value {number}"
        )
    return number


def _query_key(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _offset(page_token: Any, key: str) -> int:
    if not page_token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(page_token).encode()))
        offset, token_key = int(data["offset"]), str(data["key"])
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        raise invalid(f"Invalid page token: {page_token!r}") from None
    if token_key != key or offset < 0:
        raise invalid("The page token belongs to a different search; repeat the search without it.")
    return offset


def _page(qs: QuerySet[Any], offset: int, limit: int, key: str) -> tuple[list[Any], str | None]:
    rows = list(qs[offset : offset + limit + 1])
    token = None
    if len(rows) > limit:
        token = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit, "key": key}).encode()).decode()
    return rows[:limit], token


def search_registered_models(
    visible: QuerySet[RegisteredModel], *, filter_string: Any, order_by: Any, max_results: Any, page_token: Any
) -> tuple[list[RegisteredModel], str | None]:
    """One page of the models in `visible` matching the filter, ordered by name unless told otherwise."""
    limit = _max_results(max_results, MODELS_MAX_RESULTS_DEFAULT, MODELS_MAX_RESULTS_THRESHOLD)
    node = parse_with_schema(filter_string or "", REGISTERED_MODELS)
    ordering = _order(order_by, _MODEL_ORDER, [], ["name"])
    key = _query_key("models", filter_string or "", order_by or [])
    qs = visible.filter(_compile(node, REGISTERED_MODELS, RegisteredModelTag, "model")).order_by(*ordering)
    return _page(qs, _offset(page_token, key), limit, key)


def search_model_versions(
    visible: QuerySet[RegisteredModel], *, filter_string: Any, order_by: Any, max_results: Any, page_token: Any
) -> tuple[list[ModelVersion], str | None]:
    """One page of the versions of models in `visible` matching the filter (MLflow's default order:
    last updated first, then name, then the highest version)."""
    limit = _max_results(max_results, VERSIONS_MAX_RESULTS_DEFAULT, VERSIONS_MAX_RESULTS_THRESHOLD)
    node = parse_with_schema(filter_string or "", MODEL_VERSIONS)
    default = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
    ordering = _order(order_by, _VERSION_ORDER, default, ["model__name", "-version"])
    key = _query_key("versions", filter_string or "", order_by or [])
    qs = (
        ModelVersion.objects.filter(model__in=visible)
        .filter(_compile(node, MODEL_VERSIONS, ModelVersionTag, "version"))
        .select_related("model")
        .order_by(*ordering)
    )
    return _page(qs, _offset(page_token, key), limit, key)

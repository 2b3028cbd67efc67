"""Compiling a filter's AST into one `Q`: case-sensitive LIKE on every database, and EXISTS per key."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

from django.db.models import Exists, F, FloatField, Model, OuterRef, Q, QuerySet, Value
from django.db.models.lookups import Lookup

from experiments.models import ExperimentTag, LatestMetric, Param, RunInput, RunTag
from experiments.search.grammar import EXPERIMENTS, NULL_OPS, RUNS, BoolOp, Node

# LIKE that behaves the same on SQLite and PostgreSQL ---------------------------------------------


def _like_parts(pattern: str) -> list[tuple[str, str]]:
    """The pattern as ("lit", char), ("any", "") for %, ("one", "") for _; a backslash escapes."""
    parts: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(("lit", pattern[i + 1]))
            i += 2
            continue
        parts.append(("any", "") if ch == "%" else ("one", "") if ch == "_" else ("lit", ch))
        i += 1
    return parts


def _as_like(parts: list[tuple[str, str]]) -> str:
    out = []
    for kind, ch in parts:
        out.append("%" if kind == "any" else "_" if kind == "one" else "\\" + ch if ch in "%_\\" else ch)
    return "".join(out)


def _as_glob(parts: list[tuple[str, str]]) -> str:
    glob_escapes = {"*": "[*]", "?": "[?]", "[": "[[]"}
    out = []
    for kind, ch in parts:
        out.append("*" if kind == "any" else "?" if kind == "one" else glob_escapes.get(ch, ch))
    return "".join(out)


class _Like(Lookup):
    """`column LIKE pattern`, case-sensitive everywhere. SQLite's LIKE ignores ASCII case, so there
    the pattern becomes a GLOB, which does not."""

    lookup_name = "search_like"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        parts = _like_parts(self.rhs)
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB %s", [*params, _as_glob(parts)]
        return f"{lhs} LIKE %s", [*params, _as_like(parts)]  # backslash is PostgreSQL's default escape


class _ILike(_Like):
    """`column ILIKE pattern` (SQLite's LIKE ignores case, for ASCII letters only)."""

    lookup_name = "search_ilike"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        pattern = _as_like(_like_parts(self.rhs))
        if connection.vendor == "postgresql":
            return f"{lhs} ILIKE %s", [*params, pattern]
        if connection.vendor == "sqlite":
            return f"{lhs} LIKE %s ESCAPE '\\'", [*params, pattern]
        return f"LOWER({lhs}) LIKE LOWER(%s)", [*params, pattern]


# Compiling the AST into Q ------------------------------------------------------------------------

_NUMERIC_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def string_q(column: str, op: str, value: Any) -> Q:
    if op == "=":
        return Q(**{column: value})
    if op == "!=":
        return ~Q(**{column: value})
    if op == "LIKE":
        return Q(_Like(F(column), value))
    if op == "ILIKE":
        return Q(_ILike(F(column), value))
    if op == "IN":
        return Q(**{f"{column}__in": value})
    return ~Q(**{f"{column}__in": value})  # NOT IN


def numeric_q(column: str, op: str, value: Any, *, nullable: bool = False) -> Q:
    if op == "IS NULL":
        return Q(**{f"{column}__isnull": True})
    if op == "IS NOT NULL":
        return Q(**{f"{column}__isnull": False})
    # A float against an integer column must not be truncated (start_time >= 1.5 is not >= 1).
    rhs = Value(value, output_field=FloatField()) if isinstance(value, float) else value
    if op == "!=":
        q = ~Q(**{column: rhs})
        # SQL's NULL != 5 is unknown, not true: a run without end_time does not match.
        return q & Q(**{f"{column}__isnull": False}) if nullable else q
    return Q(**{f"{column}__{_NUMERIC_LOOKUPS[op]}": rhs})


def _keyed(model: type[Model], parent: str, key: str) -> QuerySet[Any]:
    return model._default_manager.filter(**{parent: OuterRef("pk"), "key": key})


def _run_q(node: Node, joined: tuple[str, str] | None = None) -> Q:
    """`joined`: the (entity, key) the order joined as `_order0`. Comparisons on it that every result
    must satisfy (the filter's top-level ANDs) test that joined row instead of an EXISTS subquery, so
    the database can read the key's index in order from the filter's bound and stop after a page."""
    if isinstance(node, BoolOp):
        if node.op == "AND" and joined is not None:
            return reduce(operator.and_, (_run_q(c, joined) for c in node.children))
        return reduce(operator.and_ if node.op == "AND" else operator.or_, (_run_q(c) for c in node.children))
    if joined is not None and (node.entity, node.key) == joined:
        return _joined_q(node)
    op, value = node.op, node.value
    if node.entity == "attribute":
        field = RUNS.attributes[node.key]
        if field.kind == "number":
            return numeric_q(field.column, op, value, nullable=field.nullable)
        return string_q(field.column, op, value)
    if node.entity == "dataset":
        return Q(Exists(RunInput.objects.filter(string_q(node.key, op, value), run=OuterRef("pk"))))
    model = {"metric": LatestMetric, "param": Param, "tag": RunTag}[node.entity]
    rows = _keyed(model, "run", node.key)
    if op == "IS NULL":
        return ~Q(Exists(rows))
    if op == "IS NOT NULL":
        return Q(Exists(rows))
    if node.entity == "metric":
        # NaN is stored as 0 with is_nan: it must not match `= 0`, and it does match `!= x`.
        if op == "!=":
            return Q(Exists(rows.filter(Q(is_nan=True) | ~Q(value=value))))
        return Q(Exists(rows.filter(numeric_q("value", op, value), is_nan=False)))
    return Q(Exists(rows.filter(string_q("value", op, value))))


def _joined_q(node: Node) -> Q:
    """The comparison on the row joined as `_order0` (`_order0_pk`, `_order0_raw`, `_order0_isnan`),
    with the same meaning as the EXISTS form in `_run_q`."""
    op, value = node.op, node.value
    present = Q(_order0_pk__isnull=False)
    if op == "IS NULL":
        return Q(_order0_pk__isnull=True)
    if op == "IS NOT NULL":
        return present
    if node.entity == "metric":
        if op == "!=":
            return present & (Q(_order0_isnan=True) | ~Q(_order0_raw=value))
        return present & Q(_order0_isnan=False) & numeric_q("_order0_raw", op, value)
    return present & string_q("_order0_raw", op, value)


def _experiment_q(node: Node) -> Q:
    if isinstance(node, BoolOp):
        return reduce(operator.and_ if node.op == "AND" else operator.or_, (_experiment_q(c) for c in node.children))
    op, value = node.op, node.value
    if node.entity == "tag":
        rows = _keyed(ExperimentTag, "experiment", node.key)
        if op in NULL_OPS:
            return Q(Exists(rows)) if op == "IS NOT NULL" else ~Q(Exists(rows))
        return Q(Exists(rows.filter(string_q("value", op, value))))
    field = EXPERIMENTS.attributes[node.key]
    if field.kind == "number":
        return numeric_q(field.column, op, value)
    return string_q(field.column, op, value)  # name, and experiment_id (=, !=, IN, NOT IN on ints)

"""order_by parsing into a total `Ordering`, and keyset page tokens that resume after a page's last row."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from django.db.models import (
    BigIntegerField,
    Case,
    Expression,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from experiments.search.grammar import (
    EXPERIMENTS,
    INT64_MAX,
    INT64_MIN,
    MAX_RESULTS_THRESHOLD,
    RUNS,
    Field,
    Schema,
    SearchError,
    _Syntax,
    tokenize,
)

# order_by ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortColumn:
    """One column of the total order: a field or annotation that is never NULL, and its direction."""

    ref: str
    ascending: bool
    kind: type  # int, float or str: what a page token may hold for it
    attr: str = ""  # where a fetched row holds its value, when not at `ref`

    def value_of(self, row: Any) -> Any:
        return getattr(row, self.attr or self.ref)


@dataclass(frozen=True)
class Segment:
    """A run of the order in which the first sort key is a plain column. Ordering by a metric puts
    real values first, then NaN, then runs without it: as one ORDER BY, that needs a computed rank
    that no index serves, so the whole experiment is joined and sorted for every page. Paged one
    segment at a time instead, the database walks the (key, value) index and stops after a page."""

    condition: Q | None
    columns: list[SortColumn]

    def order_by(self) -> list[Any]:
        return _order_by(self.columns)


@dataclass
class Ordering:
    columns: list[SortColumn]
    annotations: dict[str, Expression]
    signature: str  # binds a page token to this order
    joins: dict[str, FilteredRelation]
    segments: list[Segment] | None = None  # the same order, in pieces; None: one piece, `columns`
    first_key: tuple[str, str] | None = None  # (entity, key) joined as `_order0`, with `_order0_raw` etc.
    items: tuple[tuple[str, str, bool], ...] = ()  # the order_by as parsed: (entity, key, ascending)

    def apply(self, qs: QuerySet[Any]) -> QuerySet[Any]:
        """The whole order as one query (pages with offsets, CSV export); `qs` is annotated."""
        return qs.order_by(*self.order_by())

    def annotate(self, qs: QuerySet[Any]) -> QuerySet[Any]:
        if self.joins:  # copies: a query takes a FilteredRelation for its own (sets its alias and path)
            qs = qs.annotate(**{alias: relation.clone() for alias, relation in self.joins.items()})
        return qs.annotate(**self.annotations)

    def order_by(self) -> list[Any]:
        return _order_by(self.columns)

    def pieces(self) -> list[Segment]:
        return self.segments or [Segment(None, self.columns)]


def _order_by(columns: list[SortColumn]) -> list[Any]:
    return [F(c.ref).asc() if c.ascending else F(c.ref).desc() for c in columns]


def _parse_order_item(item: Any, schema: Schema) -> tuple[str, str, Field, bool]:
    if not isinstance(item, str):
        raise SearchError(f"Invalid order_by clause {json.dumps(item)}: must be a string")
    try:
        tokens = list(tokenize(item))
        if tokens[0].kind != "IDENT":
            raise _Syntax(f"unexpected token {tokens[0].describe()}; expected a column such as metrics.acc")
        entity, key, field = schema.resolve(tokens[0], for_order=True)
        ascending = True
        rest = tokens[1:]
        if rest[0].kind == "KEYWORD" and rest[0].value in ("ASC", "DESC"):
            ascending = rest[0].value == "ASC"
            rest = rest[1:]
        if rest[0].kind != "END":
            raise _Syntax(f"unexpected token {rest[0].describe()}; expected ASC, DESC or the end")
    except _Syntax as exc:
        raise SearchError(f"Invalid order_by clause '{item}': {exc.detail}") from None
    return entity, key, field, ascending


def _signature(scope: str, items: Sequence[tuple[str, str, bool]]) -> str:
    return hashlib.sha256(json.dumps([scope, list(items)]).encode()).hexdigest()[:16]


def _check_order_list(order_by: Any) -> list[Any]:
    if order_by is None:
        return []
    if isinstance(order_by, str):  # one order_by in a GET query string
        return [order_by]
    if not isinstance(order_by, (list, tuple)):
        raise SearchError(f"Invalid value {json.dumps(order_by, default=str)} for parameter 'order_by': must be a list")
    return list(order_by)


def run_ordering(order_by: Any) -> Ordering:
    """MLflow's order: the requested keys (missing values last), then start_time DESC, then run_uuid."""
    columns: list[SortColumn] = []
    joins: dict[str, FilteredRelation] = {}
    annotations: dict[str, Expression] = {}
    seen: list[tuple[str, str, bool]] = []
    items = _check_order_list(order_by)
    for index, item in enumerate(items):
        entity, key, field, ascending = _parse_order_item(item, RUNS)
        if any((entity, key) == (e, k) for e, k, _ in seen):
            raise SearchError(f"`order_by` contains duplicate fields: {items}")
        seen.append((entity, key, ascending))
        alias = f"_order{index}"
        if entity in ("metric", "param", "tag"):
            # A LEFT JOIN on the row with this key: (run, key) is unique, so it never duplicates runs,
            # and the database can hash-join it instead of running a subquery per run.
            relation = {"metric": "latest_metrics", "param": "params", "tag": "tags"}[entity]
            joins[alias] = FilteredRelation(relation, condition=Q(**{f"{relation}__key": key}))
        if entity == "metric":
            # Real values first, then NaN, then runs without the metric, in both directions (MLflow).
            annotations[f"{alias}_rank"] = Case(
                When(**{f"{alias}__is_nan": True}, then=Value(1)),
                When(**{f"{alias}__id__isnull": True}, then=Value(2)),
                default=Value(0),
                output_field=IntegerField(),
            )
            annotations[f"{alias}_value"] = Coalesce(F(f"{alias}__value"), Value(0.0), output_field=FloatField())
            columns += [SortColumn(f"{alias}_rank", True, int), SortColumn(f"{alias}_value", ascending, float)]
        elif entity in ("param", "tag"):
            annotations[f"{alias}_missing"] = Case(
                When(**{f"{alias}__id__isnull": True}, then=Value(1)), default=Value(0), output_field=IntegerField()
            )
            annotations[f"{alias}_value"] = Coalesce(F(f"{alias}__value"), Value(""), output_field=TextField())
            columns += [SortColumn(f"{alias}_missing", True, int), SortColumn(f"{alias}_value", ascending, str)]
        elif field.nullable:  # end_time
            annotations[f"{alias}_missing"] = Case(
                When(**{f"{field.column}__isnull": True}, then=Value(1)), default=Value(0), output_field=IntegerField()
            )
            annotations[f"{alias}_value"] = Coalesce(F(field.column), Value(0), output_field=BigIntegerField())
            columns += [SortColumn(f"{alias}_missing", True, int), SortColumn(f"{alias}_value", ascending, int)]
        else:
            columns.append(SortColumn(field.column, ascending, int if field.kind == "number" else str))
    keys = {(e, k) for e, k, _ in seen}
    if ("attribute", "start_time") not in keys:
        columns.append(SortColumn("start_time", False, int))
    if ("attribute", "run_id") not in keys:
        columns.append(SortColumn("run_uuid", True, str))
    segments = None
    if seen and seen[0][0] in ("metric", "param", "tag"):
        entity, _, ascending = seen[0]
        # Plain references to the joined row's columns: filtering on annotations (rather than on
        # `_order0__...`) keeps Django from joining the multi-valued relation a second time.
        annotations |= {"_order0_raw": F("_order0__value"), "_order0_pk": F("_order0__id")}
        rest = columns[2:]  # after the first key's rank (or missing flag) and value
        value = SortColumn("_order0_raw", ascending, float if entity == "metric" else str)
        if entity == "metric":
            annotations["_order0_isnan"] = F("_order0__is_nan")
            # NaN, then missing: rare, so one segment sorted by the computed rank is cheap enough.
            nan_or_missing = Q(_order0_isnan=True) | Q(_order0_pk__isnull=True)
            segments = [Segment(Q(_order0_isnan=False), [value, *rest]), Segment(nan_or_missing, columns[:1] + rest)]
        else:
            segments = [Segment(Q(_order0_pk__isnull=False), [value, *rest]), Segment(Q(_order0_pk__isnull=True), rest)]
    first_key = (seen[0][0], seen[0][1]) if segments else None
    return Ordering(columns, annotations, _signature("runs", seen), joins, segments, first_key, tuple(seen))


def experiment_ordering(order_by: Any) -> Ordering:
    """MLflow's order: creation_time DESC, experiment_id ASC by default; requested keys, then
    experiment_id DESC to break ties (as MLflow's SQL store does)."""
    items = _check_order_list(order_by) or ["creation_time DESC", "experiment_id ASC"]
    columns: list[SortColumn] = []
    seen: list[tuple[str, str, bool]] = []
    for item in items:
        entity, key, field, ascending = _parse_order_item(item, EXPERIMENTS)
        if any(key == k for _, k, _ in seen):
            raise SearchError(f"`order_by` contains duplicate fields: {items}")
        seen.append((entity, key, ascending))
        columns.append(SortColumn(field.column, ascending, str if field.kind == "string" else int))
    if not any(k == "experiment_id" for _, k, _ in seen):
        columns.append(SortColumn("id", False, int))
    return Ordering(columns, {}, _signature("experiments", seen), {})


# Page tokens -------------------------------------------------------------------------------------


def _encode_token(ordering: Ordering, segment: int, row: Any) -> str:
    values = [c.value_of(row) for c in ordering.pieces()[segment].columns]
    payload = json.dumps({"o": ordering.signature, "s": segment, "after": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode_token(token: str, ordering: Ordering) -> tuple[int, list[Any]]:
    def bad(why: str) -> SearchError:
        shown = token if len(token) <= 100 else token[:100] + "..."
        return SearchError(f"Invalid page token '{shown}': {why}")

    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise bad("not a token this server issued") from None
    if not isinstance(data, dict) or not isinstance(data.get("after"), list):
        raise bad("not a token this server issued")
    if data.get("o") != ordering.signature:
        raise bad("it belongs to a search with a different order_by")
    segment = data.get("s")
    pieces = ordering.pieces()
    if isinstance(segment, bool) or not isinstance(segment, int) or not 0 <= segment < len(pieces):
        raise bad("not a token this server issued")
    columns = pieces[segment].columns
    after = data["after"]
    if len(after) != len(columns):
        raise bad("not a token this server issued")
    values = []
    for column, value in zip(columns, after, strict=True):
        if isinstance(value, bool):
            raise bad("not a token this server issued")
        if column.kind is float and isinstance(value, (int, float)):
            value = float(value)
        elif (
            not isinstance(value, column.kind)
            or (isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX)
            or (isinstance(value, str) and "\x00" in value)
        ):
            raise bad("not a token this server issued")
        values.append(value)
    return segment, values


def _after(columns: list[SortColumn], values: list[Any]) -> Q:
    """Rows strictly after `values` in the order: c1 > v1, or c1 = v1 and c2 > v2, and so on."""
    alternatives = []
    for i, column in enumerate(columns):
        equal = {c.ref: v for c, v in zip(columns[:i], values[:i], strict=True)}
        beyond = {f"{column.ref}__{'gt' if column.ascending else 'lt'}": values[i]}
        alternatives.append(Q(**equal, **beyond))
    first = columns[0]
    # Redundant, but gives the database a range on the leading column (an index scan, not a filter).
    bound = Q(**{f"{first.ref}__{'gte' if first.ascending else 'lte'}": values[0]})
    return bound & reduce(operator.or_, alternatives)


def _check_max_results(max_results: Any) -> int:
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise SearchError(f"Invalid value {max_results!r} for parameter 'max_results' supplied: must be an integer")
    if max_results < 1:
        raise SearchError(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be a positive integer"
        )
    if max_results > MAX_RESULTS_THRESHOLD:
        raise SearchError(
            f"Invalid value for request parameter max_results. It must be at most {MAX_RESULTS_THRESHOLD}, "
            f"but got value {max_results}"
        )
    return max_results


def segment_query(
    qs: QuerySet[Any], ordering: Ordering, index: int, after: list[Any] | None, count: int
) -> QuerySet[Any]:
    """The query for up to `count` rows of segment `index`, after the row whose sort values are `after`;
    `qs` is annotated (`Ordering.annotate`) and filtered, not ordered."""
    piece = ordering.pieces()[index]
    part = qs.filter(piece.condition) if piece.condition is not None else qs
    if after is not None:
        part = part.filter(_after(piece.columns, after))
    return part.order_by(*piece.order_by())[:count]


# rows(segment index, the sort values to start after or None, how many): the rows, in order.
SegmentRows = Callable[[int, "list[Any] | None", int], list[Any]]


def queryset_rows(qs: QuerySet[Any], ordering: Ordering) -> SegmentRows:
    return lambda index, after, count: list(segment_query(qs, ordering, index, after, count))


def _page(rows_of: SegmentRows, ordering: Ordering, max_results: Any, page_token: str | None) -> tuple[list[Any], Any]:
    """One page after `page_token`, reading the order's segments in turn until the page is full."""
    limit = _check_max_results(max_results)
    start, after = _decode_token(page_token, ordering) if page_token else (0, None)
    rows: list[Any] = []
    segment_of: list[int] = []
    for index in range(start, len(ordering.pieces())):
        got = rows_of(index, after if index == start else None, limit + 1 - len(rows))
        rows += got
        segment_of += [index] * len(got)
        if len(rows) > limit:
            return rows[:limit], _encode_token(ordering, segment_of[limit - 1], rows[limit - 1])
    return rows, None

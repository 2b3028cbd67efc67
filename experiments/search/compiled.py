"""A search's SQL, compiled by the ORM once per shape of search and kept.

Building and compiling a filtered search's query with the ORM costs 2-4 ms of CPU on every call, as
much as PostgreSQL takes to run it (docs/performance.md, "Compiled first pages"). Most searches repeat
a shape with new values: a script polling for its runs, a dashboard refreshing, a client asking for
`metrics.acc > x` with another x. So the query of a segment of the order read from its start (a
first page, and the segments after the one a page token resumes) is compiled once per shape and kept
with the places of the filter's literals in its parameters; the next search of that shape binds its
own literals there and runs the SQL. The ORM (`compile._run_q`, `paging.run_ordering`) stays the
only code that says what a filter means.

A shape is everything that decides the SQL's text: the filter with its literals left out (but their
types kept), the order_by, the view type, the experiment ids, what decides the user's visibility
(`permissions.visibility_scope`), the database and the segment of the order. Where the literals go
is found, not assumed. On a miss the query is compiled twice: with the request's literals, and with
every literal changed to a value of its own (and the LIMIT one higher). The SQL text must be the
same but for the LIMIT at its end, which becomes a parameter; every parameter that changed must be
exactly one literal's value before and its changed value after (in psycopg's Int8, as Django binds
an int for a BigIntegerField, at most); every literal must be somewhere. Anything else (a value
transformed on its way, a literal that changes the SQL) leaves the shape to the ORM on every call.
LIKE and ILIKE, whose patterns are rewritten before they are bound, are never kept, nor is the rest
of the segment a page token resumes (its cursor is in the SQL), an IN list with a repeated value, a
user who may read nothing, or a search too big to keep (MAX_LITERALS, MAX_IDS, MAX_SHAPE_TEXT: what
a kept shape holds stays small, and it keeps none of the values it was compiled with).

The rows are built as the ORM's own iterator builds them: the model's columns through `from_db`,
the database converters applied, and the annotations set by name. Permissions are in the SQL (the
grants are read when the query runs), so a grant given or taken is seen at once.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.signals import setting_changed
from django.db import connections, router
from django.db.models import QuerySet

from experiments.models import Run
from experiments.permissions import visibility_scope
from experiments.search.grammar import INT64_MAX, BoolOp, Node
from experiments.search.paging import Ordering, SegmentRows, queryset_rows, segment_query

MAX_SHAPES = 512  # kept per process, least recently used dropped first
# Bigger searches are compiled on every call: what one kept shape may hold stays small.
MAX_LITERALS = 64  # values in the filter (a long IN list)
MAX_IDS = 100  # experiment ids
MAX_SHAPE_TEXT = 4096  # characters of the filter's keys, operators and types
_UNKEPT_OPS = frozenset({"LIKE", "ILIKE"})


@dataclass(frozen=True)
class Template:
    """One compiled query: its SQL, its parameters with the literals' places, and how to read a row."""

    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, int, Any], ...]  # (position in params, index of the literal, wrapper or None)
    limit_position: int  # where the LIMIT goes in params
    init_list: tuple[str, ...]  # the model's attnames, in the order of its columns
    model_columns: tuple[int, int]  # [start, end) of the model's columns in a row
    annotations: tuple[tuple[str, int], ...]  # (attribute, column)
    converters: dict[int, tuple[list[Callable[..., Any]], Any]]

    def rows(self, literals: list[Any], count: int, using: str) -> list[Run]:
        params = list(self.params)
        for position, index, wrapper in self.slots:
            params[position] = literals[index] if wrapper is None else wrapper(literals[index])
        params[self.limit_position] = count
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            fetched = cursor.fetchall()
        start, end = self.model_columns
        runs = []
        for row in fetched:
            if self.converters:
                row = list(row)
                for column, (functions, expression) in self.converters.items():
                    value = row[column]
                    for convert in functions:
                        value = convert(value, expression, connection)
                    row[column] = value
            run = Run.from_db(using, self.init_list, row[start:end])
            for name, column in self.annotations:
                setattr(run, name, row[column])
            runs.append(run)
        return runs


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, Template | None] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        """The template, None for a shape left to the ORM, NOT_SEEN."""
        with self._lock:
            if key not in self._items:
                return NOT_SEEN
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, template: Template | None) -> None:
        with self._lock:
            self._items[key] = template
            self._items.move_to_end(key)
            while len(self._items) > MAX_SHAPES:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


NOT_SEEN = object()
CACHE = _Cache()


def _on_setting_changed(**kwargs: Any) -> None:
    CACHE.clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="experiments.search.compiled")


# Shapes and literals -----------------------------------------------------------------------------


class _Unkept(Exception):
    pass


def shape_of(node: Node | None, literals: list[Any]) -> Hashable:
    """The filter without its values (their types kept); the values are appended to `literals` in
    the order `rebuild` takes them. Raises _Unkept for what is never kept."""
    if node is None:
        return None
    if isinstance(node, BoolOp):
        return (node.op, tuple(shape_of(child, literals) for child in node.children))
    if node.op in _UNKEPT_OPS:
        raise _Unkept
    value = node.value
    if isinstance(value, tuple):
        if len(set(value)) != len(value):
            raise _Unkept  # the ORM drops repeated IN values: the parameters would not line up
        literals.extend(value)
        kinds: Any = tuple(type(v).__name__ for v in value)
    elif value is None:
        kinds = None
    else:
        literals.append(value)
        kinds = type(value).__name__
    return (node.entity, node.key, node.op, kinds)


def rebuild(node: Node | None, values: Iterator[Any]) -> Node | None:
    """`node` with its literals taken from `values`, in `shape_of`'s order."""
    if node is None:
        return None
    if isinstance(node, BoolOp):
        return BoolOp(node.op, tuple(rebuild(child, values) for child in node.children))  # type: ignore[misc]
    value = node.value
    if isinstance(value, tuple):
        return replace(node, value=tuple(next(values) for _ in value))
    if value is None:
        return node
    return replace(node, value=next(values))


def changed(value: Any, index: int) -> Any:
    """A value of the same type, different from `value` and from the other literals' changed values
    when they are equal to it (the index is part of the change); None when there is none to take.
    An infinite float changes to a finite one: its SQL is any float's."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return f"{value}~{index}"
    if isinstance(value, int):
        return value + 1 + index if value < INT64_MAX - 1 - index else value - 1 - index
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):  # the ORM binds it as it binds any float
            return math.copysign(float(index + 1), value)
        toward = math.inf if value < 1e308 else -math.inf
        for _ in range(index + 1):
            value = math.nextafter(value, toward)
        return value
    return None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@cache
def _wrappers() -> frozenset[type]:
    """The types the database backend wraps a literal in on its way to a parameter, keeping its value:
    Django binds a BigIntegerField's int as psycopg's Int8 (whose range is the filter grammar's)."""
    try:
        from psycopg.types.numeric import Int8
    except ImportError:
        return frozenset()
    return frozenset({Int8})


# Compiling ---------------------------------------------------------------------------------------


def compile_template(
    build: Callable[[Node | None], QuerySet[Run]],
    node: Node | None,
    literals: list[Any],
    ordering: Ordering,
    index: int,
    count: int,
    using: str,
) -> Template | None:
    """The template of segment `index`'s first rows (`count` of them here, any number later), or None
    when the places of the literals and of the LIMIT cannot be told for certain."""
    others = [changed(value, i) for i, value in enumerate(literals)]
    if any(other is None for other in others):
        return None
    try:
        compiler = segment_query(build(node), ordering, index, None, count).query.get_compiler(using)
        sql, params = compiler.as_sql()
        other_sql, other_params = (
            segment_query(build(rebuild(node, iter(others))), ordering, index, None, count + 1)
            .query.get_compiler(using)
            .as_sql()
        )
    except EmptyResultSet:
        return None
    # The ORM writes the LIMIT into the SQL's text: it becomes the last parameter.
    tail, other_tail = f" LIMIT {count}", f" LIMIT {count + 1}"
    if not sql.endswith(tail) or other_sql != sql.removesuffix(tail) + other_tail or len(other_params) != len(params):
        return None
    owner = {((type(v), v), (type(o), o)): i for i, (v, o) in enumerate(zip(literals, others, strict=True))}
    slots = []
    for position, (before, after) in enumerate(zip(params, other_params, strict=True)):
        if _same(before, after):
            continue
        wrapper = type(before) if type(before) in _wrappers() and type(after) is type(before) else None
        unwrapped = (int(before), int(after)) if wrapper else (before, after)
        literal = owner.get(((type(unwrapped[0]), unwrapped[0]), (type(unwrapped[1]), unwrapped[1])))
        if literal is None:
            return None
        slots.append((position, literal, wrapper))
    if {slot[1] for slot in slots} != set(range(len(literals))):
        return None
    klass_info = compiler.klass_info
    if not klass_info or klass_info.get("related_klass_infos") or klass_info["model"] is not Run:
        return None
    columns = klass_info["select_fields"]
    start, end = columns[0], columns[-1] + 1
    select = compiler.select
    kept = list(params)
    for position, _, _ in slots:
        kept[position] = None  # this search's values are not kept
    return Template(
        sql=sql.removesuffix(tail) + " LIMIT %s",
        params=(*kept, None),
        slots=tuple(slots),
        limit_position=len(params),
        init_list=tuple(column[0].target.attname for column in select[start:end]),
        model_columns=(start, end),
        annotations=tuple(compiler.annotation_col_map.items()),
        converters=compiler.get_converters([column[0] for column in select[: compiler.col_count]]),
    )


def segment_rows(
    user: Any,
    ids: list[int],
    stages: tuple[str, ...],
    node: Node | None,
    ordering: Ordering,
    build: Callable[[Node | None], QuerySet[Run]],
) -> SegmentRows:
    """`paging._page`'s rows: a segment read from its start (all of a first page, and the segments
    after the one a page token resumes) from the kept templates; the rest of the segment a token
    resumes, and any shape not kept, through the ORM, `build(node)` being the filtered, annotated runs."""
    fallback: SegmentRows | None = None

    def through_orm(index: int, after: list[Any] | None, count: int) -> list[Any]:
        nonlocal fallback
        if fallback is None:
            fallback = queryset_rows(build(node), ordering)
        return fallback(index, after, count)

    scope = visibility_scope(user)
    literals: list[Any] = []
    try:
        shape = shape_of(node, literals)
    except _Unkept:
        return through_orm
    unique_ids = tuple(sorted(set(ids)))  # the SQL reads them as a set
    if scope == "none" or len(literals) > MAX_LITERALS or len(unique_ids) > MAX_IDS:
        return through_orm
    if len(repr(shape)) + len(repr(ordering.items)) > MAX_SHAPE_TEXT:
        return through_orm
    using = router.db_for_read(Run)
    base = ("runs", using, connections[using].vendor, scope, unique_ids, stages, shape, ordering.items)

    def rows(index: int, after: list[Any] | None, count: int) -> list[Any]:
        if after is not None:
            return through_orm(index, after, count)
        key = (*base, index)
        template = CACHE.get(key)
        if template is NOT_SEEN:
            template = compile_template(build, node, literals, ordering, index, count, using)
            CACHE.put(key, template)
        if template is None:
            return through_orm(index, after, count)
        return template.rows(literals, count, using)

    return rows

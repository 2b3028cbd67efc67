"""Search runs and experiments: MLflow's filter and order_by syntax, with OR and parentheses added.

A filter such as `metrics.acc > 0.9 and (params.model = 'cnn' or tags."mlflow.user" LIKE 'a%')` is
parsed into a small AST (`parse_filter`), checked against what can be searched, and compiled into one
`Q`. Comparisons on metrics, params and tags are `EXISTS` subqueries on the run, so OR and nesting
compose without joins that would duplicate rows. AND binds tighter than OR; keywords ignore case.
Ordering by a metric, param or tag LEFT JOINs that key's row (one per run at most), which the
database hash-joins: an order of magnitude faster than a correlated subquery per run.

Where MLflow's own behaviour is the contract (what a missing key or a NaN matches, where runs without
a sort key go, the default orders, the error messages clients show), this module follows MLflow 3:
- a comparison on a key a run lacks is false, whatever the operator (`params.x != 'a'` needs `x`);
- NaN metrics are stored as 0 with `is_nan`: a NaN satisfies only `!=`, as in IEEE arithmetic;
- runs lacking an order_by key sort last in both directions (metrics: values, then NaN, then missing).

Two choices differ from MLflow on purpose. LIKE is case-sensitive and ILIKE is not on every database
(MLflow's SQLite LIKE ignores case), and a backslash escapes `%`, `_` and itself in LIKE patterns.
Page tokens are keyset cursors (the last row's sort values), not offsets, so deep pages stay fast and
rows created while a client pages do not shift the pages it has not read yet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from django.db.models import (
    BigIntegerField,
    Case,
    Exists,
    Expression,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import Lookup

from experiments.entities import RUN_PREFETCH
from experiments.mlflow_api.common import MlflowError
from experiments.models import (
    Experiment,
    ExperimentTag,
    LatestMetric,
    LifecycleStage,
    Param,
    Run,
    RunInput,
    RunTag,
)
from experiments.permissions import visible_experiments

MAX_RESULTS_THRESHOLD = 50_000  # MLflow's SEARCH_MAX_RESULTS_THRESHOLD
# Limits that keep a hostile filter from becoming a 500 (recursion, SQLite's expression depth).
MAX_NESTING = 50
MAX_COMPARISONS = 100
MAX_LIST_VALUES = 10_000
MAX_EXPERIMENT_IDS = 10_000

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class SearchError(MlflowError):
    """A filter, order_by, page token or limit the client got wrong (HTTP 400 INVALID_PARAMETER_VALUE)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "INVALID_PARAMETER_VALUE")


# The AST -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """`entity.key op value`. entity is metric, param, tag, attribute or dataset; attribute keys are
    canonical (`created` becomes `start_time`). value is a float, int, str, tuple of them, or None for
    IS NULL / IS NOT NULL. position is where the identifier starts in the filter string."""

    entity: str
    key: str
    op: str
    value: Any
    position: int


@dataclass(frozen=True)
class BoolOp:
    """AND or OR over two or more children."""

    op: str
    children: tuple[Node, ...]


Node = Comparison | BoolOp


# Tokens ------------------------------------------------------------------------------------------

KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "ASC", "DESC"})
COMPARATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"[A-Za-z0-9_.\-/:]+")  # an unquoted key after "metrics." (MLflow's allowed characters)
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.])")
_OPERATOR = re.compile(r"[<>=!]+")


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT, STRING, NUMBER, OP, KEYWORD, "(", ")", ",", END
    value: Any  # IDENT: (prefix or None, key); KEYWORD: upper-case word; others: the decoded text
    text: str
    pos: int

    def describe(self) -> str:
        if self.kind == "END":
            return "the end of the input"
        return f"'{self.text}' at position {self.pos}"


class _Syntax(Exception):
    """A mistake at a position; the caller turns it into a SearchError naming the whole input."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """The quoted text starting at `pos` and the position after it. A doubled quote or a backslash
    before the quote stands for the quote; other backslashes stay (they are LIKE's escapes)."""
    quote = text[pos]
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == quote and quote != "`":
            out.append(quote)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise _Syntax(f"unterminated {quote} quote starting at position {pos}")


def tokenize(text: str) -> Iterator[Token]:
    if "\x00" in text:  # PostgreSQL refuses NUL in text; refuse it here rather than fail there
        raise _Syntax(f"NUL character at position {text.index(chr(0))}")
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        start = pos
        if ch in "'\"":
            value, pos = _read_quoted(text, pos)
            yield Token("STRING", value, text[start:pos], start)
        elif ch == "`":  # a bare quoted attribute, e.g. `Run name`
            value, pos = _read_quoted(text, pos)
            yield Token("IDENT", (None, value), text[start:pos], start)
        elif ch in "(),":
            pos += 1
            yield Token(ch, ch, ch, start)
        elif number := _NUMBER.match(text, pos):
            pos = number.end()
            yield Token("NUMBER", number.group(), number.group(), start)
        elif op := _OPERATOR.match(text, pos):
            pos = op.end()
            token = Token("OP", op.group(), op.group(), start)
            if op.group() not in COMPARATORS:
                raise _Syntax(
                    f"unexpected token {token.describe()}; comparison operators are "
                    "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL and IS NOT NULL"
                )
            yield token
        elif word := _WORD.match(text, pos):
            pos = word.end()
            if pos < len(text) and text[pos] == ".":
                pos += 1
                if pos < len(text) and text[pos] in "`\"'":
                    key, pos = _read_quoted(text, pos)
                elif key_match := _KEY.match(text, pos):
                    key, pos = key_match.group(), key_match.end()
                else:
                    raise _Syntax(f"expected a key after '{text[start:pos]}' at position {start}")
                yield Token("IDENT", (word.group(), key), text[start:pos], start)
            elif word.group().upper() in KEYWORDS:
                yield Token("KEYWORD", word.group().upper(), word.group(), start)
            else:
                yield Token("IDENT", (None, word.group()), word.group(), start)
        elif ch.isdigit() or ch in "-.":
            raise _Syntax(f"malformed number at position {pos}")
        else:
            raise _Syntax(f"unexpected character '{ch}' at position {pos}")
    yield Token("END", None, "", len(text))


# What can be searched ----------------------------------------------------------------------------

_ENTITIES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
_ATTRIBUTE_ALIASES = {"created": "start_time", "run name": "run_name"}
NUMERIC_OPS = COMPARATORS
STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})
NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})


@dataclass(frozen=True)
class Field:
    """One searchable thing: how values compare ("number" or "string"), its column, and its operators."""

    kind: str
    column: str
    ops: frozenset[str]
    nullable: bool = False


@dataclass(frozen=True)
class Schema:
    """What one search (runs or experiments) accepts, for filters and for order_by."""

    name: str
    entities: dict[str, Field]  # metric/param/tag/dataset -> how its values compare
    attributes: dict[str, Field]
    orderable: frozenset[str]  # entities and attribute names allowed in order_by
    dataset_keys: frozenset[str] = frozenset()

    def resolve(self, token: Token, *, for_order: bool = False) -> tuple[str, str, Field]:
        prefix, key = token.value
        entity = "attribute" if prefix is None else _ENTITIES.get(prefix.lower())
        if entity is None or (entity != "attribute" and entity not in self.entities):
            valid = ", ".join(sorted({p for p, e in _ENTITIES.items() if e in self.entities or e == "attribute"}))
            raise _Syntax(f"unknown identifier {token.describe()}; identifiers start with one of: {valid}")
        if entity == "attribute":
            key = _ATTRIBUTE_ALIASES.get(key.lower(), key.lower())
            if key not in self.attributes or (for_order and key not in self.orderable):
                names = sorted(self.orderable & set(self.attributes) if for_order else self.attributes)
                hint = f"; for a metric write metrics.{key}" if prefix is None and "metric" in self.entities else ""
                raise _Syntax(f"unknown attribute {token.describe()}; valid attributes are {', '.join(names)}{hint}")
            return entity, key, self.attributes[key]
        if for_order and entity not in self.orderable:
            raise _Syntax(f"cannot order by {token.describe()}")
        if entity == "dataset" and key not in self.dataset_keys:
            raise _Syntax(f"unknown dataset field {token.describe()}; valid: {', '.join(sorted(self.dataset_keys))}")
        if key == "":
            raise _Syntax(f"empty key in {token.describe()}")
        return entity, key, self.entities[entity]


RUNS = Schema(
    name="runs",
    entities={
        "metric": Field("number", "value", NUMERIC_OPS | NULL_OPS),
        "param": Field("string", "value", STRING_OPS | NULL_OPS),
        "tag": Field("string", "value", STRING_OPS | NULL_OPS),
        "dataset": Field("string", "", STRING_OPS),
    },
    attributes={
        "run_id": Field("string", "run_uuid", STRING_OPS),
        "run_name": Field("string", "name", STRING_OPS),
        "status": Field("string", "status", STRING_OPS),
        "user_id": Field("string", "user_id", STRING_OPS),
        "artifact_uri": Field("string", "artifact_uri", STRING_OPS),
        "lifecycle_stage": Field("string", "lifecycle_stage", STRING_OPS),
        "start_time": Field("number", "start_time", NUMERIC_OPS),
        "end_time": Field("number", "end_time", NUMERIC_OPS | NULL_OPS, nullable=True),
    },
    orderable=frozenset(
        {"metric", "param", "tag", "run_id", "run_name", "status", "user_id", "artifact_uri"}
        | {"lifecycle_stage", "start_time", "end_time"}
    ),
    dataset_keys=frozenset({"name", "digest"}),
)

EXPERIMENTS = Schema(
    name="experiments",
    entities={"tag": Field("string", "value", STRING_OPS | NULL_OPS)},
    attributes={
        "name": Field("string", "name", STRING_OPS),
        "experiment_id": Field("id", "id", frozenset({"=", "!=", "IN", "NOT IN"})),
        "creation_time": Field("number", "creation_time", NUMERIC_OPS),
        "last_update_time": Field("number", "last_update_time", NUMERIC_OPS),
    },
    orderable=frozenset({"name", "experiment_id", "creation_time", "last_update_time"}),
)


# The parser --------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent: or_expr := and_expr (OR and_expr)*; and_expr := atom (AND atom)*;
    atom := '(' or_expr ')' | comparison."""

    def __init__(self, text: str, schema: Schema) -> None:
        self.schema = schema
        self.tokens = list(tokenize(text))
        self.index = 0
        self.depth = 0
        self.comparisons = 0
        self.list_values = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "KEYWORD" and token.value in words

    def parse(self) -> Node | None:
        if self.peek().kind == "END":
            return None
        node = self.or_expr()
        token = self.peek()
        if token.kind != "END":
            expected = "AND, OR or ')'" if self.depth else "AND, OR or the end of the filter"
            raise _Syntax(f"unexpected token {token.describe()}; expected {expected}")
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.at_keyword("OR"):
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else BoolOp("OR", tuple(children))

    def and_expr(self) -> Node:
        children = [self.atom()]
        while self.at_keyword("AND"):
            self.take()
            children.append(self.atom())
        return children[0] if len(children) == 1 else BoolOp("AND", tuple(children))

    def atom(self) -> Node:
        token = self.peek()
        if token.kind == "(":
            self.take()
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise _Syntax(f"parentheses nested deeper than {MAX_NESTING} at position {token.pos}")
            node = self.or_expr()
            closing = self.take()
            if closing.kind != ")":
                raise _Syntax(
                    f"unexpected token {closing.describe()}; expected ')' to close the '(' at position {token.pos}"
                )
            self.depth -= 1
            return node
        if token.kind == "IDENT":
            return self.comparison()
        raise _Syntax(f"unexpected token {token.describe()}; expected a comparison such as metrics.acc > 0.9 or '('")

    def comparison(self) -> Comparison:
        ident = self.take()
        entity, key, field = self.schema.resolve(ident)
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise _Syntax(f"more than {MAX_COMPARISONS} comparisons")
        op_token = self.take()
        value: Any = None
        if op_token.kind == "OP" or (op_token.kind == "KEYWORD" and op_token.value in ("LIKE", "ILIKE")):
            op = op_token.value
            value = self.literal()
        elif op_token.kind == "KEYWORD" and op_token.value == "IN":
            op, value = "IN", self.value_list()
        elif op_token.kind == "KEYWORD" and op_token.value == "NOT":
            if not self.at_keyword("IN"):
                raise _Syntax(f"unexpected token {self.peek().describe()}; expected IN after NOT")
            self.take()
            op, value = "NOT IN", self.value_list()
        elif op_token.kind == "KEYWORD" and op_token.value == "IS":
            negated = self.at_keyword("NOT")
            if negated:
                self.take()
            if not self.at_keyword("NULL"):
                raise _Syntax(f"unexpected token {self.peek().describe()}; expected NULL")
            self.take()
            op = "IS NOT NULL" if negated else "IS NULL"
        else:
            raise _Syntax(
                f"unexpected token {op_token.describe()}; expected a comparison operator after '{ident.text}' "
                "(=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL)"
            )
        if op not in field.ops:
            allowed = ", ".join(sorted(field.ops))
            raise _Syntax(f"'{op}' at position {op_token.pos} cannot compare '{ident.text}'; use one of {allowed}")
        return Comparison(entity, key, op, _coerce(ident, entity, field, value), ident.pos)

    def literal(self) -> Token:
        token = self.take()
        if token.kind not in ("STRING", "NUMBER"):
            raise _Syntax(f"unexpected token {token.describe()}; expected a number or a quoted string")
        return token

    def value_list(self) -> tuple[Token, ...]:
        opening = self.take()
        if opening.kind != "(":
            raise _Syntax(f"unexpected token {opening.describe()}; expected '(' and a list of quoted values")
        values = [self.literal()]
        while self.peek().kind == ",":
            self.take()
            if self.peek().kind == ")":  # a trailing comma, as Python and MLflow allow
                break
            values.append(self.literal())
        closing = self.take()
        if closing.kind != ")":
            raise _Syntax(f"unexpected token {closing.describe()}; expected ',' or ')'")
        self.list_values += len(values)
        if self.list_values > MAX_LIST_VALUES:
            raise _Syntax(f"more than {MAX_LIST_VALUES} values in IN lists")
        return tuple(values)


def _number(token: Token) -> int | float:
    text = token.value
    if re.fullmatch(r"-?\d{1,19}", text):  # longer ones are beyond int64 (and int() refuses 4300+ digits)
        number = int(text)
        return number if INT64_MIN <= number <= INT64_MAX else float(number)
    return float(text)


def _coerce(ident: Token, entity: str, field: Field, value: Any) -> Any:
    """The literal(s) as Python values of the field's kind."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_coerce(ident, entity, field, v) for v in value)
    token: Token = value
    if field.kind == "number":
        if token.kind != "NUMBER":
            raise _Syntax(f"'{ident.text}' is numeric: expected a number, found {token.describe()}")
        return float(token.value) if entity == "metric" else _number(token)
    if field.kind == "id":
        try:
            number: int | None = int(token.value)
        except ValueError:
            number = None
        if number is None or not 0 <= number <= INT64_MAX:
            raise _Syntax(f"Invalid experiment ID '{token.value}'. Experiment ID must be a valid integer.")
        return number
    if token.kind != "STRING":
        raise _Syntax(f"'{ident.text}' holds strings: quote the value, e.g. '{token.value}' (found {token.describe()})")
    return token.value


def _parse(text: str | None, schema: Schema) -> Node | None:
    text = text or ""
    try:
        return _Parser(text, schema).parse()
    except _Syntax as exc:
        raise SearchError(f"Invalid filter '{text}': {exc.detail}") from None


def parse_filter(filter_string: str) -> Node | None:
    """The AST of a runs filter (None when it is empty), or SearchError saying what is wrong where."""
    return _parse(filter_string, RUNS)


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


def _string_q(column: str, op: str, value: Any) -> Q:
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


def _numeric_q(column: str, op: str, value: Any, *, nullable: bool = False) -> Q:
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


def _run_q(node: Node) -> Q:
    if isinstance(node, BoolOp):
        return reduce(operator.and_ if node.op == "AND" else operator.or_, (_run_q(c) for c in node.children))
    op, value = node.op, node.value
    if node.entity == "attribute":
        field = RUNS.attributes[node.key]
        if field.kind == "number":
            return _numeric_q(field.column, op, value, nullable=field.nullable)
        return _string_q(field.column, op, value)
    if node.entity == "dataset":
        return Q(Exists(RunInput.objects.filter(_string_q(node.key, op, value), run=OuterRef("pk"))))
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
        return Q(Exists(rows.filter(_numeric_q("value", op, value), is_nan=False)))
    return Q(Exists(rows.filter(_string_q("value", op, value))))


def _experiment_q(node: Node) -> Q:
    if isinstance(node, BoolOp):
        return reduce(operator.and_ if node.op == "AND" else operator.or_, (_experiment_q(c) for c in node.children))
    op, value = node.op, node.value
    if node.entity == "tag":
        rows = _keyed(ExperimentTag, "experiment", node.key)
        if op in NULL_OPS:
            return Q(Exists(rows)) if op == "IS NOT NULL" else ~Q(Exists(rows))
        return Q(Exists(rows.filter(_string_q("value", op, value))))
    field = EXPERIMENTS.attributes[node.key]
    if field.kind == "number":
        return _numeric_q(field.column, op, value)
    return _string_q(field.column, op, value)  # name, and experiment_id (=, !=, IN, NOT IN on ints)


# order_by ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortColumn:
    """One column of the total order: a field or annotation that is never NULL, and its direction."""

    ref: str
    ascending: bool
    kind: type  # int, float or str: what a page token may hold for it


@dataclass
class Ordering:
    columns: list[SortColumn]
    annotations: dict[str, Expression]
    signature: str  # binds a page token to this order
    joins: dict[str, FilteredRelation]

    def apply(self, qs: QuerySet[Any]) -> QuerySet[Any]:
        if self.joins:
            qs = qs.annotate(**self.joins)
        return qs.annotate(**self.annotations).order_by(*self.order_by())

    def order_by(self) -> list[Any]:
        return [F(c.ref).asc() if c.ascending else F(c.ref).desc() for c in self.columns]


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
    return Ordering(columns, annotations, _signature("runs", seen), joins)


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


def _encode_token(ordering: Ordering, row: Any) -> str:
    values = [getattr(row, c.ref) for c in ordering.columns]
    payload = json.dumps({"o": ordering.signature, "after": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode_token(token: str, ordering: Ordering) -> list[Any]:
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
    after = data["after"]
    if len(after) != len(ordering.columns):
        raise bad("not a token this server issued")
    values = []
    for column, value in zip(ordering.columns, after, strict=True):
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
    return values


def _after(ordering: Ordering, values: list[Any]) -> Q:
    """Rows strictly after `values` in the order: c1 > v1, or c1 = v1 and c2 > v2, and so on."""
    columns = ordering.columns
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


def _page(qs: QuerySet[Any], ordering: Ordering, max_results: Any, page_token: str | None) -> tuple[list[Any], Any]:
    limit = _check_max_results(max_results)
    if page_token:
        qs = qs.filter(_after(ordering, _decode_token(page_token, ordering)))
    rows = list(qs[: limit + 1])
    token = _encode_token(ordering, rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], token


# Public API --------------------------------------------------------------------------------------

_VIEW_TYPES = {
    "ACTIVE_ONLY": (LifecycleStage.ACTIVE,),
    "DELETED_ONLY": (LifecycleStage.DELETED,),
    "ALL": (LifecycleStage.ACTIVE, LifecycleStage.DELETED),
}
_VIEW_TYPE_NUMBERS = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}  # the protobuf enum values


def lifecycle_stages(view_type: Any) -> tuple[str, ...]:
    name = str(view_type if view_type not in (None, "") else "ACTIVE_ONLY").upper()
    name = _VIEW_TYPE_NUMBERS.get(name, name)
    if name not in _VIEW_TYPES:
        raise SearchError(f"Invalid view type '{view_type}'. Valid values are ACTIVE_ONLY, DELETED_ONLY and ALL")
    return _VIEW_TYPES[name]


def _experiment_ids(experiment_ids: Any) -> list[int]:
    if isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    if len(experiment_ids or []) > MAX_EXPERIMENT_IDS:  # SQLite allows 32766 parameters per query
        raise SearchError(f"Search at most {MAX_EXPERIMENT_IDS} experiment IDs at a time, got {len(experiment_ids)}")
    ids = []
    for value in experiment_ids or []:
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or not 0 <= number <= INT64_MAX:
            raise SearchError(f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.")
        ids.append(number)
    return ids


def _runs(
    user: Any, experiment_ids: Any, filter_string: str | None, order_by: Any, view_type: Any
) -> tuple[QuerySet[Run], Ordering]:
    ids = _experiment_ids(experiment_ids)
    stages = lifecycle_stages(view_type)
    node = parse_filter(filter_string or "")
    ordering = run_ordering(order_by)
    readable = visible_experiments(user, Experiment.objects.filter(pk__in=ids)).values("pk")
    qs = Run.objects.filter(experiment_id__in=readable, lifecycle_stage__in=stages)
    if node is not None:
        qs = qs.filter(_run_q(node))
    return ordering.apply(qs), ordering


def runs_queryset(
    user: Any,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | tuple[str, ...] = (),
    view_type: str = "ACTIVE_ONLY",
) -> QuerySet[Run]:
    """The runs of `experiment_ids` that `user` may read, filtered and ordered; the caller pages it."""
    return _runs(user, experiment_ids, filter_string, order_by, view_type)[0]


def search_runs(
    user: Any,
    *,
    experiment_ids: list[str],
    filter_string: str,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
    view_type: str,
) -> tuple[list[Run], str | None]:
    """One page of runs with params, tags, latest metrics, inputs and outputs prefetched, and the
    token of the next page (None on the last)."""
    qs, ordering = _runs(user, experiment_ids, filter_string, order_by, view_type)
    runs, token = _page(qs, ordering, max_results, page_token)
    prefetch_related_objects(runs, *RUN_PREFETCH)
    return runs, token


def search_experiments(
    user: Any,
    *,
    filter_string: str,
    order_by: list[str],
    max_results: int,
    page_token: str | None,
    view_type: str,
) -> tuple[list[Experiment], str | None]:
    """One page of the experiments `user` may read, with tags prefetched, and the next page's token."""
    stages = lifecycle_stages(view_type)
    node = _parse(filter_string, EXPERIMENTS)
    ordering = experiment_ordering(order_by)
    qs = visible_experiments(user, Experiment.objects.filter(lifecycle_stage__in=stages))
    if node is not None:
        qs = qs.filter(_experiment_q(node))
    experiments, token = _page(ordering.apply(qs), ordering, max_results, page_token)
    prefetch_related_objects(experiments, "tags")
    return experiments, token

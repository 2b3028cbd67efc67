"""The filter grammar: limits, SearchError, the AST, the tokenizer, what can be searched, and the parser.

`parse_filter` turns a runs filter into a `Comparison` / `BoolOp` tree, checked against the `RUNS`
schema; `parse_with_schema` does the same for any `Schema` (the experiments search uses `EXPERIMENTS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from experiments.mlflow_api.common import MlflowError

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


def parse_with_schema(text: str | None, schema: Schema) -> Node | None:
    text = text or ""
    try:
        return _Parser(text, schema).parse()
    except _Syntax as exc:
        raise SearchError(f"Invalid filter '{text}': {exc.detail}") from None


def parse_filter(filter_string: str) -> Node | None:
    """The AST of a runs filter (None when it is empty), or SearchError saying what is wrong where."""
    return parse_with_schema(filter_string, RUNS)

"""Load model instances from hand-written SQL on the hottest paths.

Compiling an ORM query costs more than running it (about 0.5 ms against a 0.15 ms round trip to a
local PostgreSQL), which matters on endpoints the `mlflow` client calls thousands of times per run.
The SQL written here still names its columns from the models' `_meta`, and values go through the
same converters the ORM applies (SQLite returns datetimes as text and booleans as integers).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar, cast

from django.db import connection, models
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

M = TypeVar("M", bound=models.Model)


class _LoggedCursor(CursorDebugWrapper):
    """Django's query log (tests, DEBUG) with the statement's text: psycopg does not keep the last
    query of a prepared statement, which is what Django would log."""

    def execute(self, sql: str, params: Any = None) -> Any:
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)


def _ready() -> None:
    """What connection.cursor() does before it makes its cursor (the health check, connecting, the
    thread check), without making a cursor only to throw it away (half of prepared_cursor's 26 us)."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()


@contextmanager
def prepared_cursor() -> Iterator[Any]:
    """A cursor for statements that run on every API call. On PostgreSQL it binds parameters on the
    server, so psycopg prepares each statement on its first run on a connection, and the connection
    runs prepared statements on their generic plan (DB_PREPARED_STATEMENTS; planning cost more than
    running these). Django's own cursors bind on the client and never prepare. Elsewhere it is
    Django's cursor. Errors and query logging are Django's."""
    if connection.vendor != "postgresql":
        with connection.cursor() as django_cursor:
            yield django_cursor
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    _ready()
    raw = ServerBindingCursor(connection.connection)
    wrapped = _LoggedCursor(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
    try:
        yield wrapped
    finally:
        raw.close()


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of `sql` (`%s` placeholders), for a statement that runs on nearly every call of the
    `mlflow` client: a logged metric's write. On PostgreSQL with prepared statements it goes straight
    to libpq: the statement is prepared once per connection and run with its parameters as text, one
    blocking call that releases the GIL. psycopg's cursor and Django's wrapper around it cost such a
    call about 0.08 ms of CPU, as much as the round trip itself (docs/performance.md, "The real
    client's sequence"). Errors still come as Django's database errors, and the connection's checks
    (health, thread) are Django's.

    Only in autocommit, outside `atomic`: PostgreSQL forgets a statement prepared in a transaction
    that rolls back, and an error there would abort the transaction before the statement could be
    prepared again. (psycopg also deallocates every prepared statement after a rollback or a schema
    change on the connection: the next call finds its statement gone and prepares it again.)
    Elsewhere, with prepared statements off, while Django logs queries (DEBUG, tests that count
    statements), or under an execute wrapper (the MLflow views' reconnect, which watches the
    statements: experiments/mlflow_api/common.py), it is `prepared_cursor`'s execute and fetchone.

    The statement must return rows and hold no `%` other than its placeholders (not even in a string
    literal). Parameters: str, int, float, bool, None, or a list of str (an array literal; cast it in
    the SQL). Row values: bool, int, float or str (`LOADERS`); another type of column raises TypeError."""
    direct = not (connection.queries_logged or connection.execute_wrappers or connection.in_atomic_block)
    if connection.vendor == "postgresql" and direct:
        _ready()
        if connection.autocommit and connection.connection.prepare_threshold is not None:
            return _fetch_one_libpq(connection.connection, sql, params)
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cast("tuple[Any, ...] | None", cursor.fetchone())


_PARAM_TYPES = {bool: 16, int: 20, float: 701}  # bool, int8, float8; text: PostgreSQL infers it
LOADERS: dict[int, Callable[[bytes], Any]] = {
    16: lambda raw: raw == b"t",  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    701: float,  # float8
    25: bytes.decode,  # text
    1043: bytes.decode,  # varchar
}
_INVALID_STATEMENT_NAME = "26000"  # the prepared statement is gone (DEALLOCATE ALL, a pooler's DISCARD ALL)
_statement_names = itertools.count(1)


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format. libpq reads a text parameter up to its first NUL, so a
    string holding one is refused, as psycopg refuses it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return int.__repr__(value).encode()
    if isinstance(value, float):
        return float.__repr__(value).encode()
    if isinstance(value, list):
        text = text_array(value)
    elif isinstance(value, str):
        text = str.__str__(value)  # the value of a str enum, not its name
    else:
        raise TypeError(f"fetch_one takes no parameter of type {type(value).__name__}")
    if "\x00" in text:
        import psycopg

        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return text.encode()


def _error(conn: Any, result: Any) -> Any:
    """psycopg's exception for a failed result; OperationalError when the server did not answer (it
    closed the connection), as psycopg raises it when its connection breaks."""
    import psycopg
    from psycopg import pq
    from psycopg.errors import error_from_result

    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY):
        return psycopg.ProgrammingError("fetch_one needs a statement that returns rows")
    error = error_from_result(result, encoding=conn.info.encoding)
    if conn.pgconn.status == pq.ConnStatus.BAD or error.sqlstate is None:
        return psycopg.OperationalError(str(error) or "the connection to the database was lost")
    return error


def _fetch_one_libpq(conn: Any, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    from psycopg import pq

    # The statements this connection has prepared, by text and parameter types (gone with the
    # connection when Django reconnects).
    prepared: dict[tuple[str, tuple[int, ...]], bytes] = conn.__dict__.setdefault("_portal_prepared", {})
    types = tuple(_PARAM_TYPES.get(type(value), 0) for value in params)
    with connection.wrap_database_errors:
        values = [_text(value) for value in params]
        for attempt in (1, 2):
            name = prepared.get((sql, types))
            if name is None:
                parts = sql.split("%s")
                if "%" in "".join(parts) or len(parts) != len(params) + 1:
                    raise ValueError("fetch_one needs one %s per parameter and no other %")
                text = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
                name = f"_portal_{next(_statement_names)}".encode()
                result = conn.pgconn.prepare(name, text.encode(), list(types))
                if result.status != pq.ExecStatus.COMMAND_OK:
                    raise _error(conn, result)
                prepared[(sql, types)] = name
            result = conn.pgconn.exec_prepared(name, values)
            if result.status == pq.ExecStatus.TUPLES_OK:
                break
            error = _error(conn, result)
            if getattr(error, "sqlstate", None) != _INVALID_STATEMENT_NAME or attempt == 2:
                raise error
            prepared.clear()  # every statement of this connection is gone
    if result.ntuples == 0:
        return None
    row = []
    for column in range(result.nfields):
        raw = result.get_value(0, column)
        if raw is None:
            row.append(None)
            continue
        loader = LOADERS.get(result.ftype(column))
        if loader is None:
            raise TypeError(f"fetch_one reads no column of type {result.ftype(column)}")
        row.append(loader(raw))
    return tuple(row)


def select_list(model: type[models.Model], alias: str) -> str:
    """`alias."col1", alias."col2", …` for every concrete field, in `_meta` order."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def width(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)


def in_list(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """`column IN (...)` for text values, as SQL and parameters. On PostgreSQL one array literal, so
    the statement's text (and its prepared plan) does not change with the number of values, and
    psycopg does not adapt a list element by element in Python (0.2-0.3 ms for 100 run ids)."""
    if connection.vendor != "postgresql":
        return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)
    return f"{column} = ANY(%s::varchar[])", [text_array(values)]


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of text values, every element quoted (cast it: `%s::varchar[]`)."""
    quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


@cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[list[Callable[..., Any]], Any]]:
    out = []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        out.append((connection.ops.get_db_converters(col) + col.get_db_converters(connection), col))
    return out


def load(model: type[M], row: Sequence[Any], start: int = 0) -> M:
    """The instance whose columns (from `select_list`) start at `row[start]`."""
    fields = model._meta.concrete_fields
    values = list(row[start : start + len(fields)])
    for index, (converters, col) in enumerate(_converters(model, connection.vendor)):
        for convert in converters:
            values[index] = convert(values[index], col, connection)
    return model.from_db("default", [f.attname for f in fields], values)

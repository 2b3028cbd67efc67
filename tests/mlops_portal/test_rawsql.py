"""Helpers for the hand-written statements (mlops_portal.rawsql)."""

from __future__ import annotations

import pytest
from django.db import DataError, connection

from mlops_portal import rawsql
from tests.services import drop_connection

AWKWARD = ["abc", 'q"uote', "back\\slash", 'both\\"', "comma,x", "{brace}", "sp ace", "", "NULL", "ünï", "'"]


@pytest.mark.django_db
def test_an_in_list_matches_exactly_its_values_whatever_they_contain() -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE t_in_text (v varchar(20))")
        cursor.executemany("INSERT INTO t_in_text (v) VALUES (%s)", [(v,) for v in [*AWKWARD, "other", "abcd"]])
        where, params = rawsql.in_list("v", AWKWARD)
        cursor.execute(f"SELECT v FROM t_in_text WHERE {where}", params)  # noqa: S608
        assert sorted(row[0] for row in cursor.fetchall()) == sorted(AWKWARD)
        if connection.vendor == "postgresql":  # one parameter, however many values
            assert len(params) == 1
            cursor.execute("SELECT %s::varchar[]", params)
            assert cursor.fetchone()[0] == AWKWARD


# fetch_one: straight through libpq on PostgreSQL, outside a transaction -------------------------

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="libpq: PostgreSQL")
ROW_SQL = "SELECT %s::varchar AS s, %s::bigint AS i, %s AS b, %s::float8 AS f, %s::int AS n, %s::varchar[] AS a"


def _prepared_here() -> list[str]:
    """The statements this connection has prepared through fetch_one (PostgreSQL's own list)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_portal\\_%%'")
        return [row[0] for row in cursor.fetchall()]


@pg_only
@pytest.mark.django_db(transaction=True)
def test_fetch_one_reads_the_row_as_psycopgs_cursor_does_and_prepares_once() -> None:
    connection.close()  # a new connection: nothing prepared yet
    params = ['a "quoted", \\ value', 2**40, True, 0.25, None]
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(ROW_SQL.replace(", %s::varchar[] AS a", ""), params)
        expected = cursor.fetchone()
    sql = ROW_SQL.replace(", %s::varchar[] AS a", "")
    assert rawsql.fetch_one(sql, params) == expected == ('a "quoted", \\ value', 2**40, True, 0.25, None)
    assert rawsql.fetch_one(sql, ["x", -1, False, float("-inf"), None]) == ("x", -1, False, float("-inf"), None)
    assert len(_prepared_here()) == 1  # prepared on the first call, run again on the second
    assert rawsql.fetch_one(sql, ["x", -1, False, 1.5, 7]) == ("x", -1, False, 1.5, 7)
    assert len(_prepared_here()) == 2  # an int where there was a NULL: prepared with that type
    assert rawsql.fetch_one("SELECT 1 WHERE %s", [False]) is None  # no row
    assert rawsql.fetch_one("SELECT %s::varchar[] IS NOT NULL", [AWKWARD]) == (True,)
    with pytest.raises(DataError, match="NUL"):
        rawsql.fetch_one("SELECT %s::varchar", ["cut\x00here"])  # never cut short at the NUL, as libpq would
    with pytest.raises(TypeError, match="no parameter of type"):
        rawsql.fetch_one("SELECT %s::varchar", [b"bytes"])
    with pytest.raises(ValueError, match="one %s per parameter"):
        rawsql.fetch_one("SELECT %s::varchar LIKE 'a%'", ["a"])
    with pytest.raises(TypeError, match="no column of type"):
        rawsql.fetch_one("SELECT %s::varchar[]", [AWKWARD])  # an array comes back as text: refused


@pg_only
@pytest.mark.django_db(transaction=True)
def test_fetch_one_prepares_again_when_the_statement_is_gone() -> None:
    connection.close()
    assert rawsql.fetch_one("SELECT %s::int + 1", [1]) == (2,)
    assert len(_prepared_here()) == 1
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
    assert not _prepared_here()
    assert rawsql.fetch_one("SELECT %s::int + 1", [2]) == (3,)
    assert len(_prepared_here()) == 1  # prepared again, on the same connection


@pg_only
@pytest.mark.django_db(transaction=True)
def test_fetch_one_inside_a_transaction_takes_the_cursor_and_a_rollback_loses_nothing() -> None:
    from django.db import transaction

    connection.close()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert rawsql.fetch_one("SELECT %s::int * 2", [21]) == (42,)
        raise RuntimeError("roll back")
    assert not _prepared_here()  # nothing of fetch_one's own was prepared in the transaction
    assert rawsql.fetch_one("SELECT %s::int * 2", [4]) == (8,)  # and outside it works as before


@pg_only
@pytest.mark.django_db(transaction=True)
def test_fetch_one_errors_are_djangos_and_a_lost_connection_is_noticed() -> None:
    from django.db import DataError, OperationalError, ProgrammingError

    with pytest.raises(DataError, match="division by zero"):
        rawsql.fetch_one("SELECT 1 / %s::int", [0])  # running it
    with pytest.raises(ProgrammingError, match="no_such_table"):
        rawsql.fetch_one("SELECT * FROM no_such_table WHERE %s", [True])  # preparing it
    assert connection.errors_occurred  # as Django's cursor marks it: checked before the connection's reuse
    connection.close()
    drop_connection()
    with pytest.raises(OperationalError):
        rawsql.fetch_one("SELECT %s::int", [1])
    connection.close()

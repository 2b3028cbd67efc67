"""Helpers for the hand-written statements (mlops_portal.rawsql)."""

from __future__ import annotations

import pytest
from django.db import connection

from mlops_portal import rawsql

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

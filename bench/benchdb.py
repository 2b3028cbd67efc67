"""The one way a benchmark recreates its own PostgreSQL database (and never touches any other)."""

from __future__ import annotations

import psycopg
from psycopg import sql


def recreate_database(pg_url: str, name: str) -> str:
    """Drop and create the database `name` (it must start with `bench_`); returns its URL."""
    if not name.startswith("bench_"):
        raise ValueError(f"refusing to touch database {name!r}: a benchmark's own start with bench_")
    base = pg_url.rstrip("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{base}/{name}"

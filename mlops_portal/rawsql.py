"""Load model instances from hand-written SQL on the hottest paths.

Compiling an ORM query costs more than running it (about 0.5 ms against a 0.15 ms round trip to a
local PostgreSQL), which matters on endpoints the `mlflow` client calls thousands of times per run.
The SQL written here still names its columns from the models' `_meta`, and values go through the
same converters the ORM applies (SQLite returns datetimes as text and booleans as integers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def select_list(model: type[models.Model], alias: str) -> str:
    """`alias."col1", alias."col2", …` for every concrete field, in `_meta` order."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def width(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)


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

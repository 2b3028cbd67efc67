from __future__ import annotations

from typing import Any

from datasets.models import DatasetVersion
from datasets.services import push_version
from tests.datasets.conftest import chunks_of

IRIS = b"sepal_length,sepal_width,species\n5.1,3.5,setosa\n4.9,3.0,setosa\n6.2,2.9,versicolor\n"


def push(
    name: str = "iris", data: bytes = IRIS, *, author: Any = None, filename: str = "iris.csv", **kw: Any
) -> DatasetVersion:
    version, _ = push_version(
        name, chunks_of(data), filename=filename, message=kw.pop("message", "test"), author=author, **kw
    )
    return version


def csv_rows(count: int, start: int = 0) -> bytes:
    return b"id,value\n" + b"".join(b"%d,%d.5\n" % (i, i) for i in range(start, start + count))

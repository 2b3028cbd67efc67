"""Dataset tests store blobs under a fresh ARTIFACT_ROOT each and can stand in for higher apps' dependants."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datasets.dependants import Dependant, register_provider, unregister_provider


@pytest.fixture(autouse=True)
def store(settings: Any, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT / "datasets"


def stored_files(store: Path) -> list[str]:
    """Every file in the blob store, temp files included: empty after any refused upload."""
    if not store.exists():
        return []
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def chunks_of(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    stream = io.BytesIO(data)
    while chunk := stream.read(size):
        yield chunk


@pytest.fixture
def dependants() -> Iterator[Callable[..., None]]:
    """Pretend a higher app uses versions: `dependants(version_pk, Dependant(...), ...)`."""
    table: dict[int, list[Dependant]] = {}

    def provider(version: Any) -> list[Dependant]:
        return table.get(version.pk, [])

    register_provider("tests.fake", provider)

    def add(version_pk: int, *items: Dependant) -> None:
        table.setdefault(version_pk, []).extend(items)

    yield add
    unregister_provider("tests.fake")

"""Functions the pipeline tests let `function` steps call (added to PIPELINE_FUNCTIONS by the tests)."""

from __future__ import annotations

from typing import Any

CALLS: list[dict[str, Any]] = []


def record(**kwargs: Any) -> dict[str, Any]:
    CALLS.append(kwargs)
    return {"seen": kwargs, "count": len(CALLS)}


def boom(**kwargs: Any) -> dict[str, Any]:
    raise RuntimeError("the data is not ready")

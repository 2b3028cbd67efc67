from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Broker messages the code tried to send (the real broker is exercised by tests/e2e)."""
    from jobs.tasks import run_job

    messages: list[dict[str, Any]] = []

    def fake_apply_async(args: list[Any], queue: str, retry: bool) -> None:
        messages.append({"job_id": args[0], "queue": queue})

    monkeypatch.setattr(run_job, "apply_async", fake_apply_async)
    return messages


@pytest.fixture
def fast_jobs(settings: Any) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False
    settings.JOB_HEARTBEAT_INTERVAL = 0.05
    settings.JOB_HEARTBEAT_TIMEOUT = 5
    settings.JOB_REDISPATCH_AFTER = 5
    return settings

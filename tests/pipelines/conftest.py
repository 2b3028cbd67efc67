from __future__ import annotations

from typing import Any

import pytest

from tests.pipelines import functions


@pytest.fixture(autouse=True)
def pipeline_settings(settings: Any) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False
    settings.PIPELINE_FUNCTIONS = [*settings.PIPELINE_FUNCTIONS, "tests.pipelines.functions.record",
                                   "tests.pipelines.functions.boom"]  # fmt: skip
    functions.CALLS.clear()
    return settings


@pytest.fixture
def drive(sent: list[int], django_capture_on_commit_callbacks: Any) -> Any:
    """Run every job the pipelines send, in process, until none is left (what workers would do)."""
    from jobs import runner
    from jobs.models import Job

    def go(limit: int = 50) -> list[str]:
        done: list[str] = []
        while sent and len(done) < limit:
            job_id = sent.pop(0)
            with django_capture_on_commit_callbacks(execute=True):
                outcome = runner.execute(job_id)
            done.append(f"{Job.objects.get(pk=job_id).type}:{outcome}")
        return done

    return go

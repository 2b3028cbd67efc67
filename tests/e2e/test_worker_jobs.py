"""The job pattern against real processes: a Celery worker and beat on Redis, rows in PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.test import Client

from accounts.services import create_api_token
from jobs.models import Job, JobStatus
from tests.services import redis_url, running, start_beat, start_worker, wait_until

pytestmark = pytest.mark.e2e


def _api(user: Any) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(user, 'e2e').secret}")


def _submit(client: Client, steps: int, step_seconds: float) -> int:
    response = client.post(
        "/api/v1/jobs/",
        {"type": "demo.sleep", "params": {"steps": steps, "step_seconds": step_seconds}},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    return int(response.json()["id"])


def test_a_job_submitted_through_the_api_finishes_and_shows_progress_while_it_runs(
    e2e_env: dict[str, str], editor: Any
) -> None:
    worker = start_worker(e2e_env)
    with running(worker):
        client = _api(editor)
        job_id = _submit(client, steps=20, step_seconds=0.2)
        seen: list[int] = []

        def finished() -> bool:
            body = client.get(f"/api/v1/jobs/{job_id}/").json()
            seen.append(body["progress"])
            return bool(body["is_finished"])

        wait_until(finished, timeout=60, interval=0.1, message="the demo job to finish")
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.SUCCEEDED, (job.error, worker.output())
    assert (job.progress, job.attempts) == (100, 1)
    assert any(0 < p < 100 for p in seen), seen
    assert seen == sorted(seen)


def test_a_job_whose_worker_is_killed_mid_run_is_recovered_by_another_worker(
    e2e_env: dict[str, str], editor: Any
) -> None:
    beat = start_beat(e2e_env)
    first = start_worker(e2e_env, name="doomed")
    with running(beat, first):
        job_id = _submit(_api(editor), steps=30, step_seconds=0.2)
        wait_until(lambda: Job.objects.get(pk=job_id).progress >= 20, timeout=60, message="the job to get going")
        first.kill()  # SIGKILL to the worker and its pool: no cleanup, no ack
        job = Job.objects.get(pk=job_id)
        assert job.status == JobStatus.RUNNING and job.progress < 100
        second = start_worker(e2e_env, name="rescuer")
        with running(second):
            wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=90, message="the job to be recovered")
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.SUCCEEDED, (job.error, job.log, second.output())
    assert job.attempts == 2
    assert "doomed" in job.log and "stopped sending heartbeats" in job.log and "rescuer" in job.worker


def test_jobs_queued_when_redis_is_flushed_still_run_exactly_once(e2e_env: dict[str, str], editor: Any) -> None:
    client = _api(editor)
    job_ids = [_submit(client, steps=3, step_seconds=0.05) for _ in range(5)]
    broker = redis.Redis.from_url(redis_url())
    assert broker.llen("default") >= 5  # the messages really were in Redis...
    broker.flushdb()  # ...and now they are gone, as after a Redis restart without persistence
    assert broker.llen("default") == 0

    beat = start_beat(e2e_env)
    worker = start_worker(e2e_env, concurrency=2)
    with running(beat, worker):
        wait_until(
            lambda: Job.objects.filter(pk__in=job_ids, status=JobStatus.SUCCEEDED).count() == 5,
            timeout=90,
            message="every queued job to run",
        )
    jobs = list(Job.objects.filter(pk__in=job_ids))
    assert [job.attempts for job in jobs] == [1] * 5, "a job ran more than once"
    assert all(job.dispatch_count >= 2 for job in jobs)  # re-sent by the reconciler

"""The job pattern: submit after commit, claim once, report, finish, cancel, time out, reconcile."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from jobs import registry, runner, services
from jobs.models import Job, JobStatus
from jobs.runner import JobContext, RetryableJobError
from tests.jobs.factories import JobFactory


def test_a_submitted_job_is_sent_to_its_queue_only_after_commit(
    editor: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = services.submit_job("demo.sleep", params={"steps": 1}, requested_by=editor)
        assert sent == []  # nothing leaves before the row is committed
    assert len(callbacks) == 1
    assert sent == [{"job_id": job.pk, "queue": "default"}]
    job.refresh_from_db()
    assert (job.status, job.dispatch_count, job.requested_by) == (JobStatus.QUEUED, 1, editor)
    assert job.enqueued_at is not None


def test_an_unknown_job_type_is_refused(db: None) -> None:
    with pytest.raises(services.UnknownJobType):
        services.submit_job("no.such.type")


def test_a_broker_outage_at_submit_leaves_the_job_queued_for_the_reconciler(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.tasks import run_job

    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(run_job, "apply_async", down)
    job = JobFactory()
    assert services.dispatch_job(job.pk) is False
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_a_job_is_claimed_by_exactly_one_worker(db: None) -> None:
    job = JobFactory()
    first = services.claim_job(job.pk, "w1")
    second = services.claim_job(job.pk, "w2")
    assert first is not None and second is None
    assert (first.status, first.attempts, first.worker) == (JobStatus.RUNNING, 1, "w1")


def test_a_job_whose_worker_went_silent_can_be_taken_over(db: None, fast_jobs: Any) -> None:
    job = JobFactory(status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now() - timedelta(seconds=60))
    taken = services.claim_job(job.pk, "w2")
    assert taken is not None and taken.attempts == 2 and taken.worker == "w2"


def test_the_demo_job_runs_to_completion_with_progress_and_a_log(db: None, fast_jobs: Any) -> None:
    job = JobFactory(params={"steps": 4, "step_seconds": 0})
    assert runner.execute(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.progress, job.attempts, job.result) == (JobStatus.SUCCEEDED, 100, 1, {"steps": 4})
    assert job.progress_message == "step 4 of 4"
    assert "attempt 1 of 3 started" in job.log and "finished" in job.log
    assert job.finished_at is not None and job.duration_seconds is not None


def test_running_a_finished_job_again_does_nothing(db: None, fast_jobs: Any) -> None:
    job = JobFactory(params={"steps": 1, "step_seconds": 0})
    runner.execute(job.pk)
    assert runner.execute(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1


@pytest.fixture
def custom_type() -> Any:
    created: list[str] = []

    def make(name: str, handler: Any, on_finish: Any = None) -> str:
        registry.register(name, label=name, on_finish=on_finish)(handler)
        created.append(name)
        return name

    yield make
    for name in created:
        registry._TYPES.pop(name, None)


def test_a_failing_handler_fails_its_job_with_the_traceback(db: None, fast_jobs: Any, custom_type: Any) -> None:
    def boom(ctx: JobContext) -> None:
        raise ValueError("bad column 'age'")

    job = JobFactory(type=custom_type("test.boom", boom))
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "ValueError: bad column 'age'" in job.error


def test_a_transient_failure_is_retried_until_attempts_run_out(
    db: None, fast_jobs: Any, custom_type: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    def flaky(ctx: JobContext) -> None:
        raise RetryableJobError("storage unavailable")

    job = JobFactory(type=custom_type("test.flaky", flaky), max_attempts=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.execute(job.pk) == "retrying"
    assert [m["job_id"] for m in sent] == [job.pk]
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert "no attempts left" in job.error


def test_cancelling_a_queued_job_stops_it_before_it_starts(editor: Any) -> None:
    job = services.cancel_job(JobFactory(), actor=editor)
    assert job.status == JobStatus.CANCELLED
    assert runner.execute(job.pk) == "skipped"


def test_cancelling_a_running_job_stops_it_at_the_next_checkpoint(
    db: None, fast_jobs: Any, custom_type: Any, editor: Any
) -> None:
    def long(ctx: JobContext) -> None:
        services.cancel_job(ctx.job, actor=editor)  # a user clicks Cancel mid-run
        for step in range(200):
            ctx.progress(step / 2)
            import time

            time.sleep(0.01)

    job = JobFactory(type=custom_type("test.long", long))
    assert runner.execute(job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.progress < 100
    assert "cancelled by a user" in job.log


def test_a_job_past_its_timeout_fails_with_the_reason(db: None, fast_jobs: Any) -> None:
    job = JobFactory(params={"steps": 100, "step_seconds": 0.02}, timeout_seconds=1)
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert job.error == "timed out after 1s"


def test_a_worker_that_lost_its_job_stops_writing(db: None, fast_jobs: Any, custom_type: Any) -> None:
    def sneaky(ctx: JobContext) -> None:
        # The reconciler gave the job to another worker while this one was stalled.
        Job.objects.filter(pk=ctx.job.pk).update(attempts=ctx.job.attempts + 1)
        ctx.progress(50)

    job = JobFactory(type=custom_type("test.sneaky", sneaky))
    assert runner.execute(job.pk) == "lost"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.progress == 0


class TestReconciler:
    def test_it_resends_queued_jobs_whose_message_was_lost(
        self, db: None, fast_jobs: Any, sent: list[dict[str, Any]]
    ) -> None:
        old = timezone.now() - timedelta(seconds=60)
        lost = JobFactory(enqueued_at=old)
        fresh = JobFactory(enqueued_at=timezone.now())
        report = services.reconcile_jobs()
        assert report.redispatched == [lost.pk]
        assert sent == [{"job_id": lost.pk, "queue": "default"}]
        lost.refresh_from_db()
        fresh.refresh_from_db()
        assert lost.dispatch_count == 1 and fresh.dispatch_count == 0

    def test_it_retries_a_job_whose_worker_died(self, db: None, fast_jobs: Any, sent: list[dict[str, Any]]) -> None:
        job = JobFactory(
            status=JobStatus.RUNNING, attempts=1, worker="w1", heartbeat_at=timezone.now() - timedelta(seconds=30)
        )
        report = services.reconcile_jobs()
        assert report.retried == [job.pk]
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED
        assert "worker w1 stopped sending heartbeats" in job.error
        assert "retrying" in job.log
        assert sent == [{"job_id": job.pk, "queue": "default"}]

    def test_it_fails_a_job_whose_attempts_are_used_up(self, db: None, fast_jobs: Any) -> None:
        job = JobFactory(status=JobStatus.RUNNING, attempts=3, heartbeat_at=timezone.now() - timedelta(seconds=30))
        report = services.reconcile_jobs()
        assert report.failed == [job.pk]
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED
        assert "no attempts left (3)" in job.error

    def test_it_leaves_healthy_jobs_alone(self, db: None, fast_jobs: Any, sent: list[dict[str, Any]]) -> None:
        JobFactory(status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now())
        JobFactory(status=JobStatus.SUCCEEDED, enqueued_at=timezone.now() - timedelta(days=1))
        report = services.reconcile_jobs()
        assert (report.redispatched, report.retried, report.failed, sent) == ([], [], [], [])


def test_the_reconciler_backs_off_instead_of_flooding_a_long_queue(
    db: None, fast_jobs: Any, sent: list[dict[str, Any]]
) -> None:
    # Sent three times already; the last 30 s ago. The next resend waits 5 s * 2**2 = 20 s: due.
    due = JobFactory(enqueued_at=timezone.now() - timedelta(seconds=30), dispatch_count=3)
    # Sent five times; the next resend waits 5 s * 2**4 = 80 s: not yet.
    waiting = JobFactory(enqueued_at=timezone.now() - timedelta(seconds=30), dispatch_count=5)
    report = services.reconcile_jobs()
    assert report.redispatched == [due.pk]
    assert waiting.pk not in [m["job_id"] for m in sent]
    assert services.redispatch_backoff(50) == timedelta(hours=1)


class TestReconcilerEdgeCases:
    def test_a_cancel_that_arrived_between_attempts_ends_the_job(self, db: None, fast_jobs: Any) -> None:
        job = JobFactory(cancel_requested=True, enqueued_at=timezone.now() - timedelta(seconds=60))
        report = services.reconcile_jobs()
        job.refresh_from_db()
        assert report.cancelled == [job.pk] and job.status == JobStatus.CANCELLED

    def test_a_dead_worker_on_a_cancelled_job_is_not_retried(self, db: None, fast_jobs: Any) -> None:
        job = JobFactory(
            status=JobStatus.RUNNING,
            attempts=1,
            cancel_requested=True,
            heartbeat_at=timezone.now() - timedelta(seconds=30),
        )
        report = services.reconcile_jobs()
        job.refresh_from_db()
        assert report.cancelled == [job.pk] and report.retried == []
        assert job.status == JobStatus.CANCELLED

    def test_a_job_stuck_past_its_timeout_fails_even_while_it_beats(self, db: None, fast_jobs: Any) -> None:
        job = JobFactory(
            status=JobStatus.RUNNING,
            attempts=1,
            timeout_seconds=10,
            started_at=timezone.now() - timedelta(seconds=60),
            heartbeat_at=timezone.now(),
        )
        report = services.reconcile_jobs()
        job.refresh_from_db()
        assert report.failed == [job.pk]
        assert (job.status, job.error) == (JobStatus.FAILED, "timed out after 10s")


def test_a_result_that_is_not_json_fails_the_job(db: None, fast_jobs: Any, custom_type: Any) -> None:
    def odd(ctx: JobContext) -> dict[str, Any]:
        return {"when": object()}

    job = JobFactory(type=custom_type("test.odd", odd))
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "not JSON serializable" in job.error


def test_a_retry_asked_for_after_a_cancel_request_cancels(
    db: None, fast_jobs: Any, custom_type: Any, editor: Any
) -> None:
    def flaky(ctx: JobContext) -> None:
        Job.objects.filter(pk=ctx.job.pk).update(cancel_requested=True)
        raise RetryableJobError("storage unavailable")

    job = JobFactory(type=custom_type("test.flaky2", flaky))
    assert runner.execute(job.pk) == "retrying"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_the_finish_hook_hears_of_every_way_a_job_ends_once_committed(
    db: None, fast_jobs: Any, custom_type: Any, editor: Any, sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    heard: list[int] = []

    def broken_hook(job_id: int) -> None:
        heard.append(job_id)
        raise RuntimeError("a hook's bug must not break the job machinery")

    name = custom_type("test.hooked", lambda ctx: {"ok": True}, on_finish=broken_hook)
    succeeded, cancelled, dead = JobFactory(type=name), JobFactory(type=name), JobFactory(type=name)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        assert runner.execute(succeeded.pk) == "succeeded"
    assert heard == [] and pending  # not before the final status is committed
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.execute(succeeded.pk) == "skipped"  # the finished job is not claimed again
        for callback in pending:
            callback()
        services.cancel_job(cancelled, actor=editor)
        Job.objects.filter(pk=dead.pk).update(
            status=JobStatus.RUNNING, attempts=dead.max_attempts, heartbeat_at=timezone.now() - timedelta(seconds=60)
        )
        assert services.reconcile_jobs().failed == [dead.pk]
    assert heard == [succeeded.pk, cancelled.pk, dead.pk]
    assert Job.objects.get(pk=succeeded.pk).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("state", "how"),
    [
        ({"status": JobStatus.QUEUED, "cancel_requested": True}, "cancelled"),  # a cancel between attempts
        ({"status": JobStatus.QUEUED, "attempts": 3, "max_attempts": 3, "enqueued_at": "old"}, "failed"),
        ({"status": JobStatus.RUNNING, "attempts": 1, "timeout_seconds": 1, "started_at": "old",
          "heartbeat_at": "now"}, "failed"),  # timed out while still beating
        ({"status": JobStatus.RUNNING, "attempts": 1, "cancel_requested": True, "heartbeat_at": "old"}, "cancelled"),
    ],
)  # fmt: skip
def test_finish_listeners_hear_of_the_reconcilers_endings_too(
    db: None, fast_jobs: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any,
    state: dict[str, Any], how: str,
) -> None:  # fmt: skip
    heard: list[int] = []
    registry.add_finish_listener("test", heard.append)
    try:
        long_ago = timezone.now() - timedelta(hours=2)
        values = {k: (long_ago if v == "old" else timezone.now() if v == "now" else v) for k, v in state.items()}
        job = JobFactory()
        Job.objects.filter(pk=job.pk).update(**values)
        with django_capture_on_commit_callbacks(execute=True):
            report = services.reconcile_jobs()
        assert getattr(report, how) == [job.pk] and heard == [job.pk]
    finally:
        registry._FINISH_LISTENERS.pop("test", None)


def test_a_retry_asked_for_by_a_cancelled_job_ends_it_and_is_heard(
    db: None, fast_jobs: Any, custom_type: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    heard: list[int] = []
    job = services.claim_job(JobFactory(type=custom_type("test.retry", lambda ctx: None, heard.append)).pk, "w")
    assert job is not None
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_job(job, "flaky storage") is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED and heard == [job.pk]


def test_a_stop_noticed_by_the_heartbeat_reaches_listeners_at_once(db: None, fast_jobs: Any, editor: Any) -> None:
    job = services.claim_job(JobFactory().pk, "w1")
    assert job is not None
    ctx = JobContext(job)
    heard: list[str] = []
    ctx.on_stop(lambda: heard.append("stop"))
    ctx.beat()
    assert heard == []
    services.cancel_job(job, actor=editor)
    ctx.beat()  # what the heartbeat thread does while a loop runs without checkpoints
    ctx.beat()
    assert heard == ["stop"]  # once
    with pytest.raises(runner.JobStopped) as stopped:
        ctx.checkpoint()
    assert stopped.value.status == JobStatus.CANCELLED
    late: list[str] = []
    ctx.on_stop(lambda: late.append("stop"))  # registered after the stop: told straight away
    assert late == ["stop"]

    timed = services.claim_job(JobFactory(timeout_seconds=1).pk, "w1")
    assert timed is not None
    ctx = JobContext(timed)
    ctx.on_stop(lambda: heard.append("timeout"))
    ctx._deadline = 0.0  # the time limit passed
    ctx.beat()
    assert heard == ["stop", "timeout"]

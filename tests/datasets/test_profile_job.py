"""Profiling as a job: started after a push commits, run through the jobs framework, re-run on request."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from datasets import profiles
from datasets.models import DatasetProfile, ProfileStatus
from datasets.profiler import ProfileOptions
from jobs import runner
from jobs import services as job_services
from jobs.models import Job, JobStatus
from tests.datasets.factories import csv_rows, push

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("blob_backend")]


@pytest.fixture
def fast_jobs(settings: Any) -> Any:
    settings.JOB_HEARTBEAT_THREAD = False
    settings.JOB_HEARTBEAT_INTERVAL = 0.05
    return settings


def test_a_push_queues_a_profiling_job_that_is_sent_only_after_commit(
    editor: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        version = push(author=editor)
        assert sent == []
    profile = DatasetProfile.objects.get(version=version)
    assert profile.status == ProfileStatus.QUEUED and profile.data is None
    assert profile.job is not None and profile.job.type == "datasets.profile"
    assert profile.job.params == {"version_id": version.pk} and profile.job.requested_by == editor
    assert sent == [profile.job.pk]


def test_the_job_profiles_the_version_and_stores_the_result(editor: Any, fast_jobs: Any) -> None:
    version = push(data=csv_rows(500), author=editor)
    job = DatasetProfile.objects.get(version=version).job
    assert runner.execute(job.pk) == "succeeded"
    job.refresh_from_db()
    profile = DatasetProfile.objects.get(version=version)
    assert profile.status == ProfileStatus.READY and profile.computed_at is not None
    assert profile.data["rows"] == 500 and [c["name"] for c in profile.data["columns"]] == ["id", "value"]
    assert (job.status, job.progress) == (JobStatus.SUCCEEDED, 100)
    assert job.result["rows"] == 500 and job.result["columns"] == 2 and job.result["dataset"] == "iris"
    assert "profiling iris v1" in job.log


def test_the_job_reports_progress_in_bytes_while_it_reads(
    editor: Any, fast_jobs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = push(data=csv_rows(20_000), author=editor)
    monkeypatch.setattr(profiles, "profile_options", lambda: ProfileOptions(block_bytes=16 * 1024, progress_interval=0))
    reported: list[tuple[int, str]] = []
    real = job_services.report_progress

    def spy(job: Job, progress: float, message: str = "") -> bool:
        reported.append((int(progress), message))
        return real(job, progress, message)

    monkeypatch.setattr(job_services, "report_progress", spy)
    monkeypatch.setattr(profiles.ProgressThrottle, "__init__", _no_interval_init)
    job = DatasetProfile.objects.get(version=version).job
    assert runner.execute(job.pk) == "succeeded"
    percents = [p for p, _ in reported]
    assert len(percents) >= 5 and percents == sorted(percents) and max(percents) <= 99
    assert any("pass 1 of 2" in m for _, m in reported) and any("pass 2 of 2" in m for _, m in reported)
    assert "MB of" in reported[-1][1]


def _no_interval_init(self: Any, report: Any, interval: float = 0.0) -> None:
    self.report, self.interval, self.last_pct, self.last_time = report, 0.0, -1, 0.0


def test_a_directory_dataset_is_not_profiled_and_says_so(editor: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", b"hello")
    version = push("pics", buffer.getvalue(), author=editor, filename="pics.zip")
    profile = DatasetProfile.objects.get(version=version)
    assert profile.status == ProfileStatus.UNSUPPORTED and profile.job is None
    assert "not profiled" in profile.error
    assert not Job.objects.filter(type="datasets.profile").exists()


def test_rerunning_while_a_job_is_live_starts_nothing_and_afterwards_starts_a_new_job(
    editor: Any, fast_jobs: Any
) -> None:
    version = push(author=editor)
    first = DatasetProfile.objects.get(version=version).job
    profile, started = profiles.request_profile(version, requested_by=editor)
    assert started is False and profile.job_id == first.pk
    runner.execute(first.pk)
    profile, started = profiles.request_profile(version, requested_by=editor)
    assert started is True and profile.job_id != first.pk and profile.status == ProfileStatus.QUEUED
    assert profile.data is not None  # the previous profile stays until the new one replaces it


def test_a_failed_job_shows_as_a_failed_profile(editor: Any, fast_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    version = push(author=editor)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise profiles.ProfileError("The file could not be read for profiling: boom")

    monkeypatch.setattr(profiles, "profile_file", broken)
    job = DatasetProfile.objects.get(version=version).job
    assert runner.execute(job.pk) == "failed"
    profile = DatasetProfile.objects.select_related("job").get(version=version)
    assert profile.display_status == ProfileStatus.FAILED and "boom" in profile.error


def test_the_job_of_a_deleted_version_returns_quietly(editor: Any, fast_jobs: Any) -> None:
    version = push(author=editor)
    job = DatasetProfile.objects.get(version=version).job
    version.delete()
    assert runner.execute(job.pk) == "succeeded"
    job.refresh_from_db()
    assert job.result == {"skipped": "the version was deleted"}

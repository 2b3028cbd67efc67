"""A push through the API makes a real Celery worker (on Redis, rows in PostgreSQL) profile the version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from accounts.services import create_api_token
from datasets.models import DatasetProfile, ProfileStatus
from jobs.models import JobStatus
from tests.services import running, start_worker, wait_until

pytestmark = pytest.mark.e2e

ROWS = 600_000  # about 20 MB: several 4 MiB blocks per pass, so the job reports progress on the way


def test_a_pushed_version_is_profiled_by_a_worker_that_reports_progress(
    e2e_env: dict[str, str], editor: Any, settings: Any, tmp_path: Path
) -> None:
    # The web side (this process) and the worker must see the same blob store.
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    e2e_env["ARTIFACT_ROOT"] = str(settings.ARTIFACT_ROOT)
    e2e_env["DATASET_MAX_FIELD_BYTES"] = "65536"  # blocks of 4 MiB (16 x the field cap, at least 4 MiB)
    data = b"id,value,group\n" + b"".join(b"%d,%d.25,g%d\n" % (i, i % 997, i % 13) for i in range(ROWS))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(editor, 'e2e').secret}")

    worker = start_worker(e2e_env)
    with running(worker):
        pushed = client.post(
            "/api/v1/datasets/big/versions/?filename=big.csv", data, content_type="application/octet-stream"
        )
        assert pushed.status_code == 201, pushed.content
        seen: list[int] = []

        def profiled() -> bool:
            body = client.get("/api/v1/datasets/big/versions/1/profile").json()
            seen.append(body["job"]["progress"])
            # The profile is saved a moment before its job is marked finished: wait for both.
            return body["status"] in ("ready", "failed") and body["job"]["status"] in ("succeeded", "failed")

        wait_until(profiled, timeout=90, interval=0.05, message="the profile job to finish")

    profile = DatasetProfile.objects.select_related("job").get(version__dataset__name="big")
    assert profile.status == ProfileStatus.READY, (profile.error, worker.output())
    assert profile.data["rows"] == ROWS and [c["name"] for c in profile.data["columns"]] == ["id", "value", "group"]
    assert (profile.job.status, profile.job.progress, profile.job.attempts) == (JobStatus.SUCCEEDED, 100, 1)
    assert any(0 < p < 100 for p in seen), seen  # progress was reported while it ran
    assert seen == sorted(seen), seen

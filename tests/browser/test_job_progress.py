"""A demo job started from the browser runs on a real Celery worker while its page shows the progress."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from tests.browser.conftest import PageErrors
from tests.services import child_env, require_postgres, running, start_worker

pytestmark = [pytest.mark.browser]

# Reports every value the job page's progress bar shows, through reloads, to the test.
RECORD_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  const track = document.querySelector("#job-live .progress");
  if (!track) return;
  const bar = track.querySelector(".progress-bar");
  const report = () => window.recordProgress(Number(track.getAttribute("aria-valuenow")), bar.style.width);
  report();
  new MutationObserver(report).observe(track, { attributes: true, attributeFilter: ["aria-valuenow"] });
});
"""


def test_a_demo_job_runs_and_its_progress_bar_reaches_100_percent(
    page: Any, live_server: Any, editor: Any, log_in: Any, tmp_path: Path, page_errors: PageErrors
) -> None:
    require_postgres()
    seen: list[tuple[int, str]] = []
    page.expose_function("recordProgress", lambda value, width: seen.append((value, width)))
    page.add_init_script(RECORD_PROGRESS)
    env = child_env(tmp_path)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # only this process's test bodies need it (see conftest)
    worker = start_worker(env)
    with running(worker):
        try:
            log_in(editor)
            page.get_by_role("link", name="Jobs", exact=True).click()
            page.locator("#start-demo").click()

            expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
            job = Job.objects.get()
            expect(page.locator(".messages")).to_contain_text(f"Started demo job #{job.pk}.")
            expect(page.get_by_role("heading", level=1)).to_have_text(f"Demo job #{job.pk}")

            live = page.locator("#job-live")
            expect(live.locator('[data-field="status"]')).to_have_text("Succeeded", timeout=30_000)
            expect(live.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
            expect(live.locator(".progress-bar")).to_have_attribute("style", re.compile(r"width:\s*100%"))
            expect(live.locator('[data-field="progress"]')).to_have_text("100%")
            expect(live.locator('[data-field="message"]')).to_have_text("step 20 of 20")
        finally:
            print(worker.output())  # shown by pytest only when the test fails

    intermediate = [(value, width) for value, width in seen if 0 < value < 100]
    assert intermediate, f"the bar never showed a value between 0 and 100: {seen}"
    assert all(width == f"{value}%" for value, width in seen), seen
    values = [value for value, _ in seen]
    assert values == sorted(values), f"the bar went backwards: {values}"
    job.refresh_from_db()
    assert (job.status, job.progress, job.attempts) == (JobStatus.SUCCEEDED, 100, 1)
    assert page_errors.all() == []

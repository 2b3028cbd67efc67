"""Datasets in a real browser: drag-and-drop upload with its progress bar, the version page's schema and
profile charts, the version timeline and the diff page.

Screenshots of every step go to $PORTAL_SCREENSHOT_DIR when it is set (to look at the pages), else to
the test's temp directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from datasets.models import DatasetProfile, DatasetVersion, ProfileStatus
from datasets.services import push_version
from jobs import runner
from tests.browser.conftest import PageErrors
from tests.datasets.conftest import chunks_of

pytestmark = [pytest.mark.browser]

# Reports every value the upload's progress bar shows to the test.
RECORD_UPLOAD_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  const track = document.querySelector("form[data-upload] .progress");
  if (!track) return;
  new MutationObserver(() => window.recordProgress(Number(track.getAttribute("aria-valuenow"))))
    .observe(track, { attributes: true, attributeFilter: ["aria-valuenow"] });
});
"""

# Drops a CSV of about 3 MB on the drop zone, as a person dragging a file from their desktop would.
DROP_CSV = """
(rows) => {
  const lines = ["id,sepal_length,species"];
  const names = ["setosa", "versicolor", "virginica"];
  for (let i = 0; i < rows; i++) lines.push(i + "," + (4 + (i % 40) / 10).toFixed(1) + "," + names[i % 3]);
  const file = new File([lines.join("\\n") + "\\n"], "iris.csv", { type: "text/csv" });
  const data = new DataTransfer();
  data.items.add(file);
  const zone = document.querySelector("form[data-upload] .dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
  }
  return file.size;
}
"""

SECOND_VERSION = b"id,sepal_length,species,petal_width\n" + b"".join(
    b"%d,%.1f,%s,%.1f\n" % (i, 5.5 + (i % 30) / 10, (b"setosa", b"virginica")[i % 2], (i % 25) / 10)
    for i in range(5000)
)


@pytest.fixture
def shots(tmp_path: Path) -> Any:
    folder = Path(os.environ.get("PORTAL_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(folder / f"datasets-{name}.png"), full_page=True)

    return shot


def run_profile(version: DatasetVersion) -> None:
    """What a worker does with the profiling job (tests/e2e runs a real one)."""
    assert runner.execute(DatasetProfile.objects.get(version=version).job_id) == "succeeded"


def test_an_editor_drops_a_csv_watches_it_upload_and_reads_its_schema_profile_and_diff(
    page: Any, live_server: Any, editor: Any, log_in: Any, settings: Any, shots: Any, page_errors: PageErrors
) -> None:
    settings.JOB_HEARTBEAT_THREAD = False  # the job runs in this test's thread
    progress: list[int] = []
    page.expose_function("recordProgress", lambda value: progress.append(value))
    page.add_init_script(RECORD_UPLOAD_PROGRESS)

    log_in(editor)
    page.get_by_role("link", name="Datasets", exact=True).click()
    expect(page.get_by_role("heading", name="No datasets yet")).to_be_visible()
    expect(page.locator(".empty-state")).to_contain_text("python manage.py dataset_push")
    shots(page, "1-empty-list")

    page.get_by_label("Dataset name").fill("iris")
    size = page.evaluate(DROP_CSV, 120_000)
    expect(page.locator("form[data-upload] [data-file]")).to_have_text(re.compile(r"^iris\.csv \(\d\.\d MB\)$"))
    page.get_by_label("Message").fill("first cut of the flowers")
    shots(page, "2-file-dropped")
    # About a megabyte a second, so the bar has time to show the upload moving (Chromium throttles the body).
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_000_000},
    )
    page.get_by_role("button", name="Push version").click()
    bar = page.locator("form[data-upload] .upload-progress")
    expect(bar).to_be_visible()
    expect(bar.locator("[data-upload-status]")).to_have_text(re.compile(r"^[1-9]\d?% of 2\.2 MB$"))
    shots(page, "3-uploading")
    expect(page.get_by_role("button", name="Push version")).to_be_disabled()

    page.wait_for_url(f"{live_server.url}/datasets/iris/versions/1/", timeout=30_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    assert progress and progress[-1] == 100 and progress == sorted(progress), progress
    assert any(0 < value < 100 for value in progress), progress
    version = DatasetVersion.objects.get()
    assert (version.size, version.row_count, version.message) == (size, 120_000, "first cut of the flowers")
    expect(page.get_by_role("heading", level=1)).to_have_text("iris v1")
    schema = page.locator("#schema-table")
    expect(schema.locator("tbody tr")).to_have_count(3)
    expect(schema).to_contain_text("sepal_length")
    expect(schema).to_contain_text("double")
    expect(page.locator("#job-live")).to_be_visible()  # queued: no worker in this test
    shots(page, "4-version-queued")

    run_profile(version)
    # The page polls the job and reloads itself once it has finished.
    expect(page.locator("#profile-table")).to_be_visible(timeout=15_000)
    charts = page.locator(".profile-charts .chart")
    expect(charts).to_have_count(3)
    for i in range(3):
        expect(charts.nth(i)).to_have_attribute("data-rendered", "true")
        expect(charts.nth(i).locator("svg.main-svg").first).to_be_visible()
    expect(page.locator("#downstream")).to_contain_text("No runs you can see used this version")
    shots(page, "5-version-profiled")

    second, _ = push_version(
        "iris", chunks_of(SECOND_VERSION), filename="iris2.csv", message="more flowers, petal width", author=editor
    )
    run_profile(second)
    assert DatasetProfile.objects.get(version=second).status == ProfileStatus.READY
    page.get_by_role("link", name="← iris").click()
    timeline = page.locator("#version-timeline")
    expect(timeline.locator(".timeline-item")).to_have_count(2)
    expect(timeline.locator(".timeline-item").first).to_contain_text("more flowers, petal width")
    shots(page, "6-timeline")

    timeline.get_by_role("link", name="diff vs v1").click()
    page.wait_for_url(re.compile(r"/datasets/iris/diff\?a=1&b=2$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("iris v1 → v2")
    expect(page.locator("#schema-changes")).to_contain_text("petal_width")
    expect(page.locator("#diff-summary")).to_contain_text("120,000 → 5,000")
    diff_charts = page.locator("[data-figure]")
    expect(diff_charts.first).to_have_attribute("data-rendered", "true")
    expect(diff_charts.first.locator("svg.main-svg").first).to_be_visible()
    shots(page, "7-diff")

    assert page_errors.all() == []

"""`manage.py seed_demo` (what `./portal up --demo` runs first): the whole loop seeded on real data."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command


def test_the_demo_seeds_every_stage_of_the_lifecycle_once(admin_user: Any, settings: Any, tmp_path: Path) -> None:
    from datasets.models import DatasetVersion
    from deployments.models import Deployment
    from deployments.services import active_revisions
    from experiments.models import Run, RunStatus
    from monitoring.models import AlertRule
    from pipelines.models import Pipeline
    from registry.models import RegisteredModel

    settings.JOB_HEARTBEAT_THREAD = False
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    out = io.StringIO()
    call_command("seed_demo", "--owner", admin_user.username, stdout=out)
    assert "demo ready" in out.getvalue()
    versions = list(DatasetVersion.objects.filter(dataset__name="breast-cancer").order_by("number"))
    assert [(v.number, v.row_count) for v in versions] == [(1, 400), (2, 569)]
    assert [c["name"] for c in versions[0].schema][-1] == "malignant"
    runs = Run.objects.filter(experiment__name="breast-cancer")
    assert runs.count() == 3 and set(runs.values_list("status", flat=True)) == {RunStatus.FINISHED}
    model = RegisteredModel.objects.get(name="breast-cancer")
    assert model.aliases.get().alias == "champion"
    deployment = Deployment.objects.get(name="breast-cancer-api")
    assert [r.model_version.version for r in active_revisions(deployment)] == [1]
    assert AlertRule.objects.get(deployment=deployment).metric == "drift_psi"
    retrain = Pipeline.objects.get(name="retrain-breast-cancer")
    assert retrain.triggers.get().source == "breast-cancer-api"
    assert Pipeline.objects.get(name="ml_pipeline").schedules.get().cron == "@daily"
    again = io.StringIO()
    call_command("seed_demo", "--owner", admin_user.username, stdout=again)
    assert "already there" in again.getvalue() and Run.objects.count() == 3
    Pipeline.objects.filter(name="ml_pipeline").delete()  # as if the first seeding had been interrupted
    with pytest.raises(CommandError, match="started here but not finished"):
        call_command("seed_demo", "--owner", admin_user.username, stdout=io.StringIO())

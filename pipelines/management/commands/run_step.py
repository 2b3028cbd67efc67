"""`python manage.py run_step PIPELINE STEP --run-key KEY [--params JSON] [--orchestrator NAME]`: do one step
of a pipeline for an external orchestrator (an exported Kubeflow or Airflow pipeline runs each step so).
Exit status 0 when the step succeeded, 1 with the reason otherwise; its outputs are printed as JSON (and
written to `--outputs-file`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.external import ExternalStepError, external_run, run_step
from pipelines.models import Pipeline


class Command(BaseCommand):
    help = "Run one step of a pipeline here (for Kubeflow Pipelines or Airflow)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pipeline")
        parser.add_argument("step")
        parser.add_argument("--run-key", required=True, help="the orchestrator's run id: its steps share a run")
        parser.add_argument("--params", default="{}", help="the run's parameters, JSON")
        parser.add_argument("--pipeline-version", type=int, default=None, help="the pipeline version (default: newest)")
        parser.add_argument("--orchestrator", default="external")
        parser.add_argument("--user", default="", help="who the steps act as (default: the pipeline's owner)")
        parser.add_argument("--outputs-file", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        pipeline = Pipeline.objects.filter(name=options["pipeline"]).select_related("owner").first()
        if pipeline is None:
            raise CommandError(f"no pipeline {options['pipeline']!r}")
        user = get_user_model().objects.filter(username=options["user"]).first() if options["user"] else None
        try:
            params = json.loads(options["params"])
            run = external_run(pipeline, options["run_key"][:200], orchestrator=options["orchestrator"][:40],
                               params=params, user=user, version=options["pipeline_version"])  # fmt: skip
            outputs = run_step(run, options["step"])
        except ValueError as exc:
            raise CommandError(f"--params: {exc}") from None
        except ExternalStepError as exc:
            raise CommandError(f"{options['step']}: {exc}") from None
        text = json.dumps(outputs, default=str)
        if options["outputs_file"]:
            Path(options["outputs_file"]).parent.mkdir(parents=True, exist_ok=True)
            Path(options["outputs_file"]).write_text(text)
        self.stdout.write(text)

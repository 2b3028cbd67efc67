"""`python manage.py seed_demo [--owner admin]`: the whole lifecycle on real data, for a first look.

`./portal up --demo` runs it before starting the portal, then drives traffic with drift at the deployment
(`simulate_traffic`), so within minutes every page has something to show:

- the dataset `breast-cancer` (scikit-learn's bundled Wisconsin breast cancer data: 569 tumours, eight of
  their measurements and the diagnosis), version 1 with the first 400 rows and version 2 with all of them;
- the experiment `breast-cancer` with three training runs on version 1 (a linear model and two MLPs), trained
  here, in this process, with the portal's own training job;
- the best of them registered as `breast-cancer` version 1 with the alias `champion`, served by the
  deployment `breast-cancer-api` (canary rollouts gated on the holdout and on the champion);
- the pipeline `retrain-breast-cancer` (validate the newest version → train → evaluate against the champion
  → register → canary deploy) with a trigger on alerts of the deployment, one hour of cooldown;
- an alert rule on feature drift (PSI above 0.25), which the drifted traffic sets off, starting the retrain;
- the founding document's Airflow DAG as the pipeline `ml_pipeline`, scheduled daily.

Running it again after it finished changes nothing; after an interrupted run it says so and stops (seed it
into an empty database).
"""

from __future__ import annotations

import io
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

FEATURES = ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness", "mean compactness",
            "mean concavity", "mean symmetry"]  # fmt: skip
TARGET = "malignant"
DATASET = "breast-cancer"
DEPLOYMENT = "breast-cancer-api"

RETRAIN = {
    "description": "Retrain on the newest data when the deployment's inputs drift; canary the challenger.",
    "params": {"epochs": 40, "margin": 0.0},
    "steps": [
        {"name": "validate", "type": "validate_dataset",
         "args": {"dataset": DATASET, "columns": [TARGET], "min_rows": 100}},
        {"name": "train", "type": "train", "needs": ["validate"],
         "args": {"experiment": DATASET, "dataset": DATASET, "version": "{{ steps.validate.outputs.version }}",
                  "target": TARGET, "trainer": "keras_mlp_classifier", "seed": 7,
                  "params": {"epochs": "{{ params.epochs }}", "hidden_units": [32, 16], "learning_rate": 0.005}}},
        {"name": "evaluate", "type": "evaluate", "needs": ["train"],
         "args": {"candidate": "{{ steps.train.outputs.model }}", "dataset": DATASET, "target": TARGET,
                  "champion": DATASET, "alias": "champion", "min_improvement": "{{ params.margin }}"}},
        {"name": "register", "type": "register", "needs": ["evaluate"],
         "args": {"model": DATASET, "source": "{{ steps.train.outputs.model }}"}},
        {"name": "deploy", "type": "deploy", "needs": ["register"],
         "args": {"deployment": DEPLOYMENT, "version": "{{ steps.register.outputs.version }}"}},
    ],
}  # fmt: skip


def table() -> str:
    """The data as CSV text: snake_case column names, `malignant` 1 for a malignant tumour."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame[FEATURES].round(5)
    frame.columns = [c.replace(" ", "_") for c in FEATURES]
    frame[TARGET] = 1 - data.frame["target"]  # scikit-learn's 1 is benign
    return frame.to_csv(index=False)


class Command(BaseCommand):
    help = "Seed a demo of the whole lifecycle on scikit-learn's breast cancer data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        from datasets.models import Dataset

        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"no user {options['owner']!r} (./portal up creates `admin`)")
        from pipelines.models import Pipeline

        if Pipeline.objects.filter(name="ml_pipeline").exists():  # the last thing seeded: the demo is complete
            self.stdout.write("the demo is already there; nothing to do")
            return
        if Dataset.objects.filter(name=DATASET).exists():
            raise CommandError(
                f"a demo was started here but not finished (dataset {DATASET!r} exists without the rest): "
                "start from an empty PORTAL_VAR_DIR (or database) to seed it again"
            )
        versions = self.datasets(owner)
        best = self.train(owner, versions[0])
        deployment = self.serve(owner, best, versions[0])
        self.automate(owner, deployment)
        self.stdout.write(self.style.SUCCESS(
            f"demo ready: dataset {DATASET} v1-v2, 3 runs, model {DATASET} v1 serving on {DEPLOYMENT}, "
            f"pipeline retrain-{DATASET} triggered by drift alerts, ml_pipeline daily"
        ))  # fmt: skip

    def datasets(self, owner: Any) -> list[Any]:
        from datasets.services import push_version

        text = table()
        lines = text.splitlines(keepends=True)
        first = "".join(lines[:401]).encode()
        versions = []
        for data, message in ((first, "the first 400 tumours"), (text.encode(), "all 569 tumours")):
            version, _ = push_version(DATASET, iter([data]), filename="breast_cancer.csv", message=message,
                                      author=owner)  # fmt: skip
            versions.append(version)
        self.stdout.write(f"dataset {DATASET}: v1 (400 rows), v2 (569 rows)")
        return versions

    def train(self, owner: Any, version: Any) -> dict[str, Any]:
        from experiments import services as tracking
        from experiments.training.services import start_training_job
        from jobs import runner
        from jobs.models import Job

        experiment = tracking.create_experiment(DATASET, owner=owner)
        results = []
        for name, trainer, params in (
            ("linear baseline", "keras_linear_classifier", {"epochs": 30, "learning_rate": 0.02}),
            ("small mlp", "keras_mlp_classifier", {"epochs": 30, "hidden_units": [8]}),
            ("wide mlp", "keras_mlp_classifier", {"epochs": 30, "hidden_units": [64, 32], "dropout": 0.2}),
        ):
            job = start_training_job(experiment, dataset_version=version, target=TARGET, trainer=trainer,
                                     params=params, seed=1, run_name=name, requested_by=owner)  # fmt: skip
            outcome = runner.execute(job.pk)
            job = Job.objects.get(pk=job.pk)
            if outcome != "succeeded":
                raise CommandError(f"training {name!r} {outcome}: {job.error[-500:]}")
            self.stdout.write(f"trained {name}: test accuracy {job.result['test_accuracy']:.3f}")
            results.append(job.result)
        return max(results, key=lambda r: r["test_accuracy"])

    def serve(self, owner: Any, best: dict[str, Any], holdout: Any) -> Any:
        from deployments import services as deployments
        from deployments.models import Strategy
        from registry import services as registry

        version = registry.register_source(owner, DATASET, best["model"])
        registry.set_alias(version.model, "champion", version, actor=owner)
        deployment = deployments.create_deployment(
            DEPLOYMENT, version.model, "champion", owner=owner, strategy=Strategy.CANARY, canary_steps=[25, 100],
            bake_seconds=30, holdout_dataset_version=holdout, target_column=TARGET, champion_margin=0.02,
            min_canary_requests=20, max_error_rate=0.05,
        )  # fmt: skip
        rollout = deployments.deploy(deployment, version.version, actor=owner)
        # The first version goes out at once (its rollout job, when a worker gets it, finds it done).
        deployments.complete_rollout(deployments.shift_traffic(rollout, len(rollout.steps) - 1), actor=owner)
        self.stdout.write(f"registered {DATASET} v{version.version} (champion), serving on {DEPLOYMENT}")
        return deployment

    def automate(self, owner: Any, deployment: Any) -> None:
        from pathlib import Path

        from django.conf import settings

        from monitoring.models import AlertRule
        from pipelines import services

        pipeline, _ = services.save_definition(f"retrain-{DATASET}", RETRAIN, actor=owner)
        services.create_trigger(pipeline.pipeline, "alert", DEPLOYMENT, cooldown_seconds=3600, actor=owner)
        AlertRule.objects.create(deployment=deployment, name="feature drift", metric="drift_psi", comparator=">",
                                 threshold=0.25, window_minutes=15, for_minutes=0, severity="warning",
                                 owner=owner)  # fmt: skip
        call_command("pipeline_apply", str(Path(settings.BASE_DIR) / "examples" / "founding_airflow.py"),
                     "--owner", owner.get_username(), stdout=io.StringIO())  # fmt: skip
        self.stdout.write(f"pipeline retrain-{DATASET} on drift alerts of {DEPLOYMENT}; ml_pipeline daily")

"""Training pages: the form that submits a training job, and a training job's live page (progress, the
loss curves of its run as epochs end, the test scores and the model when it is done)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from rest_framework.exceptions import ValidationError

from accounts.permissions import role_required
from datasets.models import DatasetFormat, DatasetVersion
from experiments import charts
from experiments.handlers import TRAIN_JOB, runs_of_job
from experiments.models import PERMISSION_RANK, LifecycleStage, Permission
from experiments.permissions import can, levels_for, visible_experiments
from experiments.queries import metric_series
from experiments.training import param_defaults, trainers
from experiments.training.services import start_training_job
from jobs.models import Job
from mlops_portal.api import first_field, first_message

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae")


def _error_text(detail: Any) -> str:
    """The first problem, worded as the API words it (`params.epochs: Ensure this value is ...`)."""
    field = first_field(detail)
    return f"{field}: {first_message(detail)}" if field else first_message(detail)


@role_required("editor")
def train_form(request: HttpRequest) -> HttpResponse:
    active = list(visible_experiments(request.user).filter(lifecycle_stage=LifecycleStage.ACTIVE).order_by("name"))
    levels = levels_for(request.user, active)  # one query for all of them
    experiments = [e for e in active if levels[e.pk] >= PERMISSION_RANK[Permission.EDIT]]
    versions = list(DatasetVersion.objects.exclude(format=DatasetFormat.DIRECTORY).select_related("dataset")
                    .order_by("dataset__name", "-number")[:500])  # fmt: skip
    choices = {
        name: {"label": t.label, "task": t.task, "defaults": param_defaults(t)} for name, t in trainers().items()
    }
    values = {"params": "{}", "seed": "0", "trainer": next(iter(sorted(choices)), "")}
    if request.method == "POST":
        values = {k: request.POST.get(k, "") for k in ("experiment", "version", "target", "trainer", "params", "seed",
                                                       "run_name")}  # fmt: skip
        experiment = next((e for e in experiments if str(e.pk) == values["experiment"]), None)
        version = (
            DatasetVersion.objects.exclude(format=DatasetFormat.DIRECTORY).filter(pk=values["version"]).first()
            if values["version"].isdigit()
            else None
        )
        try:
            params = json.loads(values["params"] or "{}")
            seed = int(values["seed"] or 0)
        except ValueError as exc:
            messages.error(request, f"params must be a JSON object and seed a whole number ({exc})")
        else:
            if experiment is None or version is None:
                messages.error(request, "Choose an experiment you may edit and a dataset version.")
            else:
                try:
                    job = start_training_job(
                        experiment, dataset_version=version, target=values["target"].strip(),
                        trainer=values["trainer"], params=params,
                        seed=seed, run_name=values["run_name"], requested_by=request.user,
                    )  # fmt: skip
                except ValidationError as exc:
                    messages.error(request, _error_text(exc.detail))
                else:
                    messages.success(request, f"Training job #{job.pk} queued.")
                    return redirect("experiments:training-job", job_id=job.pk)
    return render(
        request,
        "experiments/train.html",
        {
            "experiments": experiments,
            "versions": versions,
            "trainers": choices,
            "values": values,
            "defaults_json": json.dumps({k: v["defaults"] for k, v in choices.items()}),
        },
    )


def training_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = Job.objects.filter(pk=job_id, type=TRAIN_JOB).select_related("requested_by").first()
    if job is None:
        raise Http404("no such training job")
    runs = list(runs_of_job(job.pk).select_related("experiment"))
    run = runs[0] if runs else None
    if run is not None and not can(request.user, run.experiment, Permission.READ):
        raise Http404("no such training job")
    figure = None
    latest: dict[str, float] = {}
    if run is not None:
        latest_values = dict(run.latest_metrics.values_list("key", "value"))
        series = []
        for key in (k for k in CURVES if k in latest_values):
            points = metric_series(run.pk, key)
            series.append({"name": key, "x": points.xs, "y": points.ys})
        if series:
            figure = json.dumps(charts.overlay_figure("value", series, x_title="epoch"))
        latest = {k: v for k, v in latest_values.items() if k.startswith("test_")}
    return render(
        request,
        "experiments/training_job.html",
        {"job": job, "run": run, "earlier_runs": runs[1:], "figure": figure, "scores": sorted(latest.items())},
    )

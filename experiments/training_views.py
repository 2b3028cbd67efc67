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
from experiments.handlers import TRAIN_JOB
from experiments.models import LifecycleStage, Permission, Run, RunTag
from experiments.permissions import can, visible_experiments
from experiments.queries import metric_series
from experiments.training import param_defaults, trainers
from experiments.training.job import JOB_TAG
from experiments.training.services import start_training_job
from jobs.models import Job

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae")


def _error_text(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        return "; ".join(
            _error_text(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}: ") for k, v in detail.items()
        )
    if isinstance(detail, list):
        return prefix + " ".join(str(d) for d in detail)
    return prefix + str(detail)


@role_required("editor")
def train_form(request: HttpRequest) -> HttpResponse:
    experiments = [e for e in visible_experiments(request.user).filter(lifecycle_stage=LifecycleStage.ACTIVE).order_by(
        "name") if can(request.user, e, Permission.EDIT)]  # fmt: skip
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
        version = next((v for v in versions if str(v.pk) == values["version"]), None)
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
                        trainer=values["trainer"], params=params if isinstance(params, dict) else {"_": params},
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
    run_ids = RunTag.objects.filter(key=JOB_TAG, value=str(job.pk)).values_list("run_id", flat=True)
    runs = list(Run.objects.filter(pk__in=list(run_ids)).select_related("experiment").order_by("-start_time"))
    run = runs[0] if runs else None
    if run is not None and not can(request.user, run.experiment, Permission.READ):
        raise Http404("no such training job")
    figure = None
    latest: dict[str, float] = {}
    if run is not None:
        keys = set(run.latest_metrics.values_list("key", flat=True))
        series = []
        for key in (k for k in CURVES if k in keys):
            points = metric_series(run.pk, key)
            series.append({"name": key, "x": points.xs, "y": points.ys})
        if series:
            figure = json.dumps(charts.overlay_figure("value", series, x_title="epoch"))
        latest = dict(run.latest_metrics.filter(key__startswith="test_").values_list("key", "value"))
    return render(
        request,
        "experiments/training_job.html",
        {"job": job, "run": run, "earlier_runs": runs[1:], "figure": figure, "scores": sorted(latest.items())},
    )

"""Training pages: the form that submits a training job, and a training job's live page (progress, the
loss curves of its run as epochs end, the test scores and the model when it is done)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from rest_framework.exceptions import ValidationError

from accounts.permissions import role_required
from datasets.models import DatasetFormat, DatasetVersion
from experiments import charts
from experiments.handlers import SCRIPT_JOB, TRAIN_JOB, runs_of_job
from experiments.models import PERMISSION_RANK, Experiment, LifecycleStage, Permission
from experiments.permissions import can, levels_for, visible_experiments
from experiments.queries import downsampled_series
from experiments.training import param_defaults, trainers
from experiments.training.services import allowed_scripts, start_script_job, start_training_job
from jobs.models import Job
from mlops_portal.api import error_text

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae")


def editable_experiments(request: HttpRequest) -> list[Any]:
    """The active experiments the user may edit (log runs into), by name."""
    active = list(visible_experiments(request.user).filter(lifecycle_stage=LifecycleStage.ACTIVE).order_by("name"))
    levels = levels_for(request.user, active)  # one query for all of them
    return [e for e in active if levels[e.pk] >= PERMISSION_RANK[Permission.EDIT]]


def form_choices(request: HttpRequest) -> dict[str, Any]:
    """What the training and sweep forms offer: experiments the user may edit, tabular dataset versions,
    and the trainers with their defaults."""
    choices = {
        name: {"label": t.label, "task": t.task, "defaults": param_defaults(t)} for name, t in trainers().items()
    }
    return {
        "experiments": editable_experiments(request),
        "versions": list(
            DatasetVersion.objects.exclude(format=DatasetFormat.DIRECTORY)
            .select_related("dataset")
            .order_by("dataset__name", "-number")[:500]
        ),
        "trainers": choices,
        "defaults_json": json.dumps({k: v["defaults"] for k, v in choices.items()}),
    }


@dataclass
class Posted:
    """The fields the training and sweep forms share, as posted (`values`, to show again) and parsed."""

    values: dict[str, str]
    experiment: Any = None
    version: DatasetVersion | None = None
    params: Any = None
    seed: int = 0


def read_training_fields(request: HttpRequest, experiments: list[Any], extra: tuple[str, ...] = ()) -> Posted:
    """Parse the shared fields; a problem is reported as a message and leaves `experiment` None."""
    names = ("experiment", "version", "target", "trainer", "params", "seed", "run_name", *extra)
    posted = Posted({k: request.POST.get(k, "") for k in names})
    values = posted.values
    try:
        posted.params = json.loads(values["params"] or "{}")
        posted.seed = int(values["seed"] or 0)
    except ValueError as exc:
        messages.error(request, f"params must be a JSON object and seed a whole number ({exc})")
        return posted
    experiment = next((e for e in experiments if str(e.pk) == values["experiment"]), None)
    version = (
        DatasetVersion.objects.exclude(format=DatasetFormat.DIRECTORY).filter(pk=values["version"]).first()
        if values["version"].isdigit()
        else None
    )
    if experiment is None or version is None:
        messages.error(request, "Choose an experiment you may edit and a dataset version.")
        return posted
    posted.experiment, posted.version = experiment, version
    return posted


@role_required("editor")
def train_form(request: HttpRequest) -> HttpResponse:
    context = form_choices(request)
    values = {"params": "{}", "seed": "0", "trainer": next(iter(sorted(context["trainers"])), "")}
    if request.method == "POST":
        posted = read_training_fields(request, context["experiments"], ("timeout_minutes",))
        values = posted.values
        if posted.experiment is not None:
            try:
                job = start_training_job(
                    posted.experiment, dataset_version=posted.version, target=values["target"].strip(),
                    trainer=values["trainer"], params=posted.params, seed=posted.seed, run_name=values["run_name"],
                    requested_by=request.user, timeout_seconds=timeout_of(values["timeout_minutes"]),
                )  # fmt: skip
            except ValidationError as exc:
                messages.error(request, error_text(exc.detail))
            else:
                messages.success(request, f"Training job #{job.pk} queued.")
                return redirect("experiments:training-job", job_id=job.pk)
    return render(request, "experiments/train.html", {**context, "values": values})


def timeout_of(text: str) -> int | None:
    """The form's optional timeout in minutes, as seconds; a bad value is a 400 naming the field."""
    if not text.strip():
        return None
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1
    if not 0 < minutes <= 7 * 24 * 60:
        raise ValidationError({"timeout_minutes": ["from 1 minute to 7 days (10080)"]})
    return max(60, int(minutes * 60))


def training_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = Job.objects.filter(pk=job_id, type__in=(TRAIN_JOB, SCRIPT_JOB)).select_related("requested_by").first()
    if job is None:
        raise Http404("no such training job")
    experiment = Experiment.objects.filter(pk=job.params.get("experiment_id")).first()
    if experiment is None or not can(request.user, experiment, Permission.READ):
        raise Http404("no such training job")  # before its run exists too: the params and log are the experiment's
    runs = list(runs_of_job(job.pk).select_related("experiment"))
    run = runs[0] if runs else None
    figure = None
    latest: dict[str, float] = {}
    if run is not None:
        latest_values = dict(run.latest_metrics.values_list("key", "value"))
        keys = [k for k in CURVES if k in latest_values]
        if job.type == SCRIPT_JOB:  # a script logs what it likes: its first few metrics
            keys = keys or sorted(latest_values)[:6]
        series = []
        for key in keys:  # a script may log long series: the page reads a chart's worth (LTTB), as the run page
            points = downsampled_series(run.pk, key)
            if points is not None:
                series.append({"name": key, "x": points.xs, "y": points.ys})
        if series:
            figure = json.dumps(charts.overlay_figure("value", series, x_title="epoch"))
        latest = {k: v for k, v in latest_values.items() if k.startswith("test_")}
    return render(
        request,
        "experiments/training_job.html",
        {
            "job": job,
            "run": run,
            "earlier_runs": runs[1:],
            "figure": figure,
            "scores": sorted(latest.items()),
            "is_script": job.type == SCRIPT_JOB,
            "log_tail": job.log[-4000:],
        },
    )


@role_required("editor")
def script_form(request: HttpRequest) -> HttpResponse:
    """Run your own training script as a job: uploaded, or one of the allowed directories' scripts."""
    context = {"experiments": editable_experiments(request)}  # no datasets or trainers: the script has its own
    values = {k: request.POST.get(k, "") for k in ("experiment", "path", "args", "run_name", "timeout_minutes",
                                                    "memory_mb")}  # fmt: skip
    if request.method == "POST":
        experiment = next((e for e in context["experiments"] if str(e.pk) == values["experiment"]), None)
        try:
            if experiment is None:
                raise ValidationError({"experiment": ["choose an experiment you may edit"]})
            try:
                args = shlex.split(values["args"])  # split like a shell would, but nothing ever runs a shell
            except ValueError as exc:
                raise ValidationError({"args": [str(exc)]}) from None
            memory = values["memory_mb"].strip()
            if memory and not memory.isdigit():
                raise ValidationError({"memory_mb": ["a whole number of megabytes"]})
            job = start_script_job(
                experiment, requested_by=request.user, upload=request.FILES.get("file"), path=values["path"],
                args=args, run_name=values["run_name"], timeout_seconds=timeout_of(values["timeout_minutes"]),
                memory_mb=int(memory) if memory else None,
            )  # fmt: skip
        except ValidationError as exc:
            messages.error(request, error_text(exc.detail))
        else:
            messages.success(request, f"Script job #{job.pk} queued.")
            return redirect("experiments:training-job", job_id=job.pk)
    return render(
        request,
        "experiments/script.html",
        {
            **context,
            "values": values,
            "scripts": allowed_scripts(),
            "tracking_uri": settings.SCRIPT_TRACKING_URI,
            "max_bytes": settings.SCRIPT_MAX_BYTES,
            "memory_default": settings.SCRIPT_MEMORY_MB,
        },
    )

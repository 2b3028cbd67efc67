"""Pipelines pages: the list, a pipeline (its DAG with the last run's state on every node, run history,
"run now", schedules, triggers, versions), the form that defines one, and a run (Gantt, steps, logs)."""

from __future__ import annotations

import json

import yaml
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from pipelines import charts, engine, services
from pipelines.models import Pipeline, PipelineRun
from pipelines.services import NotOwner, may_change
from pipelines.spec import SpecError, parse

EXAMPLE = """\
params:
  dataset: churn
  target: churned
steps:
  - name: validate
    type: validate_dataset
    args: {dataset: "{{ params.dataset }}", columns: ["{{ params.target }}"]}
  - name: train
    type: train
    needs: [validate]
    args:
      experiment: churn
      dataset: "{{ params.dataset }}"
      target: "{{ params.target }}"
      trainer: keras_mlp_classifier
      params: {epochs: 10}
  - name: register
    type: register
    needs: [train]
    args: {model: churn, source: "{{ steps.train.outputs.model }}"}
"""


def index(request: HttpRequest) -> HttpResponse:
    pipelines = list(
        Pipeline.objects.select_related("owner")
        .prefetch_related("schedules")
        .annotate(latest_number=Max("versions__number"))
        .order_by("name")
    )
    last = services.last_runs(pipelines)
    rows = [{"pipeline": p, "last": last.get(p.pk)} for p in pipelines]
    return render(request, "pipelines/index.html", {"rows": rows, "site_url": settings.SITE_URL})


@role_required("editor")
def define(request: HttpRequest) -> HttpResponse:
    """Define a pipeline, or a new version of one you own, as YAML or JSON."""
    values = {"name": request.GET.get("name", ""), "definition": EXAMPLE, "description": ""}
    existing = Pipeline.objects.filter(name=values["name"]).first() if values["name"] else None
    if existing is not None and (latest := existing.latest_version()) is not None:
        values["definition"] = yaml.safe_dump(latest.spec, sort_keys=False)
        values["description"] = existing.description
    if request.method == "POST":
        values = {k: request.POST.get(k, "") for k in ("name", "definition", "description")}
        try:
            version, created = services.save_definition(
                values["name"], parse(values["definition"]), actor=request.user, description=values["description"]
            )
        except (SpecError, NotOwner) as exc:
            messages.error(request, str(exc))
        else:
            word = f"Saved version {version.number}" if created else "Nothing changed"
            messages.success(request, f"{word} of {version.pipeline.name}.")
            return redirect("pipelines:detail", name=version.pipeline.name)
    return render(request, "pipelines/define.html", {"values": values})


def _pipeline(name: str) -> Pipeline:
    pipeline = Pipeline.objects.select_related("owner").filter(name=name).first()
    if pipeline is None:
        raise Http404("no such pipeline")
    return pipeline


def detail(request: HttpRequest, name: str) -> HttpResponse:
    pipeline = _pipeline(name)
    version = pipeline.latest_version()
    runs = pipeline.runs.select_related("version", "requested_by").order_by("-number")
    page = Paginator(runs, 25).get_page(request.GET.get("page"))
    last = runs.first()
    states = (
        dict(last.steps.values_list("name", "status"))
        if last and last.version_id == getattr(version, "pk", None)
        else {}
    )
    figure = charts.dag_figure(version.spec["steps"], states) if version else None
    return render(
        request,
        "pipelines/detail.html",
        {
            "pipeline": pipeline, "version": version, "page": page, "last": last,
            "figure": json.dumps(figure) if figure else None,
            "params_json": json.dumps(version.spec.get("params", {}), indent=1) if version else "{}",
            "definition_yaml": yaml.safe_dump(version.spec, sort_keys=False) if version else "",
            "can_change": may_change(request.user, pipeline), "schedules": list(pipeline.schedules.all()),
            "triggers": list(pipeline.triggers.all()), "live": bool(last and not last.is_finished),
        },
    )  # fmt: skip


@require_POST
@role_required("editor")
def run_now(request: HttpRequest, name: str) -> HttpResponse:
    pipeline = _pipeline(name)
    try:
        params = json.loads(request.POST.get("params") or "{}")
        run = engine.start_run(pipeline, params=params, requested_by=request.user)
    except ValueError as exc:
        where = getattr(exc, "field", "params")
        messages.error(request, f"{where}: {getattr(exc, 'message', exc)}")
        return redirect("pipelines:detail", name=name)
    messages.success(request, f"Run {run.number} started.")
    return redirect("pipelines:run", name=name, number=run.number)


def _run(name: str, number: int) -> PipelineRun:
    run = PipelineRun.objects.select_related("pipeline", "version", "requested_by")
    run = run.filter(pipeline__name=name, number=number).first()
    if run is None:
        raise Http404("no such run")
    return run


def run_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    run = _run(name, number)
    steps = list(run.steps.select_related("job"))
    rows = [{"name": s.name, "type": s.type, "status": s.status, "started_at": s.started_at,
             "finished_at": s.finished_at} for s in steps]  # fmt: skip
    gantt = charts.gantt_figure(rows, timezone.now())
    dag = charts.dag_figure(run.version.spec["steps"], {s.name: s.status for s in steps})
    return render(
        request,
        "pipelines/run.html",
        {
            "run": run, "steps": steps, "gantt": json.dumps(gantt) if gantt["data"] else None, "dag": json.dumps(dag),
            "params_json": json.dumps(run.params),
            "can_cancel": not run.is_finished and (run.requested_by_id == request.user.pk
                                                   or may_change(request.user, run.pipeline)),
            "can_rerun": run.status in ("failed", "cancelled"),
        },
    )  # fmt: skip


@require_POST
@role_required("editor")
def run_action(request: HttpRequest, name: str, number: int) -> HttpResponse:
    run = _run(name, number)
    action = request.POST.get("action")
    if action == "cancel":
        if run.requested_by_id != request.user.pk and not may_change(request.user, run.pipeline):
            messages.error(request, "Only who started the run, the pipeline's owner or an admin may cancel it.")
        else:
            engine.cancel_run(run, actor=request.user)
            messages.success(request, f"Run {run.number} cancelled.")
    elif action == "rerun":
        try:
            new = engine.rerun_from_failed(run, requested_by=request.user)
        except engine.RunError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Run {new.number} re-runs run {run.number} from its failed step.")
            return redirect("pipelines:run", name=name, number=new.number)
    return redirect("pipelines:run", name=name, number=number)


@require_POST
@role_required("editor")
def automation(request: HttpRequest, name: str) -> HttpResponse:
    """The owner's buttons on the pipeline page: add a schedule, pause, resume or delete one, delete a trigger."""
    pipeline = _pipeline(name)
    if not may_change(request.user, pipeline):
        messages.error(request, f"Only the owner of {pipeline.name!r} or an admin may change its schedules.")
        return redirect("pipelines:detail", name=name)
    action = request.POST.get("action", "")
    schedule_id, trigger_id = (request.POST.get(k, "") for k in ("schedule", "trigger"))
    schedule = pipeline.schedules.filter(pk=schedule_id).first() if schedule_id.isdigit() else None
    try:
        if action == "schedule":
            services.create_schedule(pipeline, request.POST.get("cron", ""), actor=request.user)
            messages.success(request, "Scheduled.")
        elif action in ("pause", "resume") and schedule is not None:
            services.set_schedule_paused(schedule, action == "pause", actor=request.user)
            messages.success(request, f"Schedule {'paused' if action == 'pause' else 'resumed'}.")
        elif action == "delete-schedule" and schedule is not None:
            schedule.delete()
            messages.success(request, "Schedule deleted.")
        elif (
            action == "delete-trigger" and trigger_id.isdigit() and pipeline.triggers.filter(pk=trigger_id).delete()[0]
        ):
            messages.success(request, "Trigger deleted.")
        else:
            messages.error(request, "Nothing to do.")
    except SpecError as exc:
        messages.error(request, str(exc))
    return redirect("pipelines:detail", name=name)

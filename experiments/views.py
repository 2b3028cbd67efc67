"""Tracking pages: experiments, an experiment's runs table, a run, and runs side by side.

Every page checks the per-experiment permission (experiments.permissions): an experiment or run the
user may not read answers 404, as the MLflow API does, so ids cannot be probed. Writes go through
experiments.services and need EDIT (runs) or MANAGE (experiments).
"""

from __future__ import annotations

import csv
import json
import mimetypes
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_POST

from experiments import artifacts, charts, lineage, permissions, queries, services
from experiments.forms import Column, ExperimentSearchForm, RunTableState
from experiments.mlflow_api.common import MlflowError
from experiments.mlflow_api.lookups import experiment_for, run_for
from experiments.models import (
    PERMISSION_RANK,
    Experiment,
    LatestMetric,
    LifecycleStage,
    LoggedModel,
    Metric,
    Param,
    Permission,
    Run,
    RunOutput,
    RunStatus,
    now_ms,
)
from experiments.search import SearchError, runs_queryset
from mlops_portal.views import safe_next

EXPERIMENTS_PER_PAGE = 25
RUNS_PER_PAGE = 50
CSV_CHUNK = 500
MAX_COMPARE_RUNS = 100
CHART_POINTS = 1000
MAX_CHART_POINTS = 10_000
TEXT_PREVIEW_BYTES = 256 * 1024
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
TEXT_SUFFIXES = {
    ".txt", ".log", ".json", ".yaml", ".yml", ".md", ".csv", ".tsv", ".py", ".cfg", ".ini", ".toml",
    ".xml", ".html", ".svg", ".sh", ".r", ".sql", ".ipynb", ".jsonl",
}  # fmt: skip
TEXT_NAMES = {"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "Dockerfile", "LICENSE"}
STATUS_CSS = {
    RunStatus.RUNNING: "running",
    RunStatus.SCHEDULED: "queued",
    RunStatus.FINISHED: "succeeded",
    RunStatus.FAILED: "failed",
    RunStatus.KILLED: "cancelled",
}
SOURCE_TAGS = [
    ("mlflow.source.name", "Source"),
    ("mlflow.source.type", "Source type"),
    ("mlflow.source.git.commit", "Git commit"),
    ("mlflow.source.git.branch", "Git branch"),
    ("mlflow.source.git.repoURL", "Git repository"),
    ("mlflow.project.entryPoint", "Entry point"),
]
# The cell prefixes a spreadsheet would run as a formula (OWASP's CSV injection list).
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# Formatting --------------------------------------------------------------------------------------


def ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def duration_ms(run: Run) -> int | None:
    if run.end_time is not None:
        return max(run.end_time - run.start_time, 0)
    if run.status == RunStatus.RUNNING:
        return max(now_ms() - run.start_time, 0)
    return None


def format_duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_number(value: float | None) -> str:
    if value is None:
        return ""
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "∞" if value > 0 else "−∞"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def status_css(status: str) -> str:
    return STATUS_CSS.get(status, "cancelled")


# Permissions -------------------------------------------------------------------------------------


def _experiment_or_404(user: Any, experiment_id: int, level: str = Permission.READ) -> Experiment:
    try:
        return experiment_for(user, experiment_id, level)
    except MlflowError as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise Http404(exc.message) from None
        raise PermissionDenied(exc.message) from None


def _run_or_404(user: Any, run_id: str, level: str = Permission.READ) -> Run:
    try:
        return run_for(user, run_id, level)
    except MlflowError as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise Http404(exc.message) from None
        raise PermissionDenied(exc.message) from None


def managed_experiment_ids(user: Any, experiments: list[Experiment]) -> set[int]:
    """Which of `experiments` the user may MANAGE, in one query at most."""
    manage = PERMISSION_RANK[Permission.MANAGE]
    return {pk for pk, level in permissions.levels_for(user, experiments).items() if level >= manage}


# Experiments list --------------------------------------------------------------------------------


def index(request: HttpRequest) -> HttpResponse:
    form = ExperimentSearchForm(request.GET)
    search, deleted = "", False
    if form.is_valid():
        search, deleted = form.cleaned_data["q"].strip(), form.cleaned_data["deleted"]
    page = Paginator(
        queries.experiment_list(request.user, search=search, deleted=deleted), EXPERIMENTS_PER_PAGE
    ).get_page(request.GET.get("page"))
    experiments = list(page.object_list)
    for experiment in experiments:
        times = [t for t in (experiment.last_update_time, experiment.last_run_start, experiment.last_run_end) if t]
        experiment.last_activity = ms_to_datetime(max(times)) if times else None
        experiment.created = ms_to_datetime(experiment.creation_time)
    visible = permissions.visible_experiments(request.user)
    any_runs = Run.objects.filter(experiment__in=visible).exists()
    return render(
        request,
        "experiments/index.html",
        {
            "form": form,
            "page": page,
            "experiments": experiments,
            "search": search,
            "deleted": deleted,
            "managed": managed_experiment_ids(request.user, experiments),
            "any_runs": any_runs,
            "only_default": not any_runs and not visible.exclude(pk=0).exists(),
            "site_url": settings.SITE_URL,
            "page_query": urlencode([(k, v) for k, v in (("q", search), ("deleted", "on" if deleted else "")) if v]),
        },
    )


@require_POST
def experiment_lifecycle(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request.user, experiment_id, Permission.MANAGE)
    action = request.POST.get("action")
    if action not in ("delete", "restore"):
        return HttpResponseBadRequest("action must be delete or restore")
    stage = LifecycleStage.DELETED if action == "delete" else LifecycleStage.ACTIVE
    try:
        services.set_experiment_lifecycle(experiment, stage, actor=request.user)
    except MlflowError as exc:
        messages.error(request, exc.message)
    else:
        verb = "Deleted" if action == "delete" else "Restored"
        messages.success(request, f"{verb} experiment “{experiment.name}” and its runs.")
    return redirect(safe_next(request, reverse("experiments:index")))


# One experiment: the runs table ------------------------------------------------------------------


@dataclass
class RunRow:
    run: Run
    started: datetime | None
    duration: str
    status_css: str
    cells: list[dict[str, Any]] = field(default_factory=list)


def _cells(values: queries.RunValues, columns: tuple[Column, ...]) -> list[dict[str, Any]]:
    cells = []
    for column in columns:
        if column.kind == "metrics":
            value = values.metrics.get(column.key)
            cells.append({"text": format_number(value), "title": "" if value is None else repr(value), "num": True})
        else:
            text = getattr(values, column.kind).get(column.key, "")
            cells.append({"text": text, "title": text, "num": False})
    return cells


def _run_rows(runs: list[Run], state: RunTableState) -> list[RunRow]:
    values = queries.run_values(
        [r.pk for r in runs],
        params=state.keys_of("params"),
        metrics=state.keys_of("metrics"),
        tags=state.keys_of("tags"),
    )
    return [
        RunRow(
            run=run,
            started=ms_to_datetime(run.start_time),
            duration=format_duration(duration_ms(run)),
            status_css=status_css(run.status),
            cells=_cells(values[run.pk], state.columns),
        )
        for run in runs
    ]


def _runs_queryset(user: Any, experiment: Experiment, state: RunTableState) -> QuerySet[Run]:
    return runs_queryset(user, [str(experiment.pk)], state.filter, state.order_by, state.view_type)


def _headers(state: RunTableState) -> list[dict[str, Any]]:
    """The table's sortable headers: label, the sort they set, and whether they are the current sort."""
    fixed = [("Run", "attributes.run_name"), ("Status", "attributes.status"), ("Started", "attributes.start_time")]
    headers = [{"label": label, "sort": sort, "num": False, "kind": ""} for label, sort in fixed]
    headers.append({"label": "Duration", "sort": "", "num": True, "kind": ""})
    headers.append({"label": "User", "sort": "attributes.user_id", "num": False, "kind": ""})
    headers += [
        {"label": c.key, "sort": c.token, "num": c.kind == "metrics", "kind": c.kind[:-1]} for c in state.columns
    ]
    for header in headers:
        header["active"] = header["sort"] == state.sort
        header["query"] = state.sort_query(header["sort"]) if header["sort"] else ""
    return headers


def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request.user, experiment_id)
    keys = queries.experiment_keys(experiment.pk)
    state = RunTableState.from_query(request.GET).with_defaults(keys)
    error, page, rows = "", None, []
    try:
        page = Paginator(_runs_queryset(request.user, experiment, state), RUNS_PER_PAGE).get_page(state.page)
        rows = _run_rows(list(page.object_list), state)
    except SearchError as exc:
        error = exc.message
    level = permissions.level_for(request.user, experiment)
    chosen = {c.token for c in state.columns}
    first_page = state.params(page="1")
    return render(
        request,
        "experiments/experiment.html",
        {
            "experiment": experiment,
            "description": experiment.tags.filter(key="mlflow.note.content").values_list("value", flat=True).first(),
            "state": state,
            "page": page,
            "rows": rows,
            "error": error,
            "headers": _headers(state),
            "key_groups": [
                (label, [{"token": f"{kind}.{k}", "key": k, "checked": f"{kind}.{k}" in chosen} for k in keys[kind]])
                for kind, label in (("metrics", "Metrics"), ("params", "Parameters"), ("tags", "Tags"))
            ],
            "can_edit": level >= PERMISSION_RANK[Permission.EDIT],
            "can_manage": level >= PERMISSION_RANK[Permission.MANAGE],
            "views": [
                {"value": v, "label": label, "query": state.query(view=v, page="1"), "active": state.view == v}
                for v, label in (("active", "Active"), ("deleted", "Deleted"), ("all", "All"))
            ],
            "filter_hidden": [(k, v) for k, v in first_page if k != "filter"],
            "columns_hidden": [(k, v) for k, v in first_page if k != "cols"],
            "prev_query": state.query(page=page.previous_page_number()) if page and page.has_previous() else None,
            "next_query": state.query(page=page.next_page_number()) if page and page.has_next() else None,
            "here": request.get_full_path(),
            "csv_query": state.query(page="1"),
            # An experiment that never had a run shows how to log one instead of an empty toolbar.
            "has_runs": bool(rows) or experiment.runs.exists(),
        },
    )


def _csv_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading quote. Numbers stay numbers: we
    write them ourselves, so they cannot hold a formula."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def runs_csv(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """Every run of the current filter and sort (not just one page), with the table's columns, streamed."""
    experiment = _experiment_or_404(request.user, experiment_id)
    state = RunTableState.from_query(request.GET).with_defaults(queries.experiment_keys(experiment.pk))
    try:
        run_ids = list(_runs_queryset(request.user, experiment, state).values_list("run_uuid", flat=True))
    except SearchError as exc:
        return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")

    def rows() -> Iterator[list[Any]]:
        yield ["run_id", "run_name", "status", "start_time", "end_time", "duration_s", "user"] + [
            c.token for c in state.columns
        ]
        for start in range(0, len(run_ids), CSV_CHUNK):
            chunk = run_ids[start : start + CSV_CHUNK]
            runs = Run.objects.in_bulk(chunk)
            values = queries.run_values(
                chunk, params=state.keys_of("params"), metrics=state.keys_of("metrics"), tags=state.keys_of("tags")
            )
            for run_id in chunk:
                run = runs.get(run_id)
                if run is None:  # deleted while we streamed
                    continue
                started, ended = ms_to_datetime(run.start_time), ms_to_datetime(run.end_time)
                took = duration_ms(run) if run.end_time is not None else None
                row: list[Any] = [
                    run.pk,
                    run.name,
                    run.status,
                    started.isoformat() if started else "",
                    ended.isoformat() if ended else "",
                    "" if took is None else took / 1000,
                    run.user_id,
                ]
                for column in state.columns:
                    if column.kind == "metrics":
                        value = values[run_id].metrics.get(column.key)
                        row.append("" if value is None else format_csv_number(value))
                    else:
                        row.append(getattr(values[run_id], column.kind).get(column.key, ""))
                yield [_csv_cell(cell) for cell in row]

    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, f"{experiment.name}-runs.csv".replace("/", "-"))
    return response


def format_csv_number(value: float) -> float | str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"  # text, so _csv_cell quotes the minus sign
    return value


@require_POST
def runs_action(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """The runs table's selection: compare the chosen runs, or delete or restore them (EDIT)."""
    experiment = _experiment_or_404(request.user, experiment_id)
    back = safe_next(request, reverse("experiments:experiment", args=[experiment.pk]))
    run_ids = list(dict.fromkeys(request.POST.getlist("runs")))[:MAX_COMPARE_RUNS]
    action = request.POST.get("action")
    if not run_ids:
        messages.info(request, "Select some runs first.")
        return redirect(back)
    if action == "compare":
        return redirect(f"{reverse('experiments:compare')}?{urlencode([('runs', r) for r in run_ids])}")
    if action not in ("delete", "restore"):
        return HttpResponseBadRequest("action must be compare, delete or restore")
    if not permissions.can(request.user, experiment, Permission.EDIT):
        raise PermissionDenied("deleting and restoring runs needs EDIT on the experiment")
    stage = LifecycleStage.DELETED if action == "delete" else LifecycleStage.ACTIVE
    runs = list(Run.objects.filter(experiment=experiment, pk__in=run_ids))
    for run in runs:
        services.set_run_lifecycle(run, stage, actor=request.user)
    verb = "Deleted" if action == "delete" else "Restored"
    messages.success(request, f"{verb} {len(runs)} run{'' if len(runs) == 1 else 's'}.")
    return redirect(back)


# One run -----------------------------------------------------------------------------------------


def _artifact_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    """The artifact browser: the listed directory (?dir=) and the previewed file (?file=)."""
    root = artifacts.relative_of_uri(run.artifact_uri)
    context: dict[str, Any] = {"dir": "", "entries": [], "error": "", "preview": None, "crumbs": []}
    try:
        directory = request.GET.get("dir", "").strip("/")
        if directory:
            directory = artifacts.safe_relative_path(directory)
        context["dir"] = directory
        context["crumbs"] = _crumbs(directory)
        context["parent"] = posixpath.dirname(directory)
        entries = artifacts.list_dir(artifacts.join(root, directory))
        context["entries"] = [
            {**e, "full": artifacts.join(directory, e["path"]), "is_image": _suffix(e["path"]) in IMAGE_TYPES}
            for e in entries
        ]
        chosen = request.GET.get("file", "")
        if chosen:
            context["preview"] = _preview(run, root, artifacts.safe_relative_path(chosen))
    except MlflowError as exc:
        context["error"] = exc.message
    except OSError:
        context["error"] = "The artifact store could not be read."
    return context


def _crumbs(directory: str) -> list[tuple[str, str]]:
    parts = directory.split("/") if directory else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _suffix(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def _preview(run: Run, root: str, path: str) -> dict[str, Any]:
    name = posixpath.basename(path)
    raw_url = reverse("experiments:artifact", args=[run.run_uuid]) + "?" + urlencode({"path": path})
    preview: dict[str, Any] = {"path": path, "name": name, "download": raw_url, "kind": "binary", "text": ""}
    if _suffix(path) in IMAGE_TYPES:
        preview["kind"] = "image"
        preview["src"] = raw_url + "&inline=1"
        return preview
    if _suffix(path) in TEXT_SUFFIXES or name in TEXT_NAMES or not _suffix(path):
        with artifacts.open_file(artifacts.join(root, path)) as handle:
            data = handle.read(TEXT_PREVIEW_BYTES + 1)
        if b"\x00" not in data[:8192]:
            preview["kind"] = "text"
            preview["truncated"] = len(data) > TEXT_PREVIEW_BYTES
            preview["text"] = data[:TEXT_PREVIEW_BYTES].decode("utf-8", errors="replace")
    return preview


def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run_or_404(request.user, run_id)
    experiment = run.experiment
    tags = list(run.tags.order_by("key"))
    tag_map = {t.key: t.value for t in tags}
    metrics = list(run.latest_metrics.order_by("key"))
    readable = permissions.visible_experiments(request.user)
    outputs = list(RunOutput.objects.filter(run=run, model__experiment__in=readable).select_related("model"))
    models = {o.model_id: o.model for o in outputs}
    for model in LoggedModel.objects.filter(source_run=run, experiment__in=readable).exclude(pk__in=list(models)):
        models[model.pk] = model
    parent_id = tag_map.get("mlflow.parentRunId", "")
    level = permissions.level_for(request.user, experiment)
    inputs = list(run.inputs.order_by("name"))
    linked = lineage.versions_for_inputs(inputs)
    for item in inputs:
        item.dataset_versions = linked.get(item.pk, [])  # type: ignore[attr-defined]
    return render(
        request,
        "experiments/run.html",
        {
            "run": run,
            "experiment": experiment,
            "status_css": status_css(run.status),
            "started": ms_to_datetime(run.start_time),
            "ended": ms_to_datetime(run.end_time),
            "duration": format_duration(duration_ms(run)),
            "params": list(run.params.order_by("key")),
            "metrics": [
                {
                    "key": m.key,
                    "value": format_number(float("nan") if m.is_nan else m.value),
                    "step": m.step,
                    "chart_url": reverse("experiments:metric-data", args=[run.pk, m.key]),
                }
                for m in metrics
            ],
            "user_tags": [t for t in tags if not t.key.startswith("mlflow.")],
            "system_tags": [t for t in tags if t.key.startswith("mlflow.") and t.key != "mlflow.note.content"],
            "description": tag_map.get("mlflow.note.content", ""),
            "sources": [(label, tag_map[key]) for key, label in SOURCE_TAGS if tag_map.get(key)],
            "parent": Run.objects.filter(pk=parent_id, experiment__in=readable).only("run_uuid", "name").first()
            if parent_id
            else None,
            "children": list(
                Run.objects.filter(tags__key="mlflow.parentRunId", tags__value=run.pk, experiment=experiment).only(
                    "run_uuid", "name", "status"
                )[:50]
            ),
            "inputs": inputs,
            "models": list(models.values()),
            "output_steps": {o.model_id: o.step for o in outputs},
            "artifacts": _artifact_context(request, run),
            "can_edit": level >= PERMISSION_RANK[Permission.EDIT],
            "live": not run.is_finished and run.lifecycle_stage == LifecycleStage.ACTIVE,
        },
    )


def run_status(request: HttpRequest, run_id: str) -> JsonResponse:
    """What a live run page polls: status, duration and latest metrics; it stops once `finished`."""
    run = _run_or_404(request.user, run_id)
    latest = LatestMetric.objects.filter(run=run).order_by("key").values_list("key", "value", "is_nan", "step")
    return JsonResponse(
        {
            "run_id": run.pk,
            "status": run.status,
            "status_css": status_css(run.status),
            "finished": run.is_finished or run.lifecycle_stage != LifecycleStage.ACTIVE,
            "duration": format_duration(duration_ms(run)),
            "metrics": [
                {"key": key, "value": format_number(float("nan") if is_nan else value), "step": step}
                for key, value, is_nan, step in latest
            ],
        }
    )


def metric_data(request: HttpRequest, run_id: str, key: str) -> JsonResponse:
    """One metric's whole history, downsampled on the server to `points` (LTTB), with its figure."""
    run = _run_or_404(request.user, run_id)
    try:
        points = min(max(int(request.GET.get("points", CHART_POINTS)), 10), MAX_CHART_POINTS)
    except ValueError:
        points = CHART_POINTS
    x_axis = "timestamp" if request.GET.get("x") == "time" else "step"
    series = queries.downsampled_series(run.pk, key, x=x_axis, points=points)
    if series is None:
        raise Http404(f"Run {run.pk} has no metric {key!r}")
    xs = series.xs
    ys_json = [charts.finite_or_none(y) for y in series.ys]
    if x_axis == "timestamp":
        figure = charts.metric_history_figure(key, xs, ys_json, x_title="time", x_type="date")
    else:
        figure = charts.metric_history_figure(key, xs, ys_json)
    return JsonResponse(
        {
            "run_id": run.pk,
            "key": key,
            "x_axis": x_axis,
            "total_points": series.total_points,
            "returned_points": len(xs),
            "downsampled": len(xs) < series.total_points,
            "non_finite_points": series.non_finite_points,
            "x": xs,
            "y": ys_json,
            "figure": figure,
        }
    )


def artifact_file(request: HttpRequest, run_id: str) -> HttpResponse:
    """An artifact's bytes. Only PNG, JPEG and GIF are ever shown inline (for the preview); anything
    else, HTML and SVG included, is a download, so an artifact cannot run script in the portal's origin."""
    run = _run_or_404(request.user, run_id)
    try:
        path = artifacts.safe_relative_path(request.GET.get("path", ""))
        handle = artifacts.open_file(artifacts.join(artifacts.relative_of_uri(run.artifact_uri), path))
    except MlflowError as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise Http404(exc.message) from None
        return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
    name = posixpath.basename(path)
    image_type = IMAGE_TYPES.get(_suffix(path))
    inline = bool(image_type) and request.GET.get("inline") == "1"
    content_type = image_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if not inline and not image_type:
        content_type = "application/octet-stream"
    response = FileResponse(handle, as_attachment=not inline, filename=name, content_type=content_type)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_POST
def run_lifecycle(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _run_or_404(request.user, run_id, Permission.EDIT)
    action = request.POST.get("action")
    if action not in ("delete", "restore"):
        return HttpResponseBadRequest("action must be delete or restore")
    services.set_run_lifecycle(
        run, LifecycleStage.DELETED if action == "delete" else LifecycleStage.ACTIVE, actor=request.user
    )
    messages.success(request, f"{'Deleted' if action == 'delete' else 'Restored'} run “{run}”.")
    return redirect("experiments:run", run_id=run.pk)


# Compare -----------------------------------------------------------------------------------------


def compare(request: HttpRequest) -> HttpResponse:
    """Runs side by side, across experiments: only those the user may read are shown."""
    wanted = list(dict.fromkeys(r for r in request.GET.getlist("runs") if r))[:MAX_COMPARE_RUNS]
    found = Run.objects.filter(
        pk__in=wanted, experiment__in=permissions.visible_experiments(request.user)
    ).select_related("experiment")
    by_id = {r.pk: r for r in found}
    runs = [by_id[r] for r in wanted if r in by_id]
    params: dict[str, dict[str, str]] = {r.pk: {} for r in runs}
    metrics: dict[str, dict[str, float]] = {r.pk: {} for r in runs}
    for run_id, key, value in Param.objects.filter(run__in=[r.pk for r in runs]).values_list("run_id", "key", "value"):
        params[run_id][key] = value
    for run_id, key, value, is_nan in LatestMetric.objects.filter(run__in=[r.pk for r in runs]).values_list(
        "run_id", "key", "value", "is_nan"
    ):
        metrics[run_id][key] = float("nan") if is_nan else value
    param_keys = sorted({k for p in params.values() for k in p})
    metric_keys = sorted({k for m in metrics.values() for k in m})

    def differs(values: list[Any]) -> bool:
        return len({repr(v) for v in values}) > 1

    param_rows = [
        {
            "key": k,
            "values": [params[r.pk].get(k) for r in runs],
            "differs": differs([params[r.pk].get(k) for r in runs]),
        }
        for k in param_keys
    ]
    metric_rows = [
        {
            "key": k,
            "values": [format_number(metrics[r.pk].get(k)) if k in metrics[r.pk] else None for r in runs],
            "differs": differs([metrics[r.pk].get(k) for r in runs]),
        }
        for k in metric_keys
    ]
    only_diff = request.GET.get("diff") == "1"
    metric = request.GET.get("metric") if request.GET.get("metric") in metric_keys else None
    if metric is None and metric_keys:
        # The metric with the longest history draws the most telling curves (a final test score
        # logged once does not); the first run's point counts decide, in one aggregate query.
        counts = Metric.objects.filter(run_id=runs[0].pk).values("key").annotate(n=Count("id")).order_by()
        metric = min(counts, key=lambda row: (-row["n"], row["key"]))["key"] if counts else metric_keys[0]
    x_param = request.GET.get("x") if request.GET.get("x") in param_keys else None
    varying = [row["key"] for row in param_rows if row["differs"]]
    x_param = x_param or (varying[0] if varying else (param_keys[0] if param_keys else None))
    y_metric = request.GET.get("y") if request.GET.get("y") in metric_keys else metric

    figures: dict[str, str] = {}
    if metric:
        series = []
        for index, run in enumerate(runs):
            history = queries.downsampled_series(run.pk, metric, points=CHART_POINTS)
            if history is not None:
                series.append({"name": str(run), "x": history.xs, "y": history.ys, "colour": charts.run_colour(index)})
        figures["overlay"] = json.dumps(charts.overlay_figure(metric, series))
    if runs and (param_keys or metric_keys):
        axes_params = (varying or param_keys)[:8]
        axes_metrics = [k for k in metric_keys if k != metric][:3] + ([metric] if metric else [])
        figures["parallel"] = json.dumps(
            charts.parallel_coordinates_figure(
                [{"name": str(r), "params": params[r.pk], "metrics": metrics[r.pk]} for r in runs],
                axes_params,
                axes_metrics,
            )
        )
    if x_param and y_metric:
        points = [
            {
                "name": str(r),
                "x": params[r.pk].get(x_param),
                "y": metrics[r.pk].get(y_metric),
                "colour": charts.run_colour(i),
            }
            for i, r in enumerate(runs)
        ]
        figures["scatter"] = json.dumps(charts.scatter_figure(points, x_param, y_metric))
    return render(
        request,
        "experiments/compare.html",
        {
            "runs": [
                {
                    "run": r,
                    "colour": charts.run_colour(i),
                    "status_css": status_css(r.status),
                    "started": ms_to_datetime(r.start_time),
                    "duration": format_duration(duration_ms(r)),
                }
                for i, r in enumerate(runs)
            ],
            "missing": len(wanted) - len(runs),
            "param_rows": [r for r in param_rows if r["differs"]] if only_diff else param_rows,
            "metric_rows": [r for r in metric_rows if r["differs"]] if only_diff else metric_rows,
            "only_diff": only_diff,
            "param_keys": param_keys,
            "metric_keys": metric_keys,
            "metric": metric,
            "x_param": x_param,
            "y_metric": y_metric,
            "figures": figures,
            "run_ids": [r.pk for r in runs],
        },
    )

"""Sweep pages: the list, the form that starts one, and a sweep's live page (trials in parallel coordinates,
the best trial with one-click registration, cancel)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from accounts.permissions import role_required
from experiments import charts
from experiments.api.sweeps import sweep_json, visible_sweeps
from experiments.models import Permission, SweepStrategy
from experiments.permissions import can
from experiments.training import sweeps
from experiments.training_views import form_choices, read_training_fields, timeout_of
from mlops_portal.api import error_text

EXAMPLE_SPACE = '{"learning_rate": [0.001, 0.01], "hidden_units": [[16], [64, 32]]}'


def sweep_index(request: HttpRequest) -> HttpResponse:
    page = Paginator(visible_sweeps(request.user), 50).get_page(request.GET.get("page"))
    rows = [{"sweep": s, "state": sweeps.sweep_state(s)} for s in page]
    return render(request, "experiments/sweeps.html", {"page": page, "rows": rows})


@role_required("editor")
def sweep_form(request: HttpRequest) -> HttpResponse:
    context = form_choices(request)
    values = {
        "params": "{}", "seed": "0", "trainer": next(iter(sorted(context["trainers"])), ""), "space": EXAMPLE_SPACE,
        "strategy": SweepStrategy.GRID, "max_concurrency": "2", "n_trials": "8",
    }  # fmt: skip
    if request.method == "POST":
        extra = ("name", "space", "strategy", "n_trials", "metric", "max_concurrency", "timeout_minutes")
        posted = read_training_fields(request, context["experiments"], extra)
        values = posted.values
        if posted.experiment is not None:
            try:
                space = json.loads(values["space"])
                numbers = {k: int(values[k]) if values[k].strip() else None for k in ("n_trials", "max_concurrency")}
            except ValueError as exc:
                messages.error(request, f"space must be a JSON object and the counts whole numbers ({exc})")
            else:
                try:
                    sweep = sweeps.create_sweep(
                        posted.experiment, dataset_version=posted.version, target=values["target"].strip(),
                        trainer=values["trainer"], space=space, strategy=values["strategy"],
                        n_trials=numbers["n_trials"] if values["strategy"] == SweepStrategy.RANDOM else None,
                        metric=values["metric"], base_params=posted.params,
                        max_concurrency=numbers["max_concurrency"] or 2, seed=posted.seed, name=values["name"],
                        timeout_seconds=timeout_of(values["timeout_minutes"]), requested_by=request.user,
                    )  # fmt: skip
                except ValidationError as exc:
                    messages.error(request, error_text(exc.detail))
                else:
                    messages.success(request, f"Sweep {sweep.name!r} started.")
                    return redirect("experiments:sweep", sweep_id=sweep.pk)
    metrics = [(m, task, goal) for task, found in sweeps.METRICS.items() for m, goal in found.items()]
    return render(
        request,
        "experiments/sweep_new.html",
        {
            **context,
            "values": values,
            "metrics": metrics,
            "strategies": SweepStrategy.choices,
            "params_label": "Parameters every trial shares (JSON; empty for the defaults)",
        },
    )


def sweep_detail(request: HttpRequest, sweep_id: int) -> HttpResponse:
    sweep = visible_sweeps(request.user).filter(pk=sweep_id).first()
    if sweep is None:
        raise Http404("no such sweep")
    data = sweep_json(sweep, with_trials=True)
    rows, best = data["trials"], data["best"]
    keys = list(sweep.space)
    drawn = [
        {"name": f"#{r['number']}", "params": {k: _axis_value(r["params"][k]) for k in keys},
         "metrics": {sweep.metric: r["score"]}}
        for r in rows
    ]  # fmt: skip
    figure = charts.parallel_coordinates_figure(drawn, keys, [sweep.metric])
    state = sweeps.sweep_state(sweep)
    return render(
        request,
        "experiments/sweep.html",
        {
            "sweep": sweep, "state": state, "rows": rows, "keys": keys,
            "best": best,
            "figure": json.dumps(figure) if figure["data"] else None, "skipped": figure["layout"]["meta"]["skipped"],
            "percent": int(100 * sweep.n_done / sweep.n_trials) if sweep.n_trials else 100,
            "can_edit": can(request.user, sweep.experiment, Permission.EDIT), "live": state == "running",
        },
    )  # fmt: skip


def _axis_value(value: Any) -> Any:
    """A list parameter (hidden units) is one category on its axis."""
    return json.dumps(value) if isinstance(value, list | dict) else value


@require_POST
@role_required("editor")
def sweep_cancel(request: HttpRequest, sweep_id: int) -> HttpResponse:
    sweep = visible_sweeps(request.user).filter(pk=sweep_id).first()
    if sweep is None:
        raise Http404("no such sweep")
    if not can(request.user, sweep.experiment, Permission.EDIT):
        messages.error(request, f"You need EDIT on the experiment {sweep.experiment.name!r} to cancel this sweep.")
    else:
        sweeps.cancel_sweep(sweep, actor=request.user)
        messages.success(request, "Sweep cancelled: no more trials start, and running ones stop at their next batch.")
    return redirect("experiments:sweep", sweep_id=sweep.pk)

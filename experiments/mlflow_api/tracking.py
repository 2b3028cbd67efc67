"""MLflow REST API 2.0: experiments, runs, params, metrics, tags, inputs and outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from experiments import permissions, services
from experiments.entities import experiment_json, metric_json, run_json, runs_json
from experiments.mlflow_api.common import (
    encode_float,
    endpoint,
    invalid,
    key_value_pairs,
    not_found,
    optional_str,
    parse_float,
    parse_int,
    require_str,
)
from experiments.mlflow_api.lookups import RunGuard, experiment_for, run_for
from experiments.models import Experiment, LifecycleStage, LoggedModel, Metric, Permission, Run, RunOutput
from experiments.services import MetricPoint
from mlops_portal import rawsql

MAX_HISTORY_ALL = 10_000_000  # one response's ceiling; MLflow itself has none
MAX_RESULTS_PER_RUN = 2_500  # MLflow's cap for get-history-bulk-interval


def _view_type(data: dict[str, Any], key: str) -> str:
    """ACTIVE_ONLY, DELETED_ONLY or ALL; protobuf's JSON mapping also allows the enum's numbers."""
    value = data.get(key)
    if value is None or value == "":
        return "ACTIVE_ONLY"
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value)
    raise invalid(f"Invalid value {value!r} for parameter '{key}' supplied")


# Experiments -------------------------------------------------------------------------------------


@endpoint("POST")
def create_experiment(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    from accounts.services import has_role

    if not has_role(request.user, "editor"):
        from experiments.mlflow_api.common import MlflowError

        raise MlflowError("Permission denied: creating experiments needs the editor role.", "PERMISSION_DENIED")
    experiment = services.create_experiment(
        require_str(data, "name"),
        owner=request.user,
        tags=key_value_pairs(data, "tags"),
        artifact_location=optional_str(data, "artifact_location"),
    )
    return {"experiment_id": str(experiment.pk)}


@endpoint("GET")
def get_experiment(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id"))
    return {"experiment": experiment_json(experiment)}


@endpoint("GET")
def get_experiment_by_name(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    name = require_str(data, "experiment_name")
    if name == services.DEFAULT_EXPERIMENT_NAME:
        services.ensure_default_experiment()
    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None or not permissions.can(request.user, experiment, Permission.READ):
        raise not_found(f"Could not find experiment with name '{name}'")
    return {"experiment": experiment_json(experiment)}


@endpoint("POST", "GET")
def search_experiments(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    from experiments.search import search_experiments as run_search

    services.ensure_default_experiment()
    experiments, token = run_search(
        request.user,
        filter_string=optional_str(data, "filter") or "",
        order_by=data.get("order_by") or [],
        max_results=parse_int(data.get("max_results"), "max_results", 1000),
        page_token=optional_str(data, "page_token"),
        view_type=_view_type(data, "view_type"),
    )
    result: dict[str, Any] = {"experiments": [experiment_json(e) for e in experiments]}
    if token:
        result["next_page_token"] = token
    return result


@endpoint("POST")
def update_experiment(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id"), Permission.EDIT)
    new_name = optional_str(data, "new_name")
    if new_name:
        services.rename_experiment(experiment, new_name, actor=request.user)
    return {}


@endpoint("POST")
def delete_experiment(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id"), Permission.MANAGE)
    services.set_experiment_lifecycle(experiment, LifecycleStage.DELETED, actor=request.user)
    return {}


@endpoint("POST")
def restore_experiment(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id"), Permission.MANAGE)
    services.set_experiment_lifecycle(experiment, LifecycleStage.ACTIVE, actor=request.user)
    return {}


@endpoint("POST")
def set_experiment_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id"), Permission.EDIT)
    services.set_experiment_tag(experiment, require_str(data, "key"), data.get("value"))
    return {}


@endpoint("POST")
def delete_experiment_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id"), Permission.EDIT)
    services.delete_experiment_tag(experiment, require_str(data, "key"))
    return {}


# Runs --------------------------------------------------------------------------------------------


@endpoint("POST")
def create_run(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, data.get("experiment_id") or "0", Permission.EDIT)
    run = services.create_run(
        experiment,
        user_id=optional_str(data, "user_id") or request.user.get_username(),
        start_time=parse_int(data.get("start_time"), "start_time", 0) or None,
        run_name=optional_str(data, "run_name"),
        tags=key_value_pairs(data, "tags"),
    )
    # A new run has only the tags it was created with: no need to read it back.
    return {"run": run_json(run, fresh_tags=run.initial_tags)}


@endpoint("GET")
def get_run(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id") or data.get("run_uuid"), prefetch=True)
    return {"run": run_json(run)}


@endpoint("POST")
def update_run(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id") or data.get("run_uuid"), Permission.EDIT)
    end_time = data.get("end_time")
    services.update_run(
        run,
        status=optional_str(data, "status"),
        end_time=parse_int(end_time, "end_time") if end_time not in (None, "") else None,
        run_name=optional_str(data, "run_name"),
    )
    from experiments.entities import run_info_json

    return {"run_info": run_info_json(run)}


@endpoint("POST")
def delete_run(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id"), Permission.EDIT)
    services.set_run_lifecycle(run, LifecycleStage.DELETED, actor=request.user)
    return {}


@endpoint("POST")
def restore_run(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id"), Permission.EDIT)
    services.set_run_lifecycle(run, LifecycleStage.ACTIVE, actor=request.user)
    return {}


def _int64(value: Any) -> int | None:
    """An int64 in the shapes clients send (a JSON number, or protobuf JSON's string of digits), or
    None for anything else, which the checked path then explains."""
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else None
    if type(value) is str and value.isascii() and value.isdigit():
        number = int(value)
        return number if number < 2**63 else None
    return None


def _metric_point(raw: Any, path: Callable[[], str]) -> MetricPoint:
    """A metric from the request. A batch holds up to 1000, so well-formed points take a short path
    and only a malformed one pays for the checks that name what is wrong (`path()` names the point)."""
    if type(raw) is dict:
        value = raw.get("value")
        timestamp = _int64(raw.get("timestamp"))
        step_raw = raw.get("step")
        step = 0 if step_raw is None or step_raw == "" else _int64(step_raw)
        if (
            (type(value) is float or type(value) is int)
            and timestamp is not None
            and timestamp >= 0
            and step is not None
        ):
            return MetricPoint(raw.get("key"), float(value), timestamp, step)  # key: checked by services
    return _checked_metric_point(raw, path())


def _checked_metric_point(raw: Any, path: str) -> MetricPoint:
    if not isinstance(raw, dict):
        raise invalid(f"Invalid value for parameter '{path}' supplied: must be an object")
    prefix = path + "." if path else ""
    key = raw.get("key")  # validated by services.log_metrics
    value = raw.get("value")
    if value is None:
        raise invalid(f"Missing value for required parameter '{prefix}value'.")
    timestamp = parse_int(raw.get("timestamp"), f"{prefix}timestamp")
    if timestamp < 0:
        raise invalid(
            f"Invalid value {timestamp} for parameter '{prefix}timestamp' supplied: "
            "Timestamp must be a nonnegative long (64-bit integer)"
        )
    return MetricPoint(
        key=key,
        value=parse_float(value, f"{prefix}value"),
        timestamp=timestamp,
        step=parse_int(raw.get("step"), "step", 0),
    )


def write_metric(user: Any, data: dict[str, Any]) -> None:
    """log-metric's work, for the view and for the WSGI lane (experiments/mlflow_api/lane.py): the
    lookup, the permission and the write in one statement (see RunGuard)."""
    guard = RunGuard(user, data.get("run_id") or data.get("run_uuid"), Permission.EDIT)
    services.log_metrics_guarded(guard, [_metric_point(data, lambda: "")])


def write_param(user: Any, data: dict[str, Any]) -> None:
    """log-parameter's work, for the view and for the WSGI lane, in one statement (see RunGuard)."""
    guard = RunGuard(user, data.get("run_id") or data.get("run_uuid"), Permission.EDIT)
    services.log_params_guarded(guard, [(data.get("key"), data.get("value"))])


@endpoint("POST", idempotent=True)  # an identical point is stored once
def log_metric(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    write_metric(request.user, data)
    return {}


@endpoint("POST", idempotent=True)  # the same value again is accepted
def log_param(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    write_param(request.user, data)
    return {}


@endpoint("POST")
def set_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id") or data.get("run_uuid"), Permission.EDIT)
    services.set_tags(run, [(data.get("key"), data.get("value"))])
    return {}


@endpoint("POST")
def delete_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id"), Permission.EDIT)
    services.delete_tag(run, require_str(data, "key"))
    return {}


@endpoint("POST")
def log_batch(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id"), Permission.EDIT)
    metrics = data.get("metrics") or []
    params = data.get("params") or []
    tags = data.get("tags") or []
    if not all(isinstance(x, list) for x in (metrics, params, tags)):
        raise invalid("metrics, params and tags must be lists")
    services.validate_batch_limits(len(metrics), len(params), len(tags))
    points = [_metric_point(m, lambda i=i: f"metrics[{i}]") for i, m in enumerate(metrics)]
    services.log_batch(
        run,
        metrics=points,
        params=[(p.get("key"), p.get("value")) if isinstance(p, dict) else (None, None) for p in params],
        tags=key_value_pairs(data, "tags"),
    )
    return {}


@endpoint("POST")
def log_inputs(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id"), Permission.EDIT)
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list):
        raise invalid("Invalid value for parameter 'datasets' supplied: must be a list")
    models = data.get("models") or []
    if not isinstance(models, list):
        raise invalid("Invalid value for parameter 'models' supplied: must be a list")
    with transaction.atomic():
        services.log_inputs(run, datasets)
        for item in models:
            # A model input must exist and be readable; the portal records no model-input lineage yet.
            _readable_model(request.user, item)
    return {}


def _readable_model(user: Any, item: Any) -> LoggedModel:
    if not isinstance(item, dict) or not item.get("model_id") or not isinstance(item["model_id"], str):
        raise invalid("Missing value for required parameter 'models.model_id'.")
    model = LoggedModel.objects.select_related("experiment").filter(pk=item["model_id"]).first()
    if model is None or not permissions.can(user, model.experiment, Permission.READ):
        raise not_found(f"Logged model with ID '{item['model_id']}' not found.")
    return model


def _link_output(user: Any, run: Run, item: Any) -> None:
    model = _readable_model(user, item)
    RunOutput.objects.get_or_create(run=run, model=model, defaults={"step": parse_int(item.get("step"), "step", 0)})


@endpoint("POST")
def log_outputs(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id"), Permission.EDIT)
    models = data.get("models") or []
    if not isinstance(models, list):
        raise invalid("Invalid value for parameter 'models' supplied: must be a list")
    with transaction.atomic():
        for item in models:
            _link_output(request.user, run, item)
    return {}


@endpoint("POST")
def search_runs(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    from experiments.search import search_runs as run_search

    experiment_ids = data.get("experiment_ids") or []
    if not isinstance(experiment_ids, list):
        experiment_ids = [experiment_ids]
    order_by = data.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    runs, token = run_search(
        request.user,
        experiment_ids=[str(e) for e in experiment_ids],
        filter_string=optional_str(data, "filter") or "",
        order_by=order_by,
        max_results=parse_int(data.get("max_results"), "max_results", 1000),
        page_token=optional_str(data, "page_token"),
        view_type=_view_type(data, "run_view_type"),
    )
    result: dict[str, Any] = {"runs": runs_json(runs)}
    if token:
        result["next_page_token"] = token
    return result


# Metric history ----------------------------------------------------------------------------------


@endpoint("GET")
def get_metric_history(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    """A metric's points ordered by step and timestamp: all of them, as MLflow answers when no
    `max_results` is given, or pages of `max_results` with `page_token`."""
    import base64
    import json

    run = run_for(request.user, data.get("run_id") or data.get("run_uuid"))
    key = require_str(data, "metric_key")
    limit = data.get("max_results")
    max_results = MAX_HISTORY_ALL if limit in (None, "") else parse_int(limit, "max_results")
    if not 1 <= max_results <= MAX_HISTORY_ALL:
        raise invalid(
            f"Invalid value {max_results} for parameter 'max_results' supplied: must be 1 to {MAX_HISTORY_ALL}"
        )
    token = optional_str(data, "page_token")
    after_sql, after = "", []
    if token:
        try:
            last = json.loads(base64.urlsafe_b64decode(token.encode()))
            step, ts, last_id = int(last["step"]), int(last["timestamp"]), int(last["id"])
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            raise invalid(f"Invalid page token: {token!r}") from None
        if not all(-(2**63) <= v < 2**63 for v in (step, ts, last_id)):
            raise invalid(f"Invalid page token: {token!r}")
        after_sql = " AND (step, timestamp, id) > (%s, %s, %s)"
        after = [step, ts, last_id]
    # Tuples in one fetch, not model instances in chunks: a history can hold millions of points.
    with rawsql.prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT value, is_nan, timestamp, step, id FROM {Metric._meta.db_table}"  # noqa: S608
            f" WHERE run_id = %s AND key = %s{after_sql} ORDER BY step, timestamp, id LIMIT %s",
            [run.pk, key, *after, max_results + 1],
        )
        rows = cursor.fetchall()
    result: dict[str, Any] = {
        "metrics": [
            {"key": key, "value": "NaN" if is_nan else encode_float(value), "timestamp": ts, "step": step}
            for value, is_nan, ts, step, _ in rows[:max_results]
        ]
    }
    if len(rows) > max_results:
        _, _, ts, step, last_id = rows[max_results - 1]
        result["next_page_token"] = base64.urlsafe_b64encode(
            json.dumps({"step": step, "timestamp": ts, "id": last_id}).encode()
        ).decode()
    return result


@endpoint("GET")
def get_metric_history_bulk_interval(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    """Up to `max_results` points per run between start_step and end_step, evenly spread over steps."""
    from experiments.queries import sampled_history

    run_ids = data.get("run_ids") or []
    if isinstance(run_ids, str):
        run_ids = [run_ids]
    if not run_ids:
        raise invalid("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > 100:
        raise invalid(
            f"GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received {len(run_ids)} run_ids."
        )
    key = require_str(data, "metric_key")
    max_results = parse_int(data.get("max_results"), "max_results", MAX_RESULTS_PER_RUN)
    if not 1 <= max_results <= MAX_RESULTS_PER_RUN:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}, got {max_results}")
    start = data.get("start_step")
    end = data.get("end_step")
    start_step = parse_int(start, "start_step") if start not in (None, "") else None
    end_step = parse_int(end, "end_step") if end not in (None, "") else None
    metrics = []
    for run_id in run_ids:
        run = run_for(request.user, run_id)
        for m in sampled_history(run.pk, key, max_results, start_step, end_step):
            metrics.append(metric_json(m, with_run=True))
    return {"metrics": metrics}

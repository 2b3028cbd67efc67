"""Model rows as the JSON objects of MLflow's REST API (protobuf's JSON mapping)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from experiments.mlflow_api.common import encode_float
from experiments.models import Experiment, LatestMetric, LoggedModel, Metric, Param, Run, RunInput, RunOutput, RunTag
from mlops_portal import rawsql


def experiment_json(experiment: Experiment, tags: Iterable[Any] | None = None) -> dict[str, Any]:
    tag_rows = experiment.tags.all() if tags is None else tags
    return {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage,
        "last_update_time": experiment.last_update_time,
        "creation_time": experiment.creation_time,
        "tags": [{"key": t.key, "value": t.value} for t in tag_rows],
    }


def metric_json(metric: Metric | LatestMetric, with_run: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": metric.key,
        "value": "NaN" if metric.is_nan else encode_float(metric.value),
        "timestamp": metric.timestamp,
        "step": metric.step,
    }
    if with_run:
        data["run_id"] = metric.run_id
    return data


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.run_uuid,
        "run_uuid": run.run_uuid,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user_id,
        "status": run.status,
        "start_time": run.start_time,
        "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run_json(run: Run, *, fresh_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """The full run. Expects params, tags, latest_metrics, inputs and outputs prefetched for lists.

    `fresh_tags`: the run was just created with these tags and nothing else, so nothing is read.
    """
    if fresh_tags is not None:
        return {
            "info": run_info_json(run),
            "data": {"metrics": [], "params": [], "tags": [{"key": k, "value": v} for k, v in fresh_tags.items()]},
            "inputs": {"dataset_inputs": [], "model_inputs": []},
            "outputs": {"model_outputs": []},
        }
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [metric_json(m) for m in run.latest_metrics.all()],
            "params": [{"key": p.key, "value": p.value} for p in run.params.all()],
            "tags": [{"key": t.key, "value": t.value} for t in run.tags.all()],
        },
        "inputs": {
            "dataset_inputs": [input_json(i) for i in run.inputs.all()],
            "model_inputs": [],
        },
        "outputs": {"model_outputs": [{"model_id": o.model_id, "step": o.step} for o in run.outputs.all()]},
    }


RUN_PREFETCH = ("params", "tags", "latest_metrics", "inputs", "outputs")


def runs_json(runs: list[Run]) -> list[dict[str, Any]]:
    """`run_json` for a page of runs, reading their params, tags and latest metrics as plain rows
    (two queries) rather than prefetching model instances: for a page of 100 runs, building those
    instances cost several times the queries."""
    if not runs:
        return []
    ids = [r.pk for r in runs]
    data: dict[str, dict[str, list[Any]]] = {i: {"metrics": [], "params": [], "tags": []} for i in ids}
    with rawsql.prepared_cursor() as cursor:
        where, params = rawsql.in_list("run_id", ids)
        cursor.execute(
            f"SELECT 0, run_id, key, value, id FROM {Param._meta.db_table} WHERE {where}"  # noqa: S608
            f" UNION ALL SELECT 1, run_id, key, value, id FROM {RunTag._meta.db_table} WHERE {where}"
            " ORDER BY 1, 5",
            params + params,
        )
        for kind, run_id, key, value, _ in cursor.fetchall():
            data[run_id]["params" if kind == 0 else "tags"].append({"key": key, "value": value})
        cursor.execute(
            f"SELECT run_id, key, value, is_nan, timestamp, step FROM {LatestMetric._meta.db_table}"  # noqa: S608
            f" WHERE {where} ORDER BY id",
            params,
        )
        for run_id, key, value, is_nan, timestamp, step in cursor.fetchall():
            data[run_id]["metrics"].append(
                {"key": key, "value": "NaN" if is_nan else encode_float(value), "timestamp": timestamp, "step": step}
            )
        inputs: dict[str, list[Any]] = {i: [] for i in ids}
        cursor.execute(
            f"SELECT {rawsql.select_list(RunInput, 'i')} FROM {RunInput._meta.db_table} i"  # noqa: S608
            f" WHERE {where.replace('run_id', 'i.run_id')} ORDER BY i.id",
            params,
        )
        for row in cursor.fetchall():
            run_input = rawsql.load(RunInput, row)
            inputs[run_input.run_id].append(run_input)
        outputs: dict[str, list[Any]] = {i: [] for i in ids}
        cursor.execute(
            f"SELECT run_id, model_id, step FROM {RunOutput._meta.db_table} WHERE {where} ORDER BY id",  # noqa: S608
            params,
        )
        for run_id, model_id, step in cursor.fetchall():
            outputs[run_id].append({"model_id": model_id, "step": step})
    return [
        {
            "info": run_info_json(run),
            "data": data[run.pk],
            "inputs": {"dataset_inputs": [input_json(i) for i in inputs[run.pk]], "model_inputs": []},
            "outputs": {"model_outputs": outputs[run.pk]},
        }
        for run in runs
    ]


def input_json(row: RunInput) -> dict[str, Any]:
    return {
        "tags": row.tags,
        "dataset": {
            "name": row.name,
            "digest": row.digest,
            "source_type": row.source_type,
            "source": row.source,
            **({"schema": row.schema} if row.schema else {}),
            **({"profile": row.profile} if row.profile else {}),
        },
    }


def logged_model_json(model: LoggedModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": model.creation_timestamp_ms,
        "last_updated_timestamp_ms": model.last_updated_timestamp_ms,
        "artifact_uri": model.artifact_location,
        "status": model.status,
        "tags": [{"key": t.key, "value": t.value} for t in model.tags.all()],
    }
    if model.creator_id:
        info["creator_id"] = str(model.creator_id)  # an int64 in the protobuf: never an empty string
    if model.model_type:
        info["model_type"] = model.model_type
    if model.source_run_id:
        info["source_run_id"] = model.source_run_id
    if model.status_message:
        info["status_message"] = model.status_message
    return {
        "info": info,
        "data": {"params": [{"key": p.key, "value": p.value} for p in model.params.all()], "metrics": []},
    }

"""Model rows as the JSON objects of MLflow's REST API (protobuf's JSON mapping)."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
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
    """`run_json` for a page of runs, reading their params, tags, latest metrics and outputs as plain
    rows rather than prefetching model instances (for a page of 100 runs, building those instances
    cost several times the queries), all in one round trip: one query of five parts, whose last says
    which runs have dataset inputs, which a second query then reads (none is made when no run has
    any, as in most searches)."""
    if not runs:
        return []
    ids = [r.pk for r in runs]
    data: dict[str, dict[str, list[Any]]] = {i: {"metrics": [], "params": [], "tags": []} for i in ids}
    outputs: dict[str, list[Any]] = {i: [] for i in ids}
    inputs: dict[str, list[Any]] = {i: [] for i in ids}
    with rawsql.prepared_cursor() as cursor:
        where, params = rawsql.in_list("run_id", ids)
        cursor.execute(_DETAILS_SQL.format(where=where), params * 5)
        rows = cursor.fetchall()
        rows.sort(key=itemgetter(0, 8))  # by kind, then id: here, not in the database (0.5 ms less a page)
        with_inputs = False
        for kind, run_id, key, text, number, is_nan, timestamp, step, _ in rows:
            if kind == 0:
                data[run_id]["params"].append({"key": key, "value": text})
            elif kind == 1:
                data[run_id]["tags"].append({"key": key, "value": text})
            elif kind == 2:
                value = "NaN" if is_nan else encode_float(number)
                data[run_id]["metrics"].append({"key": key, "value": value, "timestamp": timestamp, "step": step})
            elif kind == 3:
                outputs[run_id].append({"model_id": key, "step": step})
            else:
                with_inputs = True
        if with_inputs:
            cursor.execute(
                f"SELECT {rawsql.select_list(RunInput, 'i')} FROM {RunInput._meta.db_table} i"  # noqa: S608
                f" WHERE {where.replace('run_id', 'i.run_id')} ORDER BY i.id",
                params,
            )
            for row in cursor.fetchall():
                run_input = rawsql.load(RunInput, row)
                inputs[run_input.run_id].append(run_input)
    return [
        {
            "info": run_info_json(run),
            "data": data[run.pk],
            "inputs": {"dataset_inputs": [input_json(i) for i in inputs[run.pk]], "model_inputs": []},
            "outputs": {"model_outputs": outputs[run.pk]},
        }
        for run in runs
    ]


# The parts of runs_json's query, by kind: params, tags, latest metrics, outputs (the model id in the
# key column), and one row per dataset input (only that there is one), unordered (runs_json sorts
# them); the first part's casts give PostgreSQL the columns' types.
_DETAILS_SQL = (
    "SELECT 0, run_id, key, value, CAST(NULL AS double precision), CAST(NULL AS boolean), CAST(NULL AS bigint),"  # noqa: S608
    f" CAST(NULL AS bigint), id FROM {Param._meta.db_table} WHERE {{where}}"
    f" UNION ALL SELECT 1, run_id, key, value, NULL, NULL, NULL, NULL, id FROM {RunTag._meta.db_table}"
    " WHERE {where}"
    f" UNION ALL SELECT 2, run_id, key, NULL, value, is_nan, timestamp, step, id FROM {LatestMetric._meta.db_table}"
    " WHERE {where}"
    f" UNION ALL SELECT 3, run_id, model_id, NULL, NULL, NULL, NULL, step, id FROM {RunOutput._meta.db_table}"
    " WHERE {where}"
    f" UNION ALL SELECT 4, run_id, NULL, NULL, NULL, NULL, NULL, NULL, id FROM {RunInput._meta.db_table}"
    " WHERE {where}"
)


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

"""MLflow 3 logged models: `/api/2.0/mlflow/logged-models…`, as `mlflow`'s RestStore calls them.

POST logged-models                                   create (PENDING)
GET/PATCH/DELETE logged-models/<id>                  get (`?allow_deleted=true`), finalize, delete
POST logged-models/search                            search
PATCH logged-models/<id>/tags                        set tags (upsert)
DELETE logged-models/<id>/tags/<key>                 delete a tag
POST logged-models/<id>/params                       log params
GET logged-models/<id>/artifacts/directories         list files (`?artifact_directory_path=`)
GET logged-models/<id>/artifacts/files               download one (`?artifact_file_path=`, the UI uses it)

Reading needs READ on the model's experiment, everything else EDIT. A model in an experiment the
user may not read answers 404, like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from experiments import artifacts, logged_models
from experiments.entities import logged_model_json
from experiments.mlflow_api.artifacts import download_artifact, listing_under, mlflow_errors
from experiments.mlflow_api.common import (
    MlflowError,
    endpoint,
    invalid,
    key_value_pairs,
    not_found,
    optional_str,
    parse_int,
    require_str,
)
from experiments.mlflow_api.lookups import check, experiment_for, parse_experiment_id, run_for
from experiments.models import LifecycleStage, LoggedModel, Permission


def model_for(user: Any, model_id: str, level: str = Permission.READ, *, allow_deleted: bool = False) -> LoggedModel:
    model = LoggedModel.objects.select_related("experiment").filter(pk=model_id).first()
    if model is None or (model.lifecycle_stage == LifecycleStage.DELETED and not allow_deleted):
        raise not_found(f"Logged model with ID '{model_id}' not found.")
    check(user, model.experiment, level, missing=f"Logged model with ID '{model_id}' not found.")
    return model


def model_json(model: LoggedModel) -> dict[str, Any]:
    """The model as the API sends it; expects tags and params prefetched (see `fresh_json`)."""
    return logged_model_json(model)


def fresh_json(model_id: str) -> dict[str, Any]:
    return model_json(LoggedModel.objects.prefetch_related("tags", "params").get(pk=model_id))


@endpoint("POST")
def create_logged_model(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    experiment = experiment_for(request.user, require_str(data, "experiment_id"), Permission.EDIT)
    source_run_id = optional_str(data, "source_run_id")
    model = logged_models.create_logged_model(
        experiment,
        name=optional_str(data, "name"),
        model_type=optional_str(data, "model_type"),
        source_run=run_for(request.user, source_run_id) if source_run_id else None,
        params=key_value_pairs(data, "params"),
        tags=key_value_pairs(data, "tags"),
        creator=request.user,
    )
    return {"model": fresh_json(model.pk)}


@endpoint("GET", "PATCH", "DELETE")
def logged_model(request: HttpRequest, data: dict[str, Any], model_id: str) -> dict[str, Any]:
    """GET reads, PATCH finalizes (sets the status), DELETE deletes (soft; repeating it is fine)."""
    if request.method == "GET":
        allow_deleted = str(data.get("allow_deleted", "false")).lower() == "true"
        model = model_for(request.user, model_id, allow_deleted=allow_deleted)
        return {"model": fresh_json(model.pk)}
    if request.method == "PATCH":
        model = model_for(request.user, model_id, Permission.EDIT, allow_deleted=True)
        if data.get("status") in (None, ""):
            raise invalid("Missing value for required parameter 'status'.")
        logged_models.finalize_logged_model(model, data["status"])
        return {"model": fresh_json(model.pk)}
    model = model_for(request.user, model_id, Permission.EDIT, allow_deleted=True)
    logged_models.delete_logged_model(model, actor=request.user)
    return {}


@endpoint("POST")
def search_logged_models(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    raw_ids = data.get("experiment_ids")
    if raw_ids in (None, "", []):
        raise invalid("Missing value for required parameter 'experiment_ids'.")
    ids = [parse_experiment_id(e, "experiment_ids") for e in (raw_ids if isinstance(raw_ids, list) else [raw_ids])]
    order_by = data.get("order_by") or []
    datasets = data.get("datasets") or []
    if not isinstance(order_by, list) or not isinstance(datasets, list):
        raise invalid("'order_by' and 'datasets' must be lists")
    models, token = logged_models.search_logged_models(
        request.user,
        experiment_ids=ids,
        filter_string=optional_str(data, "filter") or "",
        order_by=order_by,
        max_results=parse_int(data.get("max_results"), "max_results", 0) or None,
        page_token=optional_str(data, "page_token"),
        datasets=datasets,
    )
    result: dict[str, Any] = {"models": [model_json(m) for m in models]}
    if token:
        result["next_page_token"] = token
    return result


@endpoint("PATCH")
def set_logged_model_tags(request: HttpRequest, data: dict[str, Any], model_id: str) -> dict[str, Any]:
    model = model_for(request.user, model_id, Permission.EDIT, allow_deleted=True)
    logged_models.set_logged_model_tags(model, key_value_pairs(data, "tags"))
    return {}


@endpoint("DELETE")
def delete_logged_model_tag(request: HttpRequest, data: dict[str, Any], model_id: str, tag_key: str) -> dict[str, Any]:
    model = model_for(request.user, model_id, Permission.EDIT, allow_deleted=True)
    logged_models.delete_logged_model_tag(model, tag_key)
    return {}


@endpoint("POST")
def log_logged_model_params(request: HttpRequest, data: dict[str, Any], model_id: str) -> dict[str, Any]:
    model = model_for(request.user, model_id, Permission.EDIT, allow_deleted=True)
    logged_models.log_logged_model_params(model, key_value_pairs(data, "params"))
    return {}


@endpoint("GET")
def list_logged_model_artifacts(request: HttpRequest, data: dict[str, Any], model_id: str) -> dict[str, Any]:
    model = model_for(request.user, model_id)
    root = artifacts.relative_of_uri(model.artifact_location)
    files = listing_under(root, optional_str(data, "artifact_directory_path"))
    result: dict[str, Any] = {"root_uri": model.artifact_location}
    if files:
        result["files"] = files
    return result


# Not `endpoint`: it passes only HttpResponse through, and a FileResponse is a StreamingHttpResponse.
@csrf_exempt
@mlflow_errors
def get_logged_model_artifact(request: HttpRequest, model_id: str) -> HttpResponse:
    if request.method != "GET":
        raise MlflowError(f"{request.method} is not allowed here; use GET", "BAD_REQUEST")
    file_path = request.GET.get("artifact_file_path")
    if not file_path:
        raise MlflowError('Request must include the "artifact_file_path" query parameter.', "BAD_REQUEST")
    model = model_for(request.user, model_id)
    root = artifacts.relative_of_uri(model.artifact_location)
    return download_artifact(request, artifacts.join(root, artifacts.safe_relative_path(file_path)))


get_logged_model_artifact.mlflow_methods = ("GET",)  # type: ignore[attr-defined]

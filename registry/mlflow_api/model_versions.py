"""MLflow Model Registry REST API 2.0: model versions.

POST   model-versions/create            register a version (EDIT on the model, READ on the source)
GET    model-versions/get               read (READ)
PATCH  model-versions/update            description (EDIT)
DELETE model-versions/delete            delete (MANAGE)
GET    model-versions/search            search the versions of models the caller may read
POST   model-versions/transition-stage  move to a stage (EDIT)
GET    model-versions/get-download-uri  the `mlflow-artifacts:/` URI of its files (READ)
POST/DELETE model-versions/set-tag, delete-tag   tags (EDIT)
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from experiments.mlflow_api.common import endpoint, invalid, key_value_pairs, optional_str
from experiments.models import Permission
from registry import permissions, search, services
from registry.entities import version_json, versions_json
from registry.lookups import registered_model_for, version_for


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"Invalid value {value!r} for parameter '{key}' supplied: must be a boolean")


@endpoint("POST")
def create_model_version(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"), Permission.EDIT)
    source = data.get("source")
    resolved = services.resolve_source(
        request.user,
        source,
        run_id=optional_str(data, "run_id") or None,
        model_id=optional_str(data, "model_id") or None,
    )
    version = services.create_model_version(
        model,
        resolved,
        source=source,
        creator=request.user,
        run_link=data.get("run_link"),
        description=optional_str(data, "description"),
        tags=key_value_pairs(data, "tags"),
    )
    return {"model_version": version_json(version)}


@endpoint("GET")
def get_model_version(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    return {"model_version": version_json(version_for(request.user, data.get("name"), data.get("version")))}


@endpoint("PATCH")
def update_model_version(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    version = version_for(request.user, data.get("name"), data.get("version"), Permission.EDIT)
    services.update_model_version(version, description=optional_str(data, "description"))
    return {"model_version": version_json(version)}


@endpoint("DELETE")
def delete_model_version(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    version = version_for(request.user, data.get("name"), data.get("version"), Permission.MANAGE)
    services.delete_model_version(version, actor=request.user)
    return {}


@endpoint("GET", "POST")
def search_model_versions(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    versions, token = search.search_model_versions(
        permissions.visible_models(request.user),
        filter_string=optional_str(data, "filter"),
        order_by=data.get("order_by"),
        max_results=data.get("max_results"),
        page_token=optional_str(data, "page_token"),
    )
    result: dict[str, Any] = {"model_versions": versions_json(versions)}
    if token:
        result["next_page_token"] = token
    return result


@endpoint("POST")
def transition_stage(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    version = version_for(request.user, data.get("name"), data.get("version"), Permission.EDIT)
    if data.get("stage") in (None, ""):
        raise invalid("Missing value for required parameter 'stage'.")
    services.transition_stage(
        version,
        data.get("stage"),
        archive_existing_versions=_bool(data, "archive_existing_versions"),
        actor=request.user,
    )
    return {"model_version": version_json(version)}


@endpoint("GET")
def get_download_uri(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    version = version_for(request.user, data.get("name"), data.get("version"))
    # Always the portal's own `mlflow-artifacts:/` URI (resolved when the version was registered), so
    # the client downloads through the artifact proxy and its permission check on the run's experiment.
    return {"artifact_uri": version.storage_location}


@endpoint("POST")
def set_model_version_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    version = version_for(request.user, data.get("name"), data.get("version"), Permission.EDIT)
    services.set_model_version_tag(version, data.get("key"), data.get("value"))
    return {}


@endpoint("DELETE")
def delete_model_version_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    version = version_for(request.user, data.get("name"), data.get("version"), Permission.EDIT)
    services.delete_model_version_tag(version, data.get("key"))
    return {}

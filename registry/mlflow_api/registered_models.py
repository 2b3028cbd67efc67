"""MLflow Model Registry REST API 2.0: registered models, their tags and aliases.

POST   registered-models/create                create (needs the editor role; the creator gets MANAGE)
GET    registered-models/get                   read (READ)
POST   registered-models/rename                rename (EDIT)
PATCH  registered-models/update                description (EDIT)
DELETE registered-models/delete                delete with its versions (MANAGE)
GET    registered-models/search                search the models the caller may read
GET/POST registered-models/get-latest-versions latest version per stage (READ)
POST/DELETE registered-models/set-tag, delete-tag   tags (EDIT)
POST/DELETE/GET registered-models/alias        set, delete (EDIT), get the version (READ)
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import Role
from accounts.services import has_role
from experiments.mlflow_api.common import MlflowError, endpoint, invalid, key_value_pairs, not_found, optional_str
from experiments.models import Permission
from registry import permissions, search, services
from registry.entities import registered_model_json, registered_models_json, version_json, versions_json
from registry.lookups import registered_model_for, version_for
from registry.models import ModelVersion, RegisteredModelAlias


@endpoint("POST")
def create_registered_model(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    if not has_role(request.user, Role.EDITOR):
        raise MlflowError("Permission denied: registering models needs the editor role.", "PERMISSION_DENIED")
    model = services.create_registered_model(
        data.get("name"),
        owner=request.user,
        description=optional_str(data, "description"),
        tags=key_value_pairs(data, "tags"),
    )
    return {"registered_model": registered_model_json(model)}


@endpoint("GET")
def get_registered_model(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    return {"registered_model": registered_model_json(registered_model_for(request.user, data.get("name")))}


@endpoint("POST")
def rename_registered_model(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"), Permission.EDIT)
    services.rename_registered_model(model, data.get("new_name"), actor=request.user)
    return {"registered_model": registered_model_json(model)}


@endpoint("PATCH")
def update_registered_model(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"), Permission.EDIT)
    services.update_registered_model(model, description=optional_str(data, "description"), actor=request.user)
    return {"registered_model": registered_model_json(model)}


@endpoint("DELETE")
def delete_registered_model(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"), Permission.MANAGE)
    services.delete_registered_model(model, actor=request.user)
    return {}


@endpoint("GET", "POST")
def search_registered_models(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    models, token = search.search_registered_models(
        permissions.visible_models(request.user),
        filter_string=optional_str(data, "filter"),
        order_by=data.get("order_by"),
        max_results=data.get("max_results"),
        page_token=optional_str(data, "page_token"),
    )
    result: dict[str, Any] = {"registered_models": registered_models_json(models)}
    if token:
        result["next_page_token"] = token
    return result


@endpoint("POST", "GET")
def get_latest_versions(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"))
    stages = data.get("stages") or []
    if isinstance(stages, str):
        stages = [stages]
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise invalid("Invalid value for parameter 'stages' supplied: must be a list of strings")
    versions = services.latest_versions(model, stages)
    for version in versions:
        version.model = model
    return {"model_versions": versions_json(versions)}


@endpoint("POST")
def set_registered_model_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"), Permission.EDIT)
    services.set_registered_model_tag(model, data.get("key"), data.get("value"))
    return {}


@endpoint("DELETE")
def delete_registered_model_tag(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    model = registered_model_for(request.user, data.get("name"), Permission.EDIT)
    services.delete_registered_model_tag(model, data.get("key"))
    return {}


@endpoint("POST", "DELETE", "GET")
def alias(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    """One path, three methods, as model_registry.proto declares them."""
    if request.method == "POST":
        version = version_for(request.user, data.get("name"), data.get("version"), Permission.EDIT)
        services.set_alias(version.model, data.get("alias"), version, actor=request.user)
        return {}
    if request.method == "DELETE":
        model = registered_model_for(request.user, data.get("name"), Permission.EDIT)
        services.delete_alias(model, data.get("alias"), actor=request.user)
        return {}
    model = registered_model_for(request.user, data.get("name"))
    name = services.validate_alias(data.get("alias"), for_write=False)
    if name.lower() == "latest":
        found = ModelVersion.objects.filter(model=model).order_by("-version").first()
        if found is None:
            raise not_found(f"Latest version not found for model {model.name}.")
    else:
        row = RegisteredModelAlias.objects.select_related("version").filter(model=model, alias=name).first()
        if row is None:
            raise not_found(f"Registered model alias {name} not found.")
        found = row.version
    found.model = model
    return {"model_version": version_json(found)}

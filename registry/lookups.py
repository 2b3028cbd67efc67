"""Fetch registered models and versions for a user, checking their per-model permission.

Without READ a model answers 404 like one that does not exist, so names cannot be probed; with READ
but not the level needed, 403 PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Any

from experiments.mlflow_api.common import MlflowError, not_found
from experiments.models import PERMISSION_RANK, Permission
from registry import permissions
from registry.models import ModelVersion, RegisteredModel
from registry.services import parse_version, validate_model_name


def deny(user: Any, level: str, name: str) -> MlflowError:
    who = user.get_username() if getattr(user, "is_authenticated", False) else "anonymous"
    return MlflowError(
        f"Permission denied: user '{who}' needs {level} on registered model '{name}'.", "PERMISSION_DENIED"
    )


def check(user: Any, model: RegisteredModel, level: str) -> None:
    current = permissions.level_for(user, model)
    if current == 0:
        raise not_found(f"Registered Model with name={model.name} not found")
    if current < PERMISSION_RANK[level]:
        raise deny(user, level, model.name)


def registered_model_for(user: Any, name: Any, level: str = Permission.READ) -> RegisteredModel:
    name = validate_model_name(name)
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise not_found(f"Registered Model with name={name} not found")
    check(user, model, level)
    return model


def version_for(user: Any, name: Any, version: Any, level: str = Permission.READ) -> ModelVersion:
    """The version, if `user` holds `level` on its model."""
    number = parse_version(version)
    model = registered_model_for(user, name, level)
    found = ModelVersion.objects.filter(model=model, version=number).first()
    if found is None:
        raise not_found(f"Model Version (name={model.name}, version={number}) not found")
    found.model = model
    return found

"""Model versions downstream of a dataset version: registered from a run that used it.

Registered with `datasets.lineage_hooks` (for the version's page) and `datasets.dependants` (a
dataset version a registered model was trained on cannot be deleted), as experiments registers its
runs; the link is the same (a run input linked to the version, see `experiments.lineage`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.urls import reverse

from datasets.dependants import Dependant, register_provider
from datasets.lineage_hooks import Downstream, register_downstream_provider
from datasets.models import DatasetVersion
from experiments.lineage import runs_using
from registry.models import ModelVersion, Stage
from registry.permissions import visible_models

DOWNSTREAM_LIMIT = 100


def versions_using(version: DatasetVersion) -> QuerySet[ModelVersion]:
    """Model versions whose source run used `version`, newest first."""
    runs = runs_using(version).order_by().values("pk")
    return ModelVersion.objects.filter(run__in=runs).select_related("model").order_by("-creation_timestamp", "-pk")


def _label(model_version: ModelVersion) -> str:
    return f"{model_version.model.name} v{model_version.version}"


def model_dependants(version: DatasetVersion, *, user: Any = None) -> list[Dependant]:
    """Registered model versions trained on `version`; those `user` may not read are hidden."""
    found = versions_using(version)
    if user is not None:  # in the same query: whether the user may read each model
        found = found.annotate(readable=Exists(visible_models(user).filter(pk=OuterRef("model_id"))))
    return [
        Dependant(
            "model version",
            _label(mv),
            reverse("registry:model", args=[mv.model.name]),
            hidden=user is not None and not mv.readable,
        )
        for mv in found
    ]


def models_downstream(version: DatasetVersion, user: Any) -> list[Downstream]:
    """The model versions `user` may read that were trained on `version`, for its page."""
    found = versions_using(version).filter(model__in=visible_models(user))[:DOWNSTREAM_LIMIT]
    return [
        Downstream(
            "model version",
            _label(mv),
            reverse("registry:model", args=[mv.model.name]),
            context=mv.model.name,
            context_url=reverse("registry:model", args=[mv.model.name]),
            status="" if mv.current_stage == Stage.NONE else mv.current_stage,
        )
        for mv in found
    ]


def register() -> None:
    register_provider("registry.model_versions", model_dependants)
    register_downstream_provider("registry.model_versions", models_downstream)

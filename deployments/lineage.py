"""Deployments downstream of a dataset version: serving a model version trained on it.

Registered with `datasets.lineage_hooks` for the version's page (deleting the version is already
refused through the model versions, see `registry.lineage`).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from datasets.lineage_hooks import Downstream, register_downstream_provider
from datasets.models import DatasetVersion
from deployments.models import DeploymentRevision, RevisionState
from registry.lineage import versions_using
from registry.permissions import visible_models

DOWNSTREAM_LIMIT = 100


def deployments_downstream(version: DatasetVersion, user: Any) -> list[Downstream]:
    """Deployments whose active revision serves a model version trained on `version`, that `user` may read."""
    revisions = (
        DeploymentRevision.objects.filter(
            state=RevisionState.ACTIVE,
            model_version__in=versions_using(version).order_by().values("pk"),
            deployment__registered_model__in=visible_models(user),
        )
        .select_related("deployment", "model_version__model")
        .order_by("deployment__name")[:DOWNSTREAM_LIMIT]
    )
    return [
        Downstream(
            "deployment",
            revision.deployment.name,
            reverse("deployments:detail", args=[revision.deployment.name]),
            context=f"{revision.model_version.model.name} v{revision.model_version.version}",
            context_url=reverse("registry:model", args=[revision.model_version.model.name]),
            status=f"{revision.deployment.environment}, {revision.traffic_weight}% of traffic",
        )
        for revision in revisions
    ]


def register() -> None:
    register_downstream_provider("deployments.deployments", deployments_downstream)

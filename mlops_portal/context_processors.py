"""Template context shared by every page: the navigation."""

from __future__ import annotations

from django.http import HttpRequest

NAVIGATION = [
    ("Experiments", "experiments:index", "experiments"),
    ("Datasets", "datasets:index", "datasets"),
    ("Models", "registry:index", "registry"),
    ("Deployments", "deployments:index", "deployments"),
    ("Monitoring", "monitoring:index", "monitoring"),
    ("Pipelines", "pipelines:index", "pipelines"),
    ("Jobs", "jobs:index", "jobs"),
]


def navigation(request: HttpRequest) -> dict[str, object]:
    match = getattr(request, "resolver_match", None)
    current = match.namespace if match else ""
    return {"navigation": NAVIGATION, "current_section": current}

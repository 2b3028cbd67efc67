"""Datasets pages: the list, a dataset's version timeline with the upload form, a version's page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import can, role_required
from accounts.services import has_role
from datasets import dvc, services
from datasets.dependants import dependants_of, hidden_summary
from datasets.lineage_hooks import Downstream, downstream_by_provider
from datasets.models import Dataset, DatasetVersion
from datasets.profile_views import profile_context
from datasets.queries import dataset_list, version_list
from datasets.storage import UploadTooLarge


def _upload_context(request: HttpRequest) -> dict[str, object]:
    return {"can_push": has_role(request.user, Role.EDITOR), "max_upload_bytes": settings.DATASET_MAX_UPLOAD_BYTES}


def index(request: HttpRequest) -> HttpResponse:
    page = Paginator(dataset_list(), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "datasets/index.html",
        {"page": page, "site_url": settings.SITE_URL, **_upload_context(request)},
    )


def detail(request: HttpRequest, name: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset.objects.select_related("owner"), name=name)
    page = Paginator(version_list(dataset), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "datasets/detail.html",
        {"dataset": dataset, "page": page, "site_url": settings.SITE_URL, **_upload_context(request)},
    )


def _version(name: str, number: int) -> DatasetVersion:
    return get_object_or_404(
        DatasetVersion.objects.select_related("dataset", "dataset__owner", "blob", "author", "parent"),
        dataset__name=name,
        number=number,
    )


def _downstream_context(version: DatasetVersion, user: object) -> dict[str, object]:
    """One "Downstream" list: what the user may see (with where it lives and its status), the rest counted.

    Downstream providers give the visible items with their context; dependants that no downstream
    provider describes (an app that only registered a dependants provider) are shown as they are.
    """
    by_provider = downstream_by_provider(version, user)
    rows = [item for items in by_provider.values() for item in items]
    described = {item.url for item in rows if item.url}
    dependants = dependants_of(version, user, downstream=by_provider)
    for d in dependants:
        if not d.hidden and (not d.url or d.url not in described):
            rows.append(Downstream(d.kind, d.label, d.url))
    return {"downstream": rows, "hidden_downstream": hidden_summary(dependants), "in_use": bool(dependants)}


def version(request: HttpRequest, name: str, number: int) -> HttpResponse:
    found = _version(name, number)
    return render(
        request,
        "datasets/version.html",
        {
            "version": found,
            "dataset": found.dataset,
            **_downstream_context(found, request.user),
            "can_delete": can(request.user, "delete", found),
            "site_url": settings.SITE_URL,
            **profile_context(request, found),
        },
    )


@require_POST
@role_required(Role.EDITOR)
def delete_version(request: HttpRequest, name: str, number: int) -> HttpResponse:
    found = _version(name, number)
    if not can(request.user, "delete", found):
        raise PermissionDenied("only the dataset's owner, the version's author or an admin can delete a version")
    try:
        services.delete_version(found, actor=request.user)
    except services.DatasetInUse as exc:
        messages.error(request, str(exc))
        return redirect("datasets:version", name=name, number=number)
    messages.success(request, f"Deleted {found}.")
    return redirect("datasets:detail", name=name)


@require_POST
@role_required(Role.EDITOR)
def from_dvc(request: HttpRequest, name: str) -> HttpResponse:
    """The dataset page's "From a DVC push" form: the same call as `POST .../versions/from-dvc`."""
    dataset = get_object_or_404(Dataset, name=name)
    try:
        found, created = dvc.version_from_dvc(
            dataset.name,
            request.POST.get("md5", ""),
            filename=request.POST.get("filename", "").strip()[:255],
            message=request.POST.get("message", "").strip(),
            author=request.user,
        )
    except (dvc.InvalidDvcObject, dvc.DvcObjectNotFound, services.DatasetInputError, UploadTooLarge) as exc:
        messages.error(request, getattr(exc, "message", None) or str(exc))
        return redirect("datasets:detail", name=name)
    except FileNotFoundError:  # the row is there but its bytes are gone from storage
        messages.error(request, "The pushed object's bytes are missing from storage; push it again with dvc.")
        return redirect("datasets:detail", name=name)
    url = reverse("datasets:version", kwargs={"name": name, "number": found.number})
    return redirect(url if created else f"{url}?pushed=existing")

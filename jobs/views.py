"""Jobs pages: the list with live progress bars, one job's page, and its JSON status for polling."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import can, role_required
from jobs import services
from jobs.models import Job, JobStatus
from jobs.queries import job_list


def index(request: HttpRequest) -> HttpResponse:
    jobs = job_list()
    status = request.GET.get("status", "")
    if status in JobStatus.values:
        jobs = jobs.filter(status=status)
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "jobs/index.html",
        {"page": page, "statuses": JobStatus.choices, "status": status, "any_jobs": Job.objects.exists()},
    )


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("requested_by"), pk=pk)
    return render(request, "jobs/detail.html", {"job": job, "can_cancel": can(request.user, "change", job)})


def status(request: HttpRequest, pk: int) -> JsonResponse:
    """What the live progress bars poll; they stop once `finished` is true."""
    job = get_object_or_404(Job.objects.defer("params", "result"), pk=pk)
    return JsonResponse(
        {
            "id": job.pk,
            "status": job.status,
            "status_label": job.get_status_display(),
            "progress": job.progress,
            "message": job.progress_message,
            "attempts": job.attempts,
            "finished": job.is_finished,
            "error": job.error.splitlines()[-1] if job.error else "",
            "log": job.log[-4000:],
            "duration": job.duration_seconds,
        }
    )


@require_POST
@role_required("editor")
def start_demo(request: HttpRequest) -> HttpResponse:
    job = services.submit_job("demo.sleep", params={"steps": 20, "step_seconds": 0.25}, requested_by=request.user)
    messages.success(request, f"Started demo job #{job.pk}.")
    return redirect("jobs:detail", pk=job.pk)


@require_POST
@role_required("editor")
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=pk)
    if not can(request.user, "change", job):
        raise PermissionDenied("only the user who started this job, or an admin, can cancel it")
    services.cancel_job(job, actor=request.user)
    messages.info(request, f"Asked job #{job.pk} to stop.")
    return redirect("jobs:detail", pk=job.pk)

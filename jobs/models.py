"""The Job row: the source of truth for every long-running operation."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
LOG_TAIL_CHARS = 16_000


class Job(models.Model):
    """One long-running operation (training, deployment, profiling, a demo...).

    Workers claim a queued row atomically, so a duplicated broker message never runs a job twice,
    and keep `heartbeat_at` fresh while they work; the reconciler on beat re-dispatches rows whose
    message was lost and retries or fails rows whose worker died. The UI and API read only this row.
    """

    type = models.CharField(max_length=64, db_index=True)
    queue = models.CharField(max_length=32, default="default")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0 to 100")
    progress_message = models.CharField(max_length=200, blank=True)
    log = models.TextField(blank=True, help_text=f"The last {LOG_TAIL_CHARS} characters of the job's log")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    dispatch_count = models.PositiveIntegerField(default=0, help_text="Messages sent to the broker")
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"]), models.Index(fields=["status", "enqueued_at"])]

    def __str__(self) -> str:
        from jobs import registry

        spec = registry.get(self.type)
        return f"{spec.label if spec else self.type} #{self.pk}"

    def user_can(self, user: object, action: str) -> bool:
        """Everyone with a role sees jobs; only the requester (or an admin) cancels or changes one."""
        if action == "view":
            return True
        from accounts.services import has_role

        return self.requested_by_id == getattr(user, "pk", None) or has_role(user, "admin")

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return max((end - self.started_at).total_seconds(), 0.0)

from django.contrib import admin

from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "type",
        "status",
        "progress",
        "attempts",
        "queue",
        "requested_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "type", "queue", "created_at"]
    search_fields = ["type", "worker", "error", "requested_by__username"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "enqueued_at", "started_at", "heartbeat_at", "finished_at", "dispatch_count"]
    list_select_related = ["requested_by"]

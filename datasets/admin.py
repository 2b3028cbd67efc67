from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from datasets.models import Blob, Dataset, DatasetProfile, DatasetVersion, DvcObject


class ReadOnlyAdmin(admin.ModelAdmin):
    """Versions and blobs are written by `datasets.services` only; the admin shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "last_number", "created"]
    search_fields = ["name", "description", "owner__username"]
    readonly_fields = ["name", "last_number", "created"]
    list_select_related = ["owner"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # datasets come into being with their first pushed version


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ["dataset", "number", "format", "size", "row_count", "author", "created"]
    list_filter = ["format", "created"]
    search_fields = ["dataset__name", "blob__sha256", "blob__md5", "message", "author__username"]
    list_select_related = ["dataset", "author"]
    date_hierarchy = "created"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting goes through datasets.services.delete_version, which checks dependants


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ["sha256", "md5", "size", "storage_key", "created"]
    search_fields = ["sha256", "md5"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # `manage.py dataset_gc` removes unreferenced blobs with their files


@admin.register(DvcObject)
class DvcObjectAdmin(ReadOnlyAdmin):
    list_display = ["remote", "md5", "is_dir", "blob", "pushed_by", "created"]
    list_filter = ["is_dir", "remote"]
    search_fields = ["remote", "md5", "blob__sha256"]
    list_select_related = ["blob", "pushed_by"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a DVC client may pull it at any time; nothing removes pushed objects yet


@admin.register(DatasetProfile)
class DatasetProfileAdmin(ReadOnlyAdmin):
    """Profiles are written by their job; re-running one is the version page's (or the API's) button."""

    list_display = ["version", "status", "rows", "columns", "job", "computed_at", "updated"]
    list_filter = ["status"]
    search_fields = ["version__dataset__name"]
    list_select_related = ["version__dataset", "job"]
    fields = ["version", "status", "job", "computed_at", "updated", "rows", "columns", "error", "data"]
    readonly_fields = fields

    @admin.display(description="rows")
    def rows(self, obj: DatasetProfile) -> Any:
        return (obj.data or {}).get("rows", "—")

    @admin.display(description="columns")
    def columns(self, obj: DatasetProfile) -> Any:
        return len((obj.data or {}).get("columns", [])) if obj.data else "—"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # it goes with its version

from django.contrib import admin

from registry.models import ModelVersion, RegisteredModel, RegisteredModelPermission, RegistryEvent


class VersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("version", "current_stage", "status", "source", "run", "user_id")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


class PermissionInline(admin.TabularInline):
    model = RegisteredModelPermission
    extra = 0
    raw_id_fields = ("user",)


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "last_version", "last_updated_timestamp")
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    inlines = [PermissionInline, VersionInline]


@admin.register(RegistryEvent)
class RegistryEventAdmin(admin.ModelAdmin):
    list_display = ("model", "kind", "version", "alias", "from_value", "to_value", "actor_name", "timestamp")
    list_filter = ("kind",)
    search_fields = ("model__name", "alias", "actor_name")

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

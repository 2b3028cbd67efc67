from django.contrib import admin

from deployments.models import Deployment, DeploymentEvent, DeploymentRevision


class RevisionInline(admin.TabularInline):
    model = DeploymentRevision
    fields = ("model_version", "state", "traffic_weight", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("name", "registered_model", "selector", "environment", "strategy", "replicas", "owner", "created")
    list_filter = ("environment", "strategy")
    search_fields = ("name", "registered_model__name")
    raw_id_fields = ("registered_model", "owner")
    inlines = [RevisionInline]


@admin.register(DeploymentEvent)
class DeploymentEventAdmin(admin.ModelAdmin):
    list_display = ("time", "deployment", "kind", "actor_name", "from_version", "to_version")
    list_filter = ("kind",)
    readonly_fields = ("deployment", "actor", "actor_name", "time", "kind", "from_version", "to_version", "detail")

    def has_add_permission(self, request: object) -> bool:
        return False

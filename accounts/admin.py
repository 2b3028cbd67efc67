from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts.models import ApiToken, AuditEvent, Profile


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False
    verbose_name = "Portal role"
    verbose_name_plural = "Portal role"


class PortalUserAdmin(UserAdmin):
    inlines = [ProfileInline]
    list_display = ["username", "email", "role", "is_active", "is_staff", "last_login"]
    list_select_related = ["profile"]

    @admin.display(description="role", ordering="profile__role")
    def role(self, user):  # type: ignore[no-untyped-def]
        profile = getattr(user, "profile", None)
        return "admin" if user.is_superuser else (profile.role if profile else "viewer")


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), PortalUserAdmin)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "role"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at", "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # A token's secret must be shown to its owner once; create them from the Tokens page or CLI.
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["time", "actor_name", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type", "time"]
    search_fields = ["actor_name", "action", "object_repr", "object_id"]
    date_hierarchy = "time"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

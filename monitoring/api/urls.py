from django.urls import path
from rest_framework.routers import SimpleRouter

from monitoring.api import views

router = SimpleRouter()
router.register("alert-rules", views.AlertRuleViewSet, basename="alert-rule")
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("feedback", views.feedback, name="feedback"),
    path("feedback/", views.feedback_with_slash),
    *router.urls,
]

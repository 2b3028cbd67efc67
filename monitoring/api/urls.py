from django.urls import path

from monitoring.api import views

urlpatterns = [
    path("feedback", views.feedback, name="feedback"),
    path("feedback/", views.feedback_with_slash),
]

from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("", views.index, name="index"),
    path("<str:name>/", views.detail, name="detail"),
    path("<str:name>/deploy", views.deploy, name="deploy"),
    path("<str:name>/rollout/<str:action>", views.command, name="command"),
    path("<str:name>/revisions/<int:revision>/rollback", views.rollback, name="rollback"),
    path("<str:name>/manifests.yaml", views.manifests, name="manifests"),
]

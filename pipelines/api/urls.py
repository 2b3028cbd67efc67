from django.urls import path

from pipelines.api import views

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="pipelines"),
    path("pipelines/<str:name>/", views.pipeline_detail, name="pipeline"),
    path("pipelines/<str:name>/versions/<int:number>/", views.version_detail, name="pipeline-version"),
    path("pipelines/<str:name>/runs/", views.run_list, name="pipeline-runs"),
    path("pipelines/<str:name>/runs/<int:number>/", views.run_detail, name="pipeline-run"),
    path("pipelines/<str:name>/runs/<int:number>/cancel/", views.run_cancel, name="pipeline-run-cancel"),
    path("pipelines/<str:name>/runs/<int:number>/rerun/", views.run_rerun, name="pipeline-run-rerun"),
    path("pipelines/<str:name>/schedules/", views.schedule_create, name="pipeline-schedules"),
    path("pipelines/<str:name>/schedules/<int:schedule_id>/", views.schedule_detail, name="pipeline-schedule"),
    path("pipelines/<str:name>/triggers/", views.trigger_create, name="pipeline-triggers"),
    path("pipelines/<str:name>/triggers/<int:trigger_id>/", views.trigger_delete, name="pipeline-trigger"),
    path("pipelines/<str:name>/webhook-token/", views.webhook_token, name="pipeline-webhook-token"),
    path("pipelines/<str:name>/webhook/", views.webhook, name="pipeline-webhook"),
    path("pipelines/<str:name>/export/<str:target>/", views.export, name="pipeline-export"),
]

from django.urls import path

from experiments import sweep_views, training_views, views

app_name = "experiments"
urlpatterns = [
    path("", views.index, name="index"),
    path("compare/", views.compare, name="compare"),
    path("train/", training_views.train_form, name="train"),
    path("training/<int:job_id>/", training_views.training_job, name="training-job"),
    path("scripts/new/", training_views.script_form, name="script-new"),
    path("sweeps/", sweep_views.sweep_index, name="sweeps"),
    path("sweeps/new/", sweep_views.sweep_form, name="sweep-new"),
    path("sweeps/<int:sweep_id>/", sweep_views.sweep_detail, name="sweep"),
    path("sweeps/<int:sweep_id>/cancel/", sweep_views.sweep_cancel, name="sweep-cancel"),
    path("<int:experiment_id>/", views.experiment_detail, name="experiment"),
    path("<int:experiment_id>/runs.csv", views.runs_csv, name="runs-csv"),
    path("<int:experiment_id>/runs/", views.runs_action, name="runs-action"),
    path("<int:experiment_id>/lifecycle/", views.experiment_lifecycle, name="lifecycle"),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/status.json", views.run_status, name="run-status"),
    path("runs/<str:run_id>/metrics/<path:key>.json", views.metric_data, name="metric-data"),
    path("runs/<str:run_id>/artifact", views.artifact_file, name="artifact"),
    path("runs/<str:run_id>/lifecycle/", views.run_lifecycle, name="run-lifecycle"),
]

from django.urls import path

from experiments.api import sweeps, training

urlpatterns = [
    path("trainers/", training.trainer_list, name="trainers"),
    path("training-jobs/", training.start, name="training-jobs"),
    path("script-jobs/", training.script_jobs, name="script-jobs"),
    path("sweeps/", sweeps.sweep_list, name="sweeps"),
    path("sweeps/<int:sweep_id>/", sweeps.sweep_detail, name="sweep"),
    path("sweeps/<int:sweep_id>/cancel/", sweeps.sweep_cancel, name="sweep-cancel"),
]

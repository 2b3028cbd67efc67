from django.urls import path

from experiments.api import training

urlpatterns = [
    path("trainers/", training.trainer_list, name="trainers"),
    path("training-jobs/", training.start, name="training-jobs"),
]

"""MLflow-compatible URLs, mounted at /api/2.0/mlflow/ (and /ajax-api/2.0/mlflow/)."""

from django.urls import path

from experiments.mlflow_api import artifacts as a
from experiments.mlflow_api import logged_models as lm
from experiments.mlflow_api import tracking as t

urlpatterns = [
    path("experiments/create", t.create_experiment, name="create-experiment"),
    path("experiments/get", t.get_experiment, name="get-experiment"),
    path("experiments/get-by-name", t.get_experiment_by_name, name="get-experiment-by-name"),
    path("experiments/search", t.search_experiments, name="search-experiments"),
    path("experiments/update", t.update_experiment, name="update-experiment"),
    path("experiments/delete", t.delete_experiment, name="delete-experiment"),
    path("experiments/restore", t.restore_experiment, name="restore-experiment"),
    path("experiments/set-experiment-tag", t.set_experiment_tag, name="set-experiment-tag"),
    path("experiments/delete-experiment-tag", t.delete_experiment_tag, name="delete-experiment-tag"),
    path("runs/create", t.create_run, name="create-run"),
    path("runs/get", t.get_run, name="get-run"),
    path("runs/update", t.update_run, name="update-run"),
    path("runs/delete", t.delete_run, name="delete-run"),
    path("runs/restore", t.restore_run, name="restore-run"),
    path("runs/search", t.search_runs, name="search-runs"),
    path("runs/log-metric", t.log_metric, name="log-metric"),
    path("runs/log-parameter", t.log_param, name="log-param"),
    path("runs/set-tag", t.set_tag, name="set-tag"),
    path("runs/delete-tag", t.delete_tag, name="delete-tag"),
    path("runs/log-batch", t.log_batch, name="log-batch"),
    path("runs/log-inputs", t.log_inputs, name="log-inputs"),
    path("runs/outputs", t.log_outputs, name="log-outputs"),
    path("metrics/get-history", t.get_metric_history, name="get-metric-history"),
    path("metrics/get-history-bulk-interval", t.get_metric_history_bulk_interval, name="get-history-bulk-interval"),
    path("artifacts/list", a.list_run_artifacts, name="list-run-artifacts"),
    # "search" before "<model_id>", so it is never taken for a model id.
    path("logged-models", lm.create_logged_model, name="create-logged-model"),
    path("logged-models/search", lm.search_logged_models, name="search-logged-models"),
    path("logged-models/<str:model_id>", lm.logged_model, name="logged-model"),
    path("logged-models/<str:model_id>/tags", lm.set_logged_model_tags, name="set-logged-model-tags"),
    path(
        "logged-models/<str:model_id>/tags/<path:tag_key>", lm.delete_logged_model_tag, name="delete-logged-model-tag"
    ),
    path("logged-models/<str:model_id>/params", lm.log_logged_model_params, name="log-logged-model-params"),
    path(
        "logged-models/<str:model_id>/artifacts/directories",
        lm.list_logged_model_artifacts,
        name="list-logged-model-artifacts",
    ),
    path(
        "logged-models/<str:model_id>/artifacts/files", lm.get_logged_model_artifact, name="get-logged-model-artifact"
    ),
]

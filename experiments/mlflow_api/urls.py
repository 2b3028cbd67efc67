"""MLflow-compatible URLs, mounted at /api/2.0/mlflow/ (and /ajax-api/2.0/mlflow/)."""

from django.urls import path

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
]

"""MLflow Model Registry URLs, mounted beside the tracking API at /api/2.0/mlflow/ (and /ajax-api/…)."""

from django.urls import path

from registry.mlflow_api import model_versions as mv
from registry.mlflow_api import registered_models as rm

urlpatterns = [
    path("registered-models/create", rm.create_registered_model, name="create-registered-model"),
    path("registered-models/get", rm.get_registered_model, name="get-registered-model"),
    path("registered-models/rename", rm.rename_registered_model, name="rename-registered-model"),
    path("registered-models/update", rm.update_registered_model, name="update-registered-model"),
    path("registered-models/delete", rm.delete_registered_model, name="delete-registered-model"),
    path("registered-models/search", rm.search_registered_models, name="search-registered-models"),
    path("registered-models/get-latest-versions", rm.get_latest_versions, name="get-latest-versions"),
    path("registered-models/set-tag", rm.set_registered_model_tag, name="set-registered-model-tag"),
    path("registered-models/delete-tag", rm.delete_registered_model_tag, name="delete-registered-model-tag"),
    path("registered-models/alias", rm.alias, name="registered-model-alias"),
    path("model-versions/create", mv.create_model_version, name="create-model-version"),
    path("model-versions/get", mv.get_model_version, name="get-model-version"),
    path("model-versions/update", mv.update_model_version, name="update-model-version"),
    path("model-versions/delete", mv.delete_model_version, name="delete-model-version"),
    path("model-versions/search", mv.search_model_versions, name="search-model-versions"),
    path("model-versions/transition-stage", mv.transition_stage, name="transition-model-version-stage"),
    path("model-versions/get-download-uri", mv.get_download_uri, name="get-model-version-download-uri"),
    path("model-versions/set-tag", mv.set_model_version_tag, name="set-model-version-tag"),
    path("model-versions/delete-tag", mv.delete_model_version_tag, name="delete-model-version-tag"),
]

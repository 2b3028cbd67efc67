"""Root URLs: each app owns its pages (`<app>/urls.py`) and its API (`<app>/api/urls.py`)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from experiments.mlflow_api.server_info import server_info
from mlops_portal import views
from monitoring.views import metrics

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("jobs.api.urls")),
    path("", include("datasets.api.urls")),
    path("", include("experiments.api.urls")),
    path("", include("deployments.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("pipelines.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-v1:schema"), name="docs"),
]

urlpatterns = [
    path("", include("dashboard.urls")),
    path("health", views.health, name="health"),
    path("ready", views.ready, name="ready"),
    path("metrics", metrics, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("jobs/", include("jobs.urls")),
    path("experiments/", include("experiments.urls")),
    path("datasets/", include("datasets.urls")),
    path("dvc/", include("datasets.dvc_urls")),
    path("models/", include("registry.urls")),
    path("deployments/", include("deployments.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("pipelines/", include("pipelines.urls")),
    path("api/v1/", include((api_v1, "api-v1"))),
    path("api/2.0/mlflow/", include(("experiments.mlflow_api.urls", "mlflow"))),
    path("ajax-api/2.0/mlflow/", include(("experiments.mlflow_api.urls", "mlflow-ajax"))),
    path("api/2.0/mlflow/", include(("registry.mlflow_api.urls", "mlflow-registry"))),
    path("ajax-api/2.0/mlflow/", include(("registry.mlflow_api.urls", "mlflow-registry-ajax"))),
    path("api/2.0/mlflow-artifacts/", include(("experiments.mlflow_api.artifacts", "mlflow-artifacts"))),
    path("ajax-api/2.0/mlflow-artifacts/", include(("experiments.mlflow_api.artifacts", "mlflow-artifacts-ajax"))),
    path("api/3.0/mlflow/server-info", server_info, name="mlflow-server-info"),
    path("admin/", admin.site.urls),
]

handler400 = "mlops_portal.views.bad_request"
handler403 = "mlops_portal.views.permission_denied"
handler404 = "mlops_portal.views.page_not_found"
handler500 = "mlops_portal.views.server_error"

admin.site.site_header = "MLOps Portal administration"
admin.site.site_title = "MLOps Portal admin"

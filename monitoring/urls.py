from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("", views.index, name="index"),
    path("prometheus.yml", views.prometheus_config, name="prometheus-config"),
    path("alerts/", views.alerts_page, name="alerts"),
    path("alerts/<int:pk>/<str:act>", views.alert_action, name="alert-action"),
    path("<str:name>/", views.deployment, name="deployment"),
    path("<str:name>/grafana.json", views.grafana_dashboard, name="grafana"),
]

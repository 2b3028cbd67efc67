from django.urls import path

from registry import views

app_name = "registry"
urlpatterns = [
    path("", views.index, name="index"),
    path("register-run/", views.register_from_run, name="register-from-run"),
    path("<str:name>/", views.model_detail, name="model"),
    path("<str:name>/alias/", views.set_alias, name="set-alias"),
    path("<str:name>/stage/", views.transition_stage, name="transition-stage"),
]

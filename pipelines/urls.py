from django.urls import path

from pipelines import views

app_name = "pipelines"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.define, name="define"),
    path("<str:name>/", views.detail, name="detail"),
    path("<str:name>/run/", views.run_now, name="run-now"),
    path("<str:name>/automation/", views.automation, name="automation"),
    path("<str:name>/runs/<int:number>/", views.run_detail, name="run"),
    path("<str:name>/runs/<int:number>/action/", views.run_action, name="run-action"),
]

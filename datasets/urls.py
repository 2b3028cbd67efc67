from django.urls import path

from datasets import profile_views, views

app_name = "datasets"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:name>/", views.detail, name="detail"),
    path("<slug:name>/versions/from-dvc/", views.from_dvc, name="from-dvc"),
    path("<slug:name>/versions/<int:number>/", views.version, name="version"),
    path("<slug:name>/versions/<int:number>/delete/", views.delete_version, name="delete-version"),
    path("<slug:name>/versions/<int:number>/profile/", profile_views.rerun_profile, name="profile"),
    path("<slug:name>/diff", profile_views.diff, name="diff"),
]

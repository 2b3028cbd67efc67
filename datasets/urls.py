from django.urls import path

from datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:name>/", views.detail, name="detail"),
    path("<slug:name>/versions/<int:number>/", views.version, name="version"),
    path("<slug:name>/versions/<int:number>/delete/", views.delete_version, name="delete-version"),
]

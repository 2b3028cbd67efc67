from django.urls import path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("", views.index, name="index"),
    path("demo/", views.start_demo, name="start-demo"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/status.json", views.status, name="status"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
]

from django.urls import path
from rest_framework.routers import SimpleRouter

from datasets.api.profiles import DatasetDiffView, VersionProfileView
from datasets.api.views import (
    DatasetViewSet,
    VersionDetailView,
    VersionDownloadView,
    VersionFromDvcView,
    VersionListView,
)

router = SimpleRouter()
router.register("datasets", DatasetViewSet, basename="dataset")

urlpatterns = [
    *router.urls,
    path("datasets/<slug:name>/versions/", VersionListView.as_view(), name="dataset-version-list"),
    path("datasets/<slug:name>/versions/from-dvc", VersionFromDvcView.as_view(), name="dataset-version-from-dvc"),
    path("datasets/<slug:name>/versions/<int:number>/", VersionDetailView.as_view(), name="dataset-version-detail"),
    path(
        "datasets/<slug:name>/versions/<int:number>/download",
        VersionDownloadView.as_view(),
        name="dataset-version-download",
    ),
    path(
        "datasets/<slug:name>/versions/<int:number>/profile",
        VersionProfileView.as_view(),
        name="dataset-version-profile",
    ),
    path("datasets/<slug:name>/diff", DatasetDiffView.as_view(), name="dataset-diff"),
]

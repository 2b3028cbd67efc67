from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from datasets.models import Dataset, DatasetFormat, DatasetVersion


class LatestVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField(source="latest_number")
    size = serializers.IntegerField(source="latest_size")
    row_count = serializers.IntegerField(source="latest_row_count", allow_null=True)
    format = serializers.CharField(source="latest_format")
    created_at = serializers.DateTimeField(source="updated")


class DatasetSerializer(serializers.ModelSerializer):
    """A dataset as listed: expects the annotations of `datasets.queries.dataset_list`."""

    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    created_at = serializers.DateTimeField(source="created", read_only=True)
    version_count = serializers.IntegerField(read_only=True)
    latest_version = serializers.SerializerMethodField()
    versions_url = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["name", "description", "owner", "created_at", "version_count", "latest_version", "versions_url"]
        read_only_fields = fields

    def get_latest_version(self, dataset: Dataset) -> dict[str, Any] | None:
        if getattr(dataset, "latest_number", None) is None:
            return None
        return dict(LatestVersionSerializer(dataset).data)

    def get_versions_url(self, dataset: Dataset) -> str:
        return reverse("api-v1:dataset-version-list", kwargs={"name": dataset.name})


class DatasetVersionSerializer(serializers.ModelSerializer):
    """Everything a version records. Versions are immutable: this serializer only reads."""

    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    sha256 = serializers.CharField(source="blob_id", read_only=True)
    md5 = serializers.CharField(source="blob.md5", read_only=True)
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    parent = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(source="created", read_only=True)
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "dataset",
            "number",
            "sha256",
            "md5",
            "size",
            "format",
            "filename",
            "row_count",
            "schema",
            "manifest",
            "author",
            "message",
            "parent",
            "created_at",
            "url",
            "download_url",
            "page_url",
        ]
        read_only_fields = fields

    def get_parent(self, version: DatasetVersion) -> int | None:
        return version.parent.number if version.parent_id and version.parent else None

    def _route(self, version: DatasetVersion) -> dict[str, Any]:
        return {"name": version.dataset.name, "number": version.number}

    def get_url(self, version: DatasetVersion) -> str:
        return reverse("api-v1:dataset-version-detail", kwargs=self._route(version))

    def get_download_url(self, version: DatasetVersion) -> str:
        return reverse("api-v1:dataset-version-download", kwargs=self._route(version))

    def get_page_url(self, version: DatasetVersion) -> str:
        return reverse("datasets:version", kwargs=self._route(version))


class PushResultSerializer(DatasetVersionSerializer):
    """The pushed version, and whether it is new (`created` false: the dataset already held these bytes)."""

    created = serializers.SerializerMethodField()

    class Meta(DatasetVersionSerializer.Meta):
        fields = [*DatasetVersionSerializer.Meta.fields, "created"]
        read_only_fields = fields

    def get_created(self, version: DatasetVersion) -> bool:
        return bool(self.context.get("created"))


class FromDvcSerializer(serializers.Serializer):
    """What `POST .../versions/from-dvc` takes: the `md5:` of a `.dvc` file and the version's facts."""

    md5 = serializers.CharField(
        max_length=80, help_text="The `md5:` of the .dvc file: 32 hex digits, with `.dir` for a directory"
    )
    remote = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="The DVC remote's name, if several hold it"
    )
    filename = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="The file's name (`path:` in the .dvc file)"
    )
    message = serializers.CharField(required=False, allow_blank=True, default="")
    format = serializers.ChoiceField(choices=DatasetFormat.choices, required=False)

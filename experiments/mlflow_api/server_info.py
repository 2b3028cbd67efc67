"""`/api/3.0/mlflow/server-info`: what MLflow 3 clients ask a server before some calls."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from experiments.mlflow_api.common import endpoint


@endpoint("GET")
def server_info(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    # A file-based store answers "FileStore"; anything else tells the client it may use every feature.
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }

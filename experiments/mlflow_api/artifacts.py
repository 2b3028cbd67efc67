"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/`) and the tracking API's `artifacts/list`.

`mlflow-artifacts:/<path>` URIs resolve on the client to
`<tracking uri>/api/2.0/mlflow-artifacts/artifacts/<path>`; the client PUTs files there, GETs them
back, lists directories with `GET artifacts?path=<dir>` and DELETEs paths. The first path segment
is the experiment id: reading needs READ on that experiment, writing and deleting need EDIT.

Protocol quirks: success is exactly 200 with `{}` for PUT and DELETE; a listing omits `files` when
there are none; downloads are always attachments, with nosniff and a content type that cannot render,
so an uploaded HTML or SVG file never runs script on the portal's origin.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from accounts.services import record_audit
from experiments import artifacts
from experiments.mlflow_api.common import (
    MlflowError,
    endpoint,
    error_response,
    invalid,
    json_response,
    optional_str,
)
from experiments.mlflow_api.lookups import experiment_for, run_for
from experiments.models import Experiment, Permission

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20

# Shown as text (MLflow's list of text extensions): text/plain never renders, whatever it contains.
TEXT_EXTENSIONS = {
    "txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml", "yaml",
    "yml", "json", "py", "py3", "csv", "tsv", "md", "rst", "ipynb", "mlmodel", "mlproject",
}  # fmt: skip
# Types a browser displays without running anything. Everything else (html, svg, xml, js, pdf…) is
# sent as application/octet-stream.
INERT_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"}


def content_type_for(name: str) -> str:
    _, dot, extension = name.rpartition(".")
    if (extension if dot else name).lower() in TEXT_EXTENSIONS:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed if guessed in INERT_TYPES else "application/octet-stream"


def mlflow_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer MlflowError (and database trouble) in MLflow's JSON shape, for views not using `endpoint`."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except MlflowError as exc:
            return error_response(exc)
        except DatabaseError:
            logger.exception("database error in an MLflow artifact endpoint", extra={"path": request.path})
            return error_response(MlflowError("internal database error; try again", "INTERNAL_ERROR"))

    return wrapper


def _experiment(request: HttpRequest, relative: str, level: str) -> Experiment:
    return experiment_for(request.user, artifacts.experiment_id_of(relative), level)


def _inside_an_experiment(relative: str) -> None:
    if "/" not in relative:
        raise invalid(f"Invalid path {relative!r}: artifacts live inside an experiment's directory, like '1/…'")


def _body_chunks(request: HttpRequest) -> Iterator[bytes]:
    """The request body in 1 MiB pieces, never all of it at once."""
    stream: Any = request  # Django's request reads from the WSGI input, up to CONTENT_LENGTH
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Without a length Django would read nothing. Reading the raw input to its end is safe only
        # when the server says it ends there (granian and gunicorn do, the development server does not).
        if not request.META.get("wsgi.input_terminated"):
            raise MlflowError("Send the artifact with a Content-Length header.", "BAD_REQUEST")
        stream = request.META["wsgi.input"]
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


# /api/2.0/mlflow-artifacts/artifacts/<path> ------------------------------------------------------


@csrf_exempt
@mlflow_errors
def artifact(request: HttpRequest, artifact_path: str) -> HttpResponse:
    """PUT uploads, GET downloads and DELETE removes one artifact (DELETE also whole directories)."""
    handlers = {"PUT": upload_artifact, "GET": download_artifact, "DELETE": delete_artifact}
    handler = handlers.get(request.method or "")
    if handler is None:
        raise MlflowError(f"{request.method} is not allowed here; use GET, PUT or DELETE", "BAD_REQUEST")
    if request.method == "DELETE" and artifact_path.endswith("/"):
        # The client deletes a whole artifact root as `<root>/` (MLflow's server accepts that).
        artifact_path = artifact_path[:-1]
    return handler(request, artifacts.safe_relative_path(artifact_path))


artifact.mlflow_methods = ("GET", "PUT", "DELETE")  # type: ignore[attr-defined]


def upload_artifact(request: HttpRequest, relative: str) -> HttpResponse:
    _inside_an_experiment(relative)
    _experiment(request, relative, Permission.EDIT)
    limit = settings.MAX_UPLOAD_BYTES
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        try:
            size = int(declared)
        except ValueError:
            raise MlflowError(f"Invalid Content-Length {declared!r}", "BAD_REQUEST") from None
        if size > limit:
            raise artifacts.ArtifactTooLarge(limit)  # before reading a byte of it
    try:
        artifacts.save_stream(relative, _body_chunks(request), limit)
    except OSError:
        logger.exception("could not store an artifact", extra={"artifact_path": relative})
        raise MlflowError("The artifact could not be stored; try again.", "INTERNAL_ERROR") from None
    return json_response({})


def download_artifact(request: HttpRequest, relative: str) -> HttpResponse:
    _experiment(request, relative, Permission.READ)
    handle = artifacts.open_file(relative)
    name = posixpath.basename(relative)
    response = FileResponse(handle, as_attachment=True, filename=name, content_type=content_type_for(name))
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-cache"
    return response


def delete_artifact(request: HttpRequest, relative: str) -> HttpResponse:
    _inside_an_experiment(relative)
    _experiment(request, relative, Permission.EDIT)
    artifacts.delete(relative)
    record_audit(request.user, "artifact.delete", None, {"path": relative})
    return json_response({})


# /api/2.0/mlflow-artifacts/artifacts?path=<dir> --------------------------------------------------


@endpoint("GET")
def list_artifacts(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    raw = (optional_str(data, "path") or "").rstrip("/")
    if not raw:
        raise invalid("Missing value for required parameter 'path': list a directory like '<experiment_id>/…'")
    relative = artifacts.safe_relative_path(raw)
    _experiment(request, relative, Permission.READ)
    files = artifacts.list_dir(relative)
    return {"files": files} if files else {}


# /api/2.0/mlflow/artifacts/list?run_id=…&path=… --------------------------------------------------


def listing_under(root: str, sub_path: str | None) -> list[dict[str, Any]]:
    """A directory below an artifact root, with paths relative to that root (as `artifacts/list` answers)."""
    sub = artifacts.safe_relative_path(sub_path.rstrip("/")) if sub_path and sub_path.rstrip("/") else ""
    files = artifacts.list_dir(artifacts.join(root, sub))
    for entry in files:
        entry["path"] = posixpath.join(sub, entry["path"]) if sub else entry["path"]
    return files


@endpoint("GET")
def list_run_artifacts(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    run = run_for(request.user, data.get("run_id") or data.get("run_uuid"))
    files = listing_under(artifacts.relative_of_uri(run.artifact_uri), optional_str(data, "path"))
    result: dict[str, Any] = {"root_uri": run.artifact_uri}
    if files:
        result["files"] = files
    return result


# Mounted at /api/2.0/mlflow-artifacts/ and /ajax-api/2.0/mlflow-artifacts/ by mlops_portal/urls.py.
urlpatterns = [
    path("artifacts", list_artifacts, name="list-artifacts"),
    path("artifacts/<path:artifact_path>", artifact, name="artifact"),
]

"""The HTTP side of the portal's DVC remote: `dvc remote add -d myremote <portal>/dvc/<remote>`.

What DVC 3's HTTP remote (dvc-http on fsspec and aiohttp) sends, as captured from `dvc` 3.67:

- Objects live at `<remote url>/files/md5/<2 hex>/<30 hex>`, directory manifests with `.dir` after
  the md5. Older layouts (DVC 2, and DVC 3 for `.dvc` files without `hash: md5`) use
  `<remote url>/<2 hex>/<30 hex>`; both map to the same objects here.
- `dvc push` first GETs every object to learn whether the remote has it (any status below 400 means
  yes; the body is not read), then uploads the missing ones with POST (`method put` in the remote's
  config switches to PUT), the body sent with `Transfer-Encoding: chunked` and no Content-Length.
- `dvc pull` / `fetch` HEADs a `.dir` manifest for its size, reads it with `Range: bytes=0-<size-1>`,
  then GETs each file. `dvc status -c` GETs objects, and once `<remote url>/files/md5` itself (a
  directory-listing probe; 404 is the right answer: an HTTP remote cannot be listed).
- Credentials: `auth basic` sends `Authorization: Basic` with `user` and `password`; `auth custom`
  sends the header named by `custom_auth_header` with `password` as its whole value, which is how an
  API token travels (`Authorization: Bearer <token>`). The authentication middleware handles both.

Viewers may read (pull, fetch, status); editors and admins may push.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_http_methods

from accounts.models import Role
from accounts.services import has_role
from datasets import dvc
from datasets.storage import CHUNK_BYTES, IncompleteUpload, UploadTooLarge, get_storage
from mlops_portal.api import error_body, json_error

RANGE_RE = re.compile(r"^bytes=(?P<start>\d*)-(?P<end>\d*)$")


class LengthRequired(Exception):
    pass


@require_http_methods(["GET", "HEAD", "POST", "PUT"])
def dvc_object(request: HttpRequest, remote: str, prefix: str, rest: str, suffix: str = "") -> HttpResponse:
    oid = dvc.Oid(prefix + rest, bool(suffix))
    if request.method in ("POST", "PUT"):
        return _upload(request, remote, oid)
    if not has_role(request.user, Role.VIEWER):
        return json_error(403, "permission_denied", "Reading a DVC remote needs the viewer role.")
    found = dvc.find_object(remote, oid)
    if found is None:
        return json_error(404, "not_found", f"The DVC remote {remote!r} has no object {oid}.")
    size = found.blob.size
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{found.md5}"', "X-Content-Type-Options": "nosniff"}
    if request.method == "HEAD":
        # Set explicitly: DVC reads a `.dir` manifest's size from this answer before fetching it.
        response = HttpResponse(content_type="application/octet-stream", headers=headers)
        response["Content-Length"] = str(size)
        return response
    start, end = 0, size - 1
    status = 200
    wanted = request.headers.get("Range", "")
    if wanted:
        parsed = _parse_range(wanted, size)
        if parsed is None:
            response = json_error(416, "range_not_satisfiable", f"Cannot serve {wanted!r} of a {size}-byte object.")
            response["Content-Range"] = f"bytes */{size}"
            return response
        if parsed != (0, size - 1):
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    try:
        handle = get_storage().open(found.blob_id)
    except FileNotFoundError:
        return json_error(404, "not_found", f"The stored bytes of {oid} are missing; tell an administrator.")
    length = max(end - start + 1, 0)
    response = StreamingHttpResponse(
        _read_range(handle, start, length), status=status, content_type="application/octet-stream", headers=headers
    )
    response["Content-Length"] = str(length)
    return response


def _upload(request: HttpRequest, remote: str, oid: dvc.Oid) -> HttpResponse:
    if not has_role(request.user, Role.EDITOR):
        return json_error(403, "permission_denied", "Pushing to a DVC remote needs the editor role.")
    try:
        chunks, expected = _body_chunks(request)
        _, created = dvc.store_object(remote, oid, chunks, pushed_by=request.user, expected_size=expected)
    except UploadTooLarge as exc:
        return json_error(413, "too_large", str(exc))
    except LengthRequired as exc:
        return json_error(411, "length_required", str(exc))
    except (IncompleteUpload, dvc.DigestMismatch) as exc:
        code = "incomplete_upload" if isinstance(exc, IncompleteUpload) else "digest_mismatch"
        return json_error(400, code, str(exc))
    except dvc.services.InvalidDatasetName as exc:
        return json_error(400, "invalid", str(exc), "remote")
    body = {"remote": remote, "oid": str(oid), "created": created}
    return JsonResponse(body, status=201 if created else 200)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range as (first, last) byte; None if unsatisfiable.

    Several ranges are answered with the whole object (allowed by RFC 9110), which DVC never asks for.
    """
    match = RANGE_RE.match(header.strip().replace(" ", ""))
    if match is None:
        return (0, size - 1)
    first, last = match["start"], match["end"]
    if not first and not last:
        return (0, size - 1)
    if not first:  # the last n bytes
        n = int(last)
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None
    return (start, end)


def _read_range(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def _body_chunks(request: HttpRequest) -> tuple[Iterator[bytes], int | None]:
    """The upload's body in 1 MiB pieces, and its announced length when there is one.

    DVC sends bodies chunked, without Content-Length, and Django reads nothing of such a body: its
    request stream stops at Content-Length. Gunicorn (the portal's web server) decodes the chunks
    and marks its input `wsgi.input_terminated`, so that input is read to its end. Django's own
    development server (`runserver`, and the live server of the tests) does not decode them, so
    here the chunked framing is read off its socket stream directly.
    """
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if raw_length.strip():
        try:
            length = int(raw_length)
        except ValueError:
            raise IncompleteUpload(f"Invalid Content-Length {raw_length!r}.") from None
        return _pieces(request), length
    if "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return iter(()), 0  # an empty object is a valid DVC object (the md5 of no bytes)
    wsgi_input = request.META["wsgi.input"]
    if request.META.get("wsgi.input_terminated"):
        return _pieces(wsgi_input), None
    read, readline = getattr(wsgi_input, "_read", None), getattr(wsgi_input, "_readline", None)
    if request.META.get("SERVER_SOFTWARE", "").startswith("WSGIServer/") and read and readline:
        # Django's development server: its LimitedStream keeps the raw socket reader's methods.
        return _dechunk(read, readline), None
    raise LengthRequired(
        "This server cannot read a chunked request body: run the portal under granian (as `./portal up` does)."
    )


def _pieces(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def _dechunk(read: Any, readline: Any) -> Iterator[bytes]:
    """Decode `Transfer-Encoding: chunked` (RFC 9112 section 7.1), trailers skipped."""
    while True:
        line = readline(1024)
        if not line.endswith(b"\n"):
            raise IncompleteUpload("The chunked upload ended in the middle of a chunk header.")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise IncompleteUpload(f"Bad chunk header {line[:40]!r} in the chunked upload.") from None
        if size == 0:
            while readline(8192) not in (b"\r\n", b"\n", b""):
                pass
            return
        while size > 0:
            piece = read(min(size, CHUNK_BYTES))
            if not piece:
                raise IncompleteUpload("The chunked upload ended in the middle of a chunk.")
            size -= len(piece)
            yield piece
        readline(8)  # the CRLF after the chunk's data


def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Anything under /dvc/ that is not an object: DVC's listing probe, malformed names, traversal."""
    return JsonResponse(
        error_body("not_found", "Not a DVC object: expected /dvc/<remote>/files/md5/<2 hex>/<30 hex>[.dir]."),
        status=404,
    )

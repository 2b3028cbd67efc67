"""REST API: /api/v1/datasets/…"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from datasets.dependants import Dependant
from datasets.models import Dataset, DatasetVersion
from tests.conftest import bearer
from tests.datasets.conftest import stored_files
from tests.datasets.factories import IRIS, csv_rows, push

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("blob_backend")]

VERSIONS = "/api/v1/datasets/iris/versions/"


def upload(client: Client, data: bytes, *, name: str = "iris", filename: str = "iris.csv", **extra: Any) -> Any:
    return client.post(
        f"/api/v1/datasets/{name}/versions/?filename={filename}&message=hello",
        data,
        content_type="application/octet-stream",
        **extra,
    )


def nothing_listed(client: Client, store: Path) -> bool:
    return stored_files(store) == [] and client.get("/api/v1/datasets/").json()["count"] == 0


def test_pushing_a_raw_body_answers_201_with_every_recorded_field(editor_client: Client) -> None:
    response = upload(editor_client, IRIS)
    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True
    assert {k: body[k] for k in ["dataset", "number", "size", "format", "filename", "row_count", "author"]} == {
        "dataset": "iris",
        "number": 1,
        "size": len(IRIS),
        "format": "csv",
        "filename": "iris.csv",
        "row_count": 3,
        "author": "erin",
    }
    assert body["sha256"] == hashlib.sha256(IRIS).hexdigest()
    assert body["md5"] == hashlib.md5(IRIS).hexdigest()  # noqa: S324
    assert body["schema"][2] == {"name": "species", "type": "string"}
    assert (body["message"], body["parent"], body["manifest"]) == ("hello", None, [])
    assert body["download_url"] == "/api/v1/datasets/iris/versions/1/download"
    assert body["page_url"] == "/datasets/iris/versions/1/"


def test_pushing_identical_content_answers_200_created_false(editor_client: Client) -> None:
    upload(editor_client, IRIS)
    again = upload(editor_client, IRIS, filename="copy.csv")
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["number"]) == (False, 1)
    assert DatasetVersion.objects.count() == 1


def test_a_multipart_upload_works_too(editor_client: Client) -> None:
    response = editor_client.post(
        VERSIONS, {"file": io.BytesIO(IRIS), "message": "from a form", "filename": "iris.csv"}
    )
    assert response.status_code == 201, response.content
    assert (response.json()["message"], response.json()["row_count"]) == ("from a form", 3)


def test_a_token_works_and_the_version_is_readable(editor: Any, viewer_client: Client) -> None:
    assert upload(Client(), IRIS, **bearer(editor)).status_code == 201
    detail = viewer_client.get(f"{VERSIONS}1/").json()
    assert (detail["number"], detail["author"], detail["row_count"]) == (1, "erin", 3)


def test_a_bigger_than_memory_upload_is_read_in_chunks(editor_client: Client, store: Path) -> None:
    data = csv_rows(1_500_000)  # ~22 MB
    assert len(data) > 20 * 1024**2 > django_settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    reads: list[int] = []

    class RecordingInput(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            reads.append(len(chunk))
            return chunk

    response = editor_client.generic(
        "POST",
        f"{VERSIONS}?filename=big.csv",
        **{"wsgi.input": RecordingInput(data), "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": "text/csv"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["row_count"] == 1_500_000
    assert sum(reads) == len(data) and max(reads) <= 1024 * 1024  # never the whole body in one read
    assert len(reads) > 20


def test_an_announced_size_over_the_cap_is_a_413_before_reading(
    editor_client: Client, store: Path, settings: Any
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 1000

    class Untouchable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body was read")

    response = editor_client.generic(
        "POST",
        f"{VERSIONS}?filename=x.csv",
        **{"wsgi.input": Untouchable(), "CONTENT_LENGTH": "5000", "CONTENT_TYPE": "text/csv"},
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "1,000 bytes (DATASET_MAX_UPLOAD_BYTES)" in error["message"]
    assert nothing_listed(editor_client, store)


def test_a_streamed_body_over_the_cap_is_a_413_and_nothing_is_kept(
    editor_client: Client, store: Path, settings: Any
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    data = csv_rows(500)
    response = editor_client.generic(
        "POST",
        f"{VERSIONS}?filename=x.csv",
        **{
            "wsgi.input": io.BytesIO(data),
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input_terminated": True,
            "CONTENT_TYPE": "text/csv",
        },
    )
    assert response.status_code == 413
    assert nothing_listed(editor_client, store)


def test_a_multipart_file_over_the_cap_is_a_413(editor_client: Client, store: Path, settings: Any) -> None:
    data = csv_rows(20_000)
    # Just under the cap plus the multipart framing allowance: the early check lets it through, and the
    # upload handler must stop the file part itself.
    settings.DATASET_MAX_UPLOAD_BYTES = len(data) - 1000
    response = editor_client.post(VERSIONS, {"file": io.BytesIO(data)})
    assert response.status_code == 413
    assert nothing_listed(editor_client, store)


def test_an_interrupted_upload_is_a_400_and_nothing_is_kept(editor_client: Client, store: Path) -> None:
    response = editor_client.generic(
        "POST",
        f"{VERSIONS}?filename=x.csv",
        **{"wsgi.input": io.BytesIO(IRIS), "CONTENT_LENGTH": str(len(IRIS) + 5000), "CONTENT_TYPE": "text/csv"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "incomplete_upload" and f"ended after {len(IRIS)} of the" in error["message"]
    assert nothing_listed(editor_client, store)


def test_a_client_that_disconnects_midway_leaves_nothing(editor_client: Client, store: Path) -> None:
    class Disconnecting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError("Connection reset by peer")
            return super().read(10)

    response = editor_client.generic(
        "POST",
        f"{VERSIONS}?filename=x.csv",
        **{"wsgi.input": Disconnecting(IRIS), "CONTENT_LENGTH": str(len(IRIS)), "CONTENT_TYPE": "text/csv"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "incomplete_upload"
    assert nothing_listed(editor_client, store)


@pytest.mark.parametrize(
    ("data", "needle", "detail"),
    [
        ("a,b\n1,Zürich\n".encode("latin-1"), "not valid UTF-8", {"line": 2, "column": 2, "column_name": "b"}),
        (b"a,b,c\n1,2,3\n4,5\n", "Row 2 has 2 columns, expected 3", {"row": 2}),
        (b'a,b\n1,"open\n2,3\n', "Unclosed quote", {"line": 2}),
        (b"a,b\n1,\x00\n", "NUL byte", {"line": 2}),
        (",".join(f"c{i}" for i in range(100_000)).encode() + b"\n", "100,000 columns", {"limit": 10_000}),
        (b"a,b\n1," + b"y" * (10 * 1024**2) + b"\n", "DATASET_MAX_FIELD_BYTES", {"row": 1, "column": 2}),
    ],
    ids=["encoding", "ragged", "quote", "nul", "columns", "field"],
)
def test_bad_input_is_a_400_naming_the_problem_and_nothing_is_listed(
    editor_client: Client, store: Path, data: bytes, needle: str, detail: dict[str, Any]
) -> None:
    response = upload(editor_client, data, name="bad")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_dataset" and error["field"] == "file"
    assert needle in error["message"]
    assert detail.items() <= error["details"].items()
    assert nothing_listed(editor_client, store)
    assert editor_client.get("/api/v1/datasets/bad/").status_code == 404


def test_an_invalid_name_is_a_400_on_the_name(editor_client: Client) -> None:
    response = upload(editor_client, IRIS, name="-bad")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"


def test_an_empty_body_is_a_400(editor_client: Client) -> None:
    response = editor_client.post(f"{VERSIONS}?filename=x.csv", b"", content_type="text/csv")
    assert response.status_code == 400
    assert "empty" in response.json()["error"]["message"]


def test_a_viewer_cannot_push(viewer_client: Client, store: Path) -> None:
    response = upload(viewer_client, IRIS)
    assert response.status_code == 403
    assert nothing_listed(viewer_client, store)


def test_anonymous_calls_get_401(db: None) -> None:
    assert Client().get("/api/v1/datasets/").status_code == 401
    assert upload(Client(), IRIS).status_code == 401


def test_a_browser_session_push_needs_the_csrf_token(editor: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    assert upload(client, IRIS).status_code == 403
    client.get("/datasets/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert upload(client, IRIS, HTTP_X_CSRFTOKEN=token).status_code == 201


def test_the_dataset_list_is_paginated_with_latest_versions_in_few_queries(
    editor: Any, viewer_client: Client, django_assert_max_num_queries: Any
) -> None:
    for i in range(12):
        push(f"ds{i:02d}", csv_rows(i + 1), author=editor)
    push("ds00", csv_rows(50), author=editor)
    with django_assert_max_num_queries(5):
        page = viewer_client.get("/api/v1/datasets/?page_size=5").json()
    assert page["count"] == 12 and len(page["results"]) == 5 and page["next"]
    first = page["results"][0]
    assert (first["name"], first["owner"], first["version_count"]) == ("ds00", "erin", 2)
    assert (first["latest_version"]["number"], first["latest_version"]["row_count"]) == (2, 50)
    assert viewer_client.get("/api/v1/datasets/ds03/").json()["latest_version"]["row_count"] == 4


def test_versions_are_listed_newest_first(editor: Any, viewer_client: Client) -> None:
    push(author=editor)
    push(data=csv_rows(2), author=editor)
    body = viewer_client.get(VERSIONS).json()
    assert [v["number"] for v in body["results"]] == [2, 1]
    assert body["results"][0]["parent"] == 1
    assert viewer_client.get("/api/v1/datasets/nope/versions/").status_code == 404


def test_download_streams_the_bytes_with_the_hash_as_etag(editor: Any, viewer_client: Client) -> None:
    version = push(author=editor)
    response = viewer_client.get(f"{VERSIONS}1/download", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == IRIS
    assert response["ETag"] == f'"{version.sha256}"'
    assert response["Content-Disposition"] == 'attachment; filename="iris-v1.csv"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Length"] == str(len(IRIS))


@pytest.mark.parametrize("header", ['"{sha}"', 'W/"{sha}"', '"other", "{sha}"', "*"])
def test_download_answers_304_when_the_client_has_the_bytes(editor: Any, viewer_client: Client, header: str) -> None:
    version = push(author=editor)
    response = viewer_client.get(f"{VERSIONS}1/download", HTTP_IF_NONE_MATCH=header.format(sha=version.sha256))
    assert response.status_code == 304
    assert response["ETag"] == f'"{version.sha256}"'
    stale = viewer_client.get(f"{VERSIONS}1/download", HTTP_IF_NONE_MATCH='"0000"')
    assert stale.status_code == 200


def test_deleting_a_version_with_dependants_is_a_409_listing_them(
    editor: Any, editor_client: Client, dependants: Callable[..., None]
) -> None:
    version = push(author=editor)
    dependants(version.pk, Dependant("run", "train-7", "/experiments/runs/7/"))
    response = editor_client.delete(f"{VERSIONS}1/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "in_use" and "run train-7" in error["message"]
    assert error["details"]["dependants"] == [{"kind": "run", "label": "train-7", "url": "/experiments/runs/7/"}]
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_only_the_owner_the_author_or_an_admin_may_delete_a_version(
    editor: Any, django_user_model: Any, admin_client: Client, viewer_client: Client
) -> None:
    from tests.conftest import make_user

    other = make_user(django_user_model, "oscar", "editor")
    other_client = Client()
    other_client.force_login(other)
    push(author=editor)
    push(data=csv_rows(2), author=other)  # oscar authored v2 of erin's dataset
    assert other_client.delete(f"{VERSIONS}1/").status_code == 403
    assert viewer_client.delete(f"{VERSIONS}1/").status_code == 403
    assert other_client.delete(f"{VERSIONS}2/").status_code == 204
    assert admin_client.delete(f"{VERSIONS}1/").status_code == 204
    assert not DatasetVersion.objects.exists() and Dataset.objects.filter(name="iris").exists()


def test_a_missing_version_is_a_json_404(viewer_client: Client) -> None:
    response = viewer_client.get(f"{VERSIONS}9/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"

"""The DVC remote's HTTP protocol, edge by edge, and making a pushed file a version (`from-dvc`)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from datasets import dvc
from datasets.models import Blob, DatasetVersion, DvcObject
from datasets.services import collect_garbage
from datasets.storage import get_storage
from tests.conftest import bearer
from tests.datasets.conftest import stored_files
from tests.datasets.factories import IRIS, push

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("blob_backend")]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324  (DVC's own addressing)


def url(data_or_md5: bytes | str, *, remote: str = "proj", suffix: str = "", legacy: bool = False) -> str:
    digest = data_or_md5 if isinstance(data_or_md5, str) else md5(data_or_md5)
    layout = "" if legacy else "files/md5/"
    return f"/dvc/{remote}/{layout}{digest[:2]}/{digest[2:]}{suffix}"


def api(user: Any) -> Client:
    return Client(**bearer(user))


def dvc_push(client: Client, data: bytes, path: str | None = None, method: str = "post", **extra: Any) -> Any:
    send = getattr(client, method)
    return send(path or url(data), data, content_type="application/octet-stream", **extra)


def test_an_editor_pushes_an_object_and_a_viewer_reads_it_back(editor: Any, viewer: Any) -> None:
    response = dvc_push(api(editor), IRIS)
    assert response.status_code == 201, response.content
    assert response.json() == {"remote": "proj", "oid": md5(IRIS), "created": True}
    obj = DvcObject.objects.get()
    assert (obj.remote, obj.md5, obj.is_dir, obj.pushed_by, obj.blob.sha256) == (
        "proj",
        md5(IRIS),
        False,
        editor,
        hashlib.sha256(IRIS).hexdigest(),
    )
    reader = api(viewer)
    got = reader.get(url(IRIS))
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == IRIS
    assert (got["Content-Length"], got["Accept-Ranges"], got["ETag"]) == (str(len(IRIS)), "bytes", f'"{md5(IRIS)}"')
    head = reader.head(url(IRIS))
    assert (head.status_code, head["Content-Length"], head.content) == (200, str(len(IRIS)), b"")


def test_put_works_like_post_for_remotes_configured_with_method_put(editor: Any) -> None:
    assert dvc_push(api(editor), IRIS, method="put").status_code == 201
    assert DvcObject.objects.count() == 1


def test_pushing_an_object_again_is_idempotent(editor: Any, store: Path) -> None:
    client = api(editor)
    assert dvc_push(client, IRIS).status_code == 201
    again = dvc_push(client, IRIS)
    assert again.status_code == 200 and again.json()["created"] is False
    assert (DvcObject.objects.count(), Blob.objects.count()) == (1, 1)
    assert len(stored_files(store)) == 1


def test_a_body_whose_md5_is_not_the_one_in_the_url_is_refused_and_nothing_is_stored(editor: Any, store: Path) -> None:
    response = dvc_push(api(editor), b"other bytes", path=url(IRIS))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "digest_mismatch"
    assert md5(b"other bytes") in response.json()["error"]["message"]
    assert (DvcObject.objects.count(), Blob.objects.count(), stored_files(store)) == (0, 0, [])


def test_an_object_over_the_upload_cap_is_refused_with_413(editor: Any, settings: Any, store: Path) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 10
    response = dvc_push(api(editor), IRIS)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert (DvcObject.objects.count(), stored_files(store)) == (0, [])


def test_a_viewer_cannot_push(viewer: Any, store: Path) -> None:
    response = dvc_push(api(viewer), IRIS)
    assert response.status_code == 403
    assert (DvcObject.objects.count(), stored_files(store)) == (0, [])


def test_anonymous_and_wrong_credentials_get_401_for_reads_and_writes(editor: Any) -> None:
    dvc_push(api(editor), IRIS)
    anonymous = Client()
    assert anonymous.get(url(IRIS)).status_code == 401
    assert dvc_push(anonymous, b"x", path=url(b"x")).status_code == 401
    wrong = Client(HTTP_AUTHORIZATION="Bearer mlp_not-a-token")
    assert wrong.get(url(IRIS)).status_code == 401
    assert dvc_push(wrong, b"x", path=url(b"x")).status_code == 401
    assert DvcObject.objects.count() == 1


def test_basic_credentials_with_the_users_password_work(editor: Any) -> None:
    import base64

    from tests.conftest import PASSWORD

    token = base64.b64encode(f"erin:{PASSWORD}".encode()).decode()
    client = Client(HTTP_AUTHORIZATION=f"Basic {token}")
    assert dvc_push(client, IRIS).status_code == 201
    assert client.head(url(IRIS)).status_code == 200


def test_a_missing_object_is_404_for_head_and_get(viewer: Any) -> None:
    client = api(viewer)
    assert client.head(url(IRIS)).status_code == 404
    response = client.get(url(IRIS))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_objects_of_one_remote_are_not_found_in_another(editor: Any) -> None:
    client = api(editor)
    dvc_push(client, IRIS, path=url(IRIS, remote="team-a"))
    assert client.head(url(IRIS, remote="team-a")).status_code == 200
    assert client.head(url(IRIS, remote="team-b")).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/dvc/proj/files/md5",  # DVC's listing probe during `dvc status -c`
        "/dvc/proj/files/md5/ab",
        "/dvc/proj/files/md5/AB/" + "c" * 30,  # upper case
        "/dvc/proj/files/md5/ab/" + "c" * 29,  # too short
        "/dvc/proj/files/md5/ab/" + "c" * 30 + ".txt",
        "/dvc/proj/files/md5/ab/" + "g" * 30,
        "/dvc/proj/files/md5/../../sha256/ab/" + "c" * 62,
        "/dvc/proj/files/md5/ab/%2e%2e/" + "c" * 30,
        "/dvc/../datasets/files/md5/ab/" + "c" * 30,
        "/dvc/-bad/files/md5/ab/" + "c" * 30,
        "/dvc/",
    ],
)
def test_anything_but_a_hex_object_name_is_404_and_touches_nothing(editor: Any, store: Path, path: str) -> None:
    client = api(editor)
    assert client.get(path).status_code == 404
    assert client.post(path, IRIS, content_type="application/octet-stream").status_code == 404
    assert (DvcObject.objects.count(), stored_files(store)) == (0, [])


def test_the_legacy_layout_names_the_same_objects(editor: Any) -> None:
    client = api(editor)
    assert dvc_push(client, IRIS, path=url(IRIS, legacy=True)).status_code == 201
    assert client.head(url(IRIS)).status_code == 200


def test_directory_manifests_are_stored_as_dir_objects(editor: Any) -> None:
    manifest = json.dumps([{"md5": md5(IRIS), "relpath": "iris.csv"}]).encode()
    client = api(editor)
    assert dvc_push(client, manifest, path=url(manifest, suffix=".dir")).status_code == 201
    assert DvcObject.objects.get().is_dir
    assert client.head(url(manifest, suffix=".dir")).status_code == 200
    assert client.head(url(manifest)).status_code == 404  # the plain name is another object


def test_ranges_are_served_as_206_and_bad_ones_as_416(editor: Any) -> None:
    client = api(editor)
    dvc_push(client, IRIS)
    part = client.get(url(IRIS), HTTP_RANGE="bytes=0-9")
    assert part.status_code == 206
    assert b"".join(part.streaming_content) == IRIS[:10]
    assert (part["Content-Range"], part["Content-Length"]) == (f"bytes 0-9/{len(IRIS)}", "10")
    tail = client.get(url(IRIS), HTTP_RANGE="bytes=-5")
    assert b"".join(tail.streaming_content) == IRIS[-5:]
    whole = client.get(url(IRIS), HTTP_RANGE=f"bytes=0-{len(IRIS) - 1}")  # what DVC asks for a .dir manifest
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == IRIS
    beyond = client.get(url(IRIS), HTTP_RANGE=f"bytes={len(IRIS)}-")
    assert (beyond.status_code, beyond["Content-Range"]) == (416, f"bytes */{len(IRIS)}")


def test_an_empty_file_is_a_valid_object(editor: Any) -> None:
    client = api(editor)
    assert dvc_push(client, b"").status_code == 201
    response = client.get(url(b""))
    assert (response.status_code, b"".join(response.streaming_content)) == (200, b"")


def test_other_methods_are_405(editor: Any) -> None:
    assert api(editor).delete(url(IRIS)).status_code == 405


def test_garbage_collection_keeps_blobs_that_dvc_objects_use(editor: Any) -> None:
    dvc_push(api(editor), IRIS)
    report = collect_garbage()
    assert report.blobs == []
    assert api(editor).get(url(IRIS)).status_code == 200


def test_the_chunked_body_decoder_reads_exactly_the_body() -> None:
    from datasets.dvc_views import _dechunk

    raw = io.BytesIO(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT REQUEST")
    assert b"".join(_dechunk(raw.read, raw.readline)) == b"Wikipedia"
    assert raw.read() == b"NEXT REQUEST"


def test_a_truncated_chunked_body_is_an_incomplete_upload() -> None:
    from datasets.dvc_views import _dechunk
    from datasets.storage import IncompleteUpload

    raw = io.BytesIO(b"10\r\nonly-five")
    with pytest.raises(IncompleteUpload):
        b"".join(_dechunk(raw.read, raw.readline))


# from-dvc: a pushed file becomes a dataset version ------------------------------------------------


def from_dvc(client: Client, name: str = "iris", **body: Any) -> Any:
    return client.post(f"/api/v1/datasets/{name}/versions/from-dvc", body, content_type="application/json")


def test_a_pushed_file_becomes_a_version_with_one_call(editor: Any) -> None:
    client = api(editor)
    dvc_push(client, IRIS)
    response = from_dvc(client, md5=md5(IRIS), filename="iris.csv", message="from dvc")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["created"], body["number"], body["row_count"], body["format"], body["filename"]) == (
        True,
        1,
        3,
        "csv",
        "iris.csv",
    )
    assert (body["sha256"], body["md5"], body["author"]) == (hashlib.sha256(IRIS).hexdigest(), md5(IRIS), "erin")
    assert Blob.objects.count() == 1  # the version and the DVC object share the bytes
    again = from_dvc(client, md5=f"  {md5(IRIS).upper()} ")
    assert again.status_code == 200 and again.json()["created"] is False


def test_from_dvc_of_content_a_version_already_has_says_so(editor: Any) -> None:
    push(author=editor)
    client = api(editor)
    dvc_push(client, IRIS)
    response = from_dvc(client, md5=md5(IRIS))
    assert (response.status_code, response.json()["number"], response.json()["created"]) == (200, 1, False)


def test_from_dvc_of_an_unknown_or_malformed_md5_is_404_or_400(editor: Any) -> None:
    client = api(editor)
    missing = from_dvc(client, md5="0" * 32)
    assert missing.status_code == 404 and "dvc push" in missing.json()["error"]["message"]
    bad = from_dvc(client, md5="../../etc/passwd")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "md5"
    assert not DatasetVersion.objects.exists()


def test_from_dvc_runs_the_same_inspection_as_a_push(editor: Any) -> None:
    client = api(editor)
    ragged = b"a,b\n1,2\n3\n"
    dvc_push(client, ragged)
    response = from_dvc(client, md5=md5(ragged), filename="bad.csv")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_dataset"
    assert not DatasetVersion.objects.exists()


def test_a_viewer_cannot_make_a_version_from_dvc(editor: Any, viewer: Any) -> None:
    dvc_push(api(editor), IRIS)
    assert from_dvc(api(viewer), md5=md5(IRIS)).status_code == 403


def test_a_pushed_directory_becomes_a_directory_version(editor: Any) -> None:
    client = api(editor)
    files = {"images/b.txt": b"bee\n", "a.txt": b"ay\n"}
    for data in files.values():
        dvc_push(client, data)
    manifest = json.dumps([{"md5": md5(d), "relpath": p} for p, d in sorted(files.items())]).encode()
    dvc_push(client, manifest, path=url(manifest, suffix=".dir"))
    response = from_dvc(client, name="pics", md5=f"{md5(manifest)}.dir")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["format"], body["filename"]) == ("directory", "pics.tar")
    assert [(m["path"], m["size"]) for m in body["manifest"]] == [("a.txt", 3), ("images/b.txt", 4)]
    version = DatasetVersion.objects.get()
    with get_storage().open(version.blob_id) as handle, tarfile.open(fileobj=handle) as archive:
        assert {m.name: archive.extractfile(m).read() for m in archive.getmembers()} == files  # type: ignore[union-attr]


def test_a_directory_whose_files_were_not_pushed_is_refused(editor: Any) -> None:
    client = api(editor)
    manifest = json.dumps([{"md5": md5(b"never pushed"), "relpath": "x.txt"}]).encode()
    dvc_push(client, manifest, path=url(manifest, suffix=".dir"))
    response = from_dvc(client, md5=f"{md5(manifest)}.dir")
    assert response.status_code == 404 and "x.txt" in response.json()["error"]["message"]


def test_the_dataset_page_offers_the_dvc_form_to_editors_and_it_creates_a_version(
    editor: Any, editor_client: Client
) -> None:
    push(author=editor)
    other = b"id,value\n1,2\n"
    dvc_push(api(editor), other)
    page = editor_client.get("/datasets/iris/").content.decode()
    assert 'id="from-dvc-form"' in page
    response = editor_client.post(
        "/datasets/iris/versions/from-dvc/", {"md5": md5(other), "filename": "v2.csv", "message": "m"}
    )
    assert response.status_code == 302 and response["Location"] == "/datasets/iris/versions/2/"
    assert DatasetVersion.objects.get(number=2).row_count == 1
    bad = editor_client.post("/datasets/iris/versions/from-dvc/", {"md5": "1" * 32}, follow=True)
    assert "No object" in bad.content.decode()


def test_the_dvc_form_is_not_shown_to_viewers(editor: Any, viewer_client: Client) -> None:
    push(author=editor)
    assert 'id="from-dvc-form"' not in viewer_client.get("/datasets/iris/").content.decode()


def test_parse_oid_accepts_what_a_dvc_file_holds() -> None:
    assert str(dvc.parse_oid("C3C6BC2AE8ECE4BD2510DCA21225C041")) == "c3c6bc2ae8ece4bd2510dca21225c041"
    assert dvc.parse_oid("3d94c44bc6da26cf1791a06d2cc7f45f.dir").is_dir
    with pytest.raises(dvc.InvalidDvcObject):
        dvc.parse_oid("3d94c44bc6da26cf1791a06d2cc7f45f.txt")

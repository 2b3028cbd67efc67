"""The artifact store behind `mlflow-artifacts:/` URIs: round trips, hostile paths, limits, headers, permissions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.test import Client

from experiments import artifacts, services
from experiments.artifacts import ArtifactPathError, ArtifactTooLarge
from experiments.models import Experiment, Run
from tests.conftest import bearer, make_user

PREFIX = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    """The artifact root, inside tmp_path so that tmp_path itself is "outside" and can hold bait."""
    root = tmp_path / "store"
    root.mkdir()
    settings.ARTIFACT_ROOT = root
    (tmp_path / "outside.txt").write_text("the secret")
    return root


@pytest.fixture
def run(editor: Any, store: Path) -> Run:
    experiment = services.create_experiment("art", owner=editor)
    return services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])


def run_dir(run: Run) -> str:
    return artifacts.relative_of_uri(run.artifact_uri)  # "<experiment_id>/<run_id>/artifacts"


def put(client: Client, relative: str, content: bytes, **extra: Any) -> Any:
    return client.put(f"{PREFIX}/{relative}", content, content_type="application/octet-stream", **extra)


def listing(client: Client, relative: str) -> Any:
    return client.get(PREFIX, {"path": relative})


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# Round trips -------------------------------------------------------------------------------------


def test_artifacts_round_trip_through_upload_list_download_and_delete(editor_client: Client, run: Run) -> None:
    root = run_dir(run)
    response = put(editor_client, f"{root}/model.bin", b"\x00\x01weights")
    assert response.status_code == 200 and response.json() == {}
    assert put(editor_client, f"{root}/sub/deeper/notes.txt", b"hello").status_code == 200
    assert put(editor_client, f"{root}/sub/a.csv", b"x,y\n1,2\n").status_code == 200

    assert listing(editor_client, root).json() == {
        "files": [
            {"path": "model.bin", "is_dir": False, "file_size": 9},
            {"path": "sub", "is_dir": True},
        ]
    }
    assert listing(editor_client, f"{root}/sub").json() == {
        "files": [{"path": "a.csv", "is_dir": False, "file_size": 8}, {"path": "deeper", "is_dir": True}]
    }
    download = editor_client.get(f"{PREFIX}/{root}/sub/deeper/notes.txt")
    assert download.status_code == 200 and body(download) == b"hello"
    assert body(editor_client.get(f"{PREFIX}/{root}/model.bin")) == b"\x00\x01weights"

    assert editor_client.delete(f"{PREFIX}/{root}/model.bin").json() == {}
    assert editor_client.get(f"{PREFIX}/{root}/model.bin").json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert editor_client.delete(f"{PREFIX}/{root}/sub").status_code == 200
    assert editor_client.delete(f"{PREFIX}/{root}/sub").status_code == 200  # a retried delete is fine
    assert listing(editor_client, root).json() == {}  # MLflow leaves out an empty "files"


def test_deleting_a_whole_artifact_root_accepts_the_trailing_slash_the_client_sends(
    editor_client: Client, run: Run, store: Path
) -> None:
    root = run_dir(run)
    put(editor_client, f"{root}/sub/notes.txt", b"hello")
    assert editor_client.delete(f"{PREFIX}/{root}/").status_code == 200
    assert not (store / root).exists()
    assert put(editor_client, f"{root}/sub/", b"x").status_code == 400  # but a file needs a name


def test_the_legacy_tracking_listing_answers_paths_relative_to_the_run(editor_client: Client, run: Run) -> None:
    root = run_dir(run)
    put(editor_client, f"{root}/sub/notes.txt", b"hello")
    put(editor_client, f"{root}/top.txt", b"1")
    response = editor_client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.pk})
    assert response.json() == {
        "root_uri": run.artifact_uri,
        "files": [{"path": "sub", "is_dir": True}, {"path": "top.txt", "is_dir": False, "file_size": 1}],
    }
    nested = editor_client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.pk, "path": "sub"}).json()
    assert nested["files"] == [{"path": "sub/notes.txt", "is_dir": False, "file_size": 5}]
    empty = editor_client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.pk, "path": "nothing"}).json()
    assert empty == {"root_uri": run.artifact_uri}
    bad = editor_client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.pk, "path": "../../.."})
    assert bad.status_code == 400


def test_a_5_mb_upload_is_streamed_in_pieces_and_never_read_whole(
    editor_client: Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    original_read = WSGIRequest.read

    def spying_read(self: WSGIRequest, *args: Any, **kwargs: Any) -> bytes:
        reads.append(args[0] if args else kwargs.get("size", -1))
        return original_read(self, *args, **kwargs)

    def no_body(self: WSGIRequest) -> bytes:
        raise AssertionError("the upload view read request.body")

    monkeypatch.setattr(WSGIRequest, "read", spying_read)
    monkeypatch.setattr(WSGIRequest, "body", property(no_body))
    payload = os.urandom(5 * 1024 * 1024 + 123)
    root = run_dir(run)
    assert put(editor_client, f"{root}/big/weights.bin", payload).status_code == 200
    monkeypatch.undo()

    assert reads and all(0 < size <= 1 << 20 for size in reads), reads
    download = editor_client.get(f"{PREFIX}/{root}/big/weights.bin")
    assert int(download["Content-Length"]) == len(payload)
    assert body(download) == payload


def test_a_retried_upload_replaces_the_file_and_leaves_no_temp_files(
    editor_client: Client, run: Run, store: Path
) -> None:
    root = run_dir(run)
    assert put(editor_client, f"{root}/model.bin", b"first attempt").status_code == 200
    assert put(editor_client, f"{root}/model.bin", b"second").status_code == 200
    assert body(editor_client.get(f"{PREFIX}/{root}/model.bin")) == b"second"
    assert os.listdir(store / root) == ["model.bin"]


def test_header_authenticated_uploads_need_no_csrf_token(editor: Any, run: Run) -> None:
    client = Client(enforce_csrf_checks=True)
    response = put(client, f"{run_dir(run)}/f.txt", b"via token", **bearer(editor))
    assert response.status_code == 200, response.content
    assert body(client.get(f"{PREFIX}/{run_dir(run)}/f.txt", **bearer(editor))) == b"via token"


# Hostile paths -----------------------------------------------------------------------------------

# Each climbs from <experiment>/<run>/artifacts/ to tmp_path/outside.txt, or smuggles in a character
# that means something else to some layer. Django's WSGI handler has decoded the URL once already.
BAD_SUFFIXES = {
    "dot-dot": "../../../../outside.txt",
    "encoded dot-dot": "%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside.txt",
    "double-encoded dot-dot": "%252e%252e/%252e%252e/%252e%252e/%252e%252e/outside.txt",
    "encoded slash and dot-dot": "..%2f..%2f..%2f..%2foutside.txt",
    "backslash": "..%5c..%5c..%5c..%5coutside.txt",
    "hash": "notes%23.txt",
    "semicolon": "notes;type=a.txt",
    "question mark": "notes%3F.txt",
    "NUL": "notes.txt%00.png",
    "control character": "notes%01.txt",
    "escape character": "notes%1b[31m.txt",
    "empty segment": "sub//notes.txt",
    "dot segment": "./notes.txt",
    "reserved temp name": ".mlops-upload-abc.part",
}


@pytest.mark.parametrize("suffix", BAD_SUFFIXES.values(), ids=BAD_SUFFIXES.keys())
def test_it_rejects_hostile_paths_for_every_operation(
    editor_client: Client, run: Run, store: Path, tmp_path: Path, suffix: str
) -> None:
    before = files_under(tmp_path)
    relative = f"{run_dir(run)}/{suffix}"
    for response in (
        put(editor_client, relative, b"pwned"),
        editor_client.get(f"{PREFIX}/{relative}"),
        editor_client.delete(f"{PREFIX}/{relative}"),
        editor_client.get(f"{PREFIX}?path={relative}"),
    ):
        assert response.status_code == 400, (suffix, response.status_code, response.content)
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert files_under(tmp_path) == before
    assert (tmp_path / "outside.txt").read_text() == "the secret"


@pytest.mark.parametrize("absolute", ["/etc/passwd", "%2Fetc%2Fpasswd", "%252Fetc%252Fpasswd"])
def test_it_rejects_absolute_paths(editor_client: Client, store: Path, absolute: str) -> None:
    for response in (
        editor_client.get(f"{PREFIX}/{absolute}"),
        put(editor_client, absolute, b"pwned"),
        editor_client.get(PREFIX, {"path": absolute.replace("%2F", "/")}),
    ):
        assert response.status_code == 400, (absolute, response.content)
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert b"root:" not in response.content


def test_it_rejects_a_symlink_inside_the_root_that_points_outside(
    editor_client: Client, run: Run, store: Path, tmp_path: Path
) -> None:
    bait = tmp_path / "bait"
    bait.mkdir()
    (bait / "secret.txt").write_text("the secret")
    root = run_dir(run)
    (store / root).mkdir(parents=True)
    (store / root / "dir-link").symlink_to(bait)
    (store / root / "file-link").symlink_to(tmp_path / "outside.txt")
    (store / root / "kept.txt").write_text("ok")

    for relative in (f"{root}/dir-link/secret.txt", f"{root}/file-link"):
        response = editor_client.get(f"{PREFIX}/{relative}")
        assert response.status_code == 400 and b"the secret" not in response.content
    assert put(editor_client, f"{root}/dir-link/new.txt", b"pwned").status_code == 400
    assert put(editor_client, f"{root}/file-link", b"pwned").status_code == 400
    assert editor_client.delete(f"{PREFIX}/{root}/dir-link").status_code == 400
    assert listing(editor_client, f"{root}/dir-link").status_code == 400
    # The listing of the directory holding the links does not reveal them.
    assert listing(editor_client, root).json() == {"files": [{"path": "kept.txt", "is_dir": False, "file_size": 2}]}
    assert os.listdir(bait) == ["secret.txt"]
    assert (tmp_path / "outside.txt").read_text() == "the secret"


def test_a_symlink_into_another_experiment_is_refused_too(
    editor_client: Client, run: Run, store: Path, editor: Any
) -> None:
    other = services.create_experiment("other", owner=editor)
    (store / str(other.pk)).mkdir()
    (store / str(other.pk) / "theirs.txt").write_text("theirs")
    (store / run_dir(run)).mkdir(parents=True)
    (store / run_dir(run) / "hop").symlink_to(store / str(other.pk))
    assert editor_client.get(f"{PREFIX}/{run_dir(run)}/hop/theirs.txt").status_code == 400


GOOD_PATHS = {
    "1/abc/artifacts/model/MLmodel": "1/abc/artifacts/model/MLmodel",
    "1/abc/artifacts/with space.txt": "1/abc/artifacts/with space.txt",
    "1/abc/artifacts/encoded%20space.txt": "1/abc/artifacts/encoded space.txt",
    "1/abc/artifacts/100%.txt": "1/abc/artifacts/100%.txt",
    "1/abc/artifacts/...": "1/abc/artifacts/...",
    "1/abc/artifacts/ünïcode.txt": "1/abc/artifacts/ünïcode.txt",
}


@pytest.mark.parametrize(("raw", "expected"), GOOD_PATHS.items())
def test_safe_relative_path_decodes_ordinary_paths_to_a_fixed_point(raw: str, expected: str) -> None:
    assert artifacts.safe_relative_path(raw) == expected
    assert artifacts.safe_relative_path(expected) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "..", "1/..", "1/%2e%2e/x", "1/%252e%252e/x", "/etc/passwd", "1\\x", "1/a#b", "1/a;b", "1/a?b", "1/a\x00b",
     "1/a\nb", "1/a\x7fb", "1//a", "1/./a", "1/a/", "%" + "25" * 12 + "2e"],
)  # fmt: skip
def test_safe_relative_path_rejects(raw: str) -> None:
    with pytest.raises(ArtifactPathError):
        artifacts.safe_relative_path(raw)


@pytest.mark.parametrize("relative", ["abc/x", "01/x", "-1/x", "1e3/x", "99999999999999999999/x"])
def test_a_path_must_start_with_a_canonical_experiment_id(relative: str) -> None:
    with pytest.raises(ArtifactPathError):
        artifacts.experiment_id_of(relative)


def test_a_path_outside_any_experiment_cannot_be_written_or_listed(editor_client: Client, store: Path) -> None:
    assert put(editor_client, "0", b"x").status_code == 400
    assert editor_client.get(PREFIX).status_code == 400
    assert editor_client.get(PREFIX, {"path": "not-an-id/x"}).status_code == 400
    assert not any(store.iterdir())


# Limits ------------------------------------------------------------------------------------------


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing_behind(
    editor_client: Client, run: Run, store: Path, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    root = run_dir(run)
    assert put(editor_client, f"{root}/ok.bin", b"x" * 1000).status_code == 200
    response = put(editor_client, f"{root}/big.bin", b"x" * 1001)
    assert response.status_code == 400
    assert "MAX_UPLOAD_BYTES" in response.json()["message"]
    assert os.listdir(store / root) == ["ok.bin"]


def test_a_stream_that_turns_out_too_large_is_deleted_midway(run: Run, store: Path) -> None:
    # Chunked uploads carry no Content-Length: the limit is enforced while writing.
    relative = f"{run_dir(run)}/big.bin"
    with pytest.raises(ArtifactTooLarge):
        artifacts.save_stream(relative, iter([b"x" * 600, b"x" * 600]), max_bytes=1000)
    assert os.listdir(store / run_dir(run)) == []


def test_a_chunked_upload_without_a_terminated_input_is_refused(editor_client: Client, run: Run) -> None:
    response = editor_client.generic(
        "PUT", f"{PREFIX}/{run_dir(run)}/f.bin", b"", HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH=""
    )
    assert response.status_code == 400
    assert "Content-Length" in response.json()["message"]


# Downloads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("page.html", "application/octet-stream"),
        ("image.svg", "application/octet-stream"),
        ("script.js", "application/octet-stream"),
        ("page.xhtml", "application/octet-stream"),
        ("notes.txt", "text/plain"),
        ("MLmodel", "text/plain"),
        ("metrics.json", "text/plain"),
        ("plot.png", "image/png"),
        ("weights.bin", "application/octet-stream"),
    ],
)
def test_downloads_are_attachments_that_cannot_render(
    editor_client: Client, run: Run, name: str, content_type: str
) -> None:
    relative = f"{run_dir(run)}/{name}"
    put(editor_client, relative, b"<script>alert(1)</script>")
    response = editor_client.get(f"{PREFIX}/{relative}")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == content_type


def test_downloading_a_directory_or_a_missing_file_is_a_client_error(editor_client: Client, run: Run) -> None:
    root = run_dir(run)
    put(editor_client, f"{root}/sub/f.txt", b"x")
    directory = editor_client.get(f"{PREFIX}/{root}/sub")
    assert directory.status_code == 400 and "directory" in directory.json()["message"]
    missing = editor_client.get(f"{PREFIX}/{root}/nope.txt")
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_other_methods_get_an_mlflow_error(editor_client: Client, run: Run) -> None:
    response = editor_client.post(f"{PREFIX}/{run_dir(run)}/f.txt", b"x", content_type="application/octet-stream")
    assert response.status_code == 400 and response.json()["error_code"] == "BAD_REQUEST"


# Permissions -------------------------------------------------------------------------------------


def test_a_viewer_can_read_artifacts_but_not_write_or_delete_them(
    editor_client: Client, viewer_client: Client, run: Run, store: Path
) -> None:
    root = run_dir(run)
    put(editor_client, f"{root}/model.bin", b"original")
    assert body(viewer_client.get(f"{PREFIX}/{root}/model.bin")) == b"original"
    assert listing(viewer_client, root).status_code == 200
    for response in (
        put(viewer_client, f"{root}/model.bin", b"overwritten"),
        put(viewer_client, f"{root}/new.bin", b"new"),
        viewer_client.delete(f"{PREFIX}/{root}/model.bin"),
    ):
        assert response.status_code == 403
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert os.listdir(store / root) == ["model.bin"]
    assert (store / root / "model.bin").read_bytes() == b"original"


def test_a_user_without_permission_sees_no_experiment_at_all(
    editor_client: Client, run: Run, store: Path, settings: Any, django_user_model: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    root = run_dir(run)
    put(editor_client, f"{root}/model.bin", b"private")
    stranger = Client()
    stranger.force_login(make_user(django_user_model, "sam", "editor"))
    for response in (
        stranger.get(f"{PREFIX}/{root}/model.bin"),
        listing(stranger, root),
        put(stranger, f"{root}/model.bin", b"overwritten"),
        stranger.delete(f"{PREFIX}/{root}/model.bin"),
        stranger.get("/api/2.0/mlflow/artifacts/list", {"run_id": run.pk}),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert (store / root / "model.bin").read_bytes() == b"private"


def test_a_missing_experiment_is_not_found(editor_client: Client, store: Path) -> None:
    missing = (Experiment.objects.order_by("-pk").first().pk or 0) + 100
    for response in (put(editor_client, f"{missing}/run/artifacts/f.txt", b"x"), listing(editor_client, f"{missing}")):
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert not any(store.iterdir())


def test_anonymous_uploads_are_refused_before_anything_is_written(run: Run, store: Path) -> None:
    response = put(Client(), f"{run_dir(run)}/f.txt", b"x")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert not any(store.iterdir())


# The real client ---------------------------------------------------------------------------------


def test_the_mlflow_client_logs_lists_and_downloads_artifacts(mlflow_client: Any, store: Path, tmp_path: Path) -> None:
    import mlflow

    client = mlflow_client
    experiment_id = client.create_experiment("artifacts-e2e")
    run_id = client.create_run(experiment_id).info.run_id

    single = tmp_path / "upload" / "report.txt"
    single.parent.mkdir()
    single.write_text("accuracy: 0.93\n")
    tree = tmp_path / "tree"
    (tree / "nested").mkdir(parents=True)
    (tree / "weights.bin").write_bytes(os.urandom(300_000))
    (tree / "nested" / "config.json").write_text(json.dumps({"lr": 0.01}))

    client.log_artifact(run_id, str(single))
    client.log_artifacts(run_id, str(tree), "sub")

    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in top] == [("report.txt", False), ("sub", True)]
    assert top[0].file_size == len("accuracy: 0.93\n")
    assert [f.path for f in client.list_artifacts(run_id, "sub")] == ["sub/nested", "sub/weights.bin"]

    destination = tmp_path / "download"
    destination.mkdir()
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="sub", dst_path=str(destination))
    assert (Path(local) / "weights.bin").read_bytes() == (tree / "weights.bin").read_bytes()
    assert (Path(local) / "nested" / "config.json").read_text() == json.dumps({"lr": 0.01})
    report = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report.txt", dst_path=str(destination))
    assert Path(report).read_text() == "accuracy: 0.93\n"
    # The bytes really live in the portal's store, where the run's artifact URI says.
    stored = store / artifacts.relative_of_uri(Run.objects.get(pk=run_id).artifact_uri) / "sub" / "weights.bin"
    assert stored.read_bytes() == (tree / "weights.bin").read_bytes()

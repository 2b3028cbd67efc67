"""The founding document's DVC commands, run by the real `dvc` client against a live portal.

    dvc init
    dvc add data/my_dataset.csv
    dvc remote add -d myremote <portal>/dvc/<name>
    dvc push

then a fresh clone `dvc pull`s the bytes back. Once against the live server of the tests (Django's
development server, which cannot decode chunked bodies itself), once against the production web
server as `./portal up` runs it (granian), which does it for us (that one needs PostgreSQL: it is
another process).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.db import connection
from django.test import Client

from accounts.services import create_api_token
from datasets.models import DatasetVersion, DvcObject
from tests.conftest import PASSWORD
from tests.services import child_env, free_port, require_postgres, running, start_web

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
DATASET = b"sepal_length,sepal_width,species\n" + b"".join(
    b"%d.%d,%d.5,%s\n" % (i % 7, i % 10, i % 4, (b"setosa", b"versicolor", b"virginica")[i % 3]) for i in range(2000)
)
IMAGES = {"1.png": b"\x89PNG\r\n\x1a\nfirst", "2.png": b"\x89PNG\r\n\x1a\nsecond", "raw/3.bin": bytes(range(256)) * 40}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324  (DVC's own addressing)


class Workspace:
    """Runs `git` and `dvc` (from this virtualenv) with argument lists, isolated under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        home = tmp_path / "home"
        home.mkdir()
        self.env = {
            key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")
        }  # the client trusts proxy variables; the portal is local
        self.env.update(
            {
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "DVC_NO_ANALYTICS": "1",
                "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_TERMINAL_PROMPT": "0",
                "NO_PROXY": "*",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        # The in-memory SQLite database of the live server is one connection that its request threads
        # share; parallel transfers would interleave their transactions on it.
        self.jobs = ["--jobs", "1"] if connection.vendor == "sqlite" else []

    def run(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        program = str(BIN / "dvc") if args[0] == "dvc" else shutil.which(args[0]) or args[0]
        done = subprocess.run(
            [program, *args[1:]], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def dvc(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(cwd, "dvc", *args, check=check)

    def new_repo(self, name: str = "project") -> Path:
        repo = self.tmp / name
        repo.mkdir()
        self.run(repo, "git", "init", "-q")
        self.identify(repo)
        self.dvc(repo, "init", "-q")
        self.dvc(repo, "config", "core.analytics", "false")
        return repo

    def identify(self, repo: Path) -> None:
        self.run(repo, "git", "config", "user.name", "Test")
        self.run(repo, "git", "config", "user.email", "test@example.com")

    def commit(self, repo: Path, message: str) -> None:
        self.run(repo, "git", "add", "-A")
        self.run(repo, "git", "commit", "-q", "-m", message)

    def clone(self, repo: Path, name: str) -> Path:
        target = self.tmp / name
        self.run(self.tmp, "git", "clone", "-q", str(repo), str(target))
        self.identify(target)
        return target

    def use_token(self, repo: Path, token: str) -> None:
        """DVC's `custom` auth: the header named by custom_auth_header, with `password` as its value."""
        self.dvc(repo, "remote", "modify", "--local", "myremote", "auth", "custom")
        self.dvc(repo, "remote", "modify", "--local", "myremote", "custom_auth_header", "Authorization")
        self.dvc(repo, "remote", "modify", "--local", "myremote", "password", f"Bearer {token}")

    def use_basic(self, repo: Path, user: str, password: str) -> None:
        self.dvc(repo, "remote", "modify", "--local", "myremote", "auth", "basic")
        self.dvc(repo, "remote", "modify", "--local", "myremote", "user", user)
        self.dvc(repo, "remote", "modify", "--local", "myremote", "password", password)


def dvc_file_md5(path: Path) -> str:
    return str(yaml.safe_load(path.read_text())["outs"][0]["md5"])


def round_trip(work: Workspace, portal: str, editor: Any, viewer: Any) -> tuple[Path, Path]:
    """The founding document's commands, a push by the editor (token) and a pull by a viewer (Basic)."""
    repo = work.new_repo()
    (repo / "data").mkdir()
    (repo / "data" / "my_dataset.csv").write_bytes(DATASET)
    work.dvc(repo, "add", "data/my_dataset.csv")
    work.dvc(repo, "remote", "add", "-d", "myremote", f"{portal}/dvc/my_dataset")
    work.use_token(repo, create_api_token(editor, "dvc").secret)
    work.commit(repo, "Track the dataset with DVC")
    pushed = work.dvc(repo, "push", *work.jobs)
    assert "1 file pushed" in pushed.stdout, pushed.stdout

    clone = work.clone(repo, "clone")
    work.use_basic(clone, viewer.username, PASSWORD)
    work.dvc(clone, "pull", *work.jobs)
    assert (clone / "data" / "my_dataset.csv").read_bytes() == DATASET
    assert "in sync" in work.dvc(clone, "status", "--cloud", *work.jobs).stdout
    return repo, clone


def test_the_founding_documents_dvc_commands_push_to_and_pull_from_the_portal(
    live_server: Any, editor: Any, viewer: Any, tmp_path: Path
) -> None:
    work = Workspace(tmp_path)
    repo, clone = round_trip(work, live_server.url, editor, viewer)
    digest = dvc_file_md5(repo / "data" / "my_dataset.csv.dvc")
    assert digest == md5(DATASET)
    assert DvcObject.objects.get(remote="my_dataset", md5=digest).pushed_by == editor

    # A directory: its files and its `.dir` manifest, both ways.
    for relpath, data in IMAGES.items():
        (repo / "data" / "images" / relpath).parent.mkdir(parents=True, exist_ok=True)
        (repo / "data" / "images" / relpath).write_bytes(data)
    work.dvc(repo, "add", "data/images")
    work.commit(repo, "Track the images")
    assert "4 files pushed" in work.dvc(repo, "push", *work.jobs).stdout  # three files and the manifest
    work.run(clone, "git", "pull", "-q", "--no-rebase")
    work.dvc(clone, "pull", *work.jobs)
    for relpath, data in IMAGES.items():
        assert (clone / "data" / "images" / relpath).read_bytes() == data
    directory = dvc_file_md5(repo / "data" / "images.dvc")
    assert directory.endswith(".dir")

    # A wrong token: the push fails and nothing is stored.
    (repo / "data" / "extra.csv").write_bytes(b"a,b\n1,2\n")
    work.dvc(repo, "add", "data/extra.csv")
    work.use_token(repo, "mlp_wrong")
    failed = work.dvc(repo, "push", *work.jobs, check=False)
    assert failed.returncode != 0, failed.stdout
    assert not DvcObject.objects.filter(md5=md5(b"a,b\n1,2\n")).exists()

    # One call makes the pushed file, and the pushed directory, dataset versions.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(editor, 'api').secret}")
    response = api.post(
        "/api/v1/datasets/my_dataset/versions/from-dvc",
        {"md5": digest, "filename": "my_dataset.csv", "message": "from dvc"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["sha256"], body["row_count"], body["format"]) == (hashlib.sha256(DATASET).hexdigest(), 2000, "csv")
    response = api.post(
        "/api/v1/datasets/images/versions/from-dvc", {"md5": directory}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert sorted(m["path"] for m in response.json()["manifest"]) == sorted(IMAGES)
    assert DatasetVersion.objects.count() == 2


def test_dvc_push_and_pull_through_the_production_web_server(
    transactional_db: None, editor: Any, viewer: Any, tmp_path: Path, settings: Any
) -> None:
    require_postgres()
    port = free_port()
    env = child_env(tmp_path, ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), SITE_URL=f"http://127.0.0.1:{port}")
    with running(start_web(env, port)):
        (tmp_path / "work").mkdir()
        work = Workspace(tmp_path / "work")
        work.jobs = []
        round_trip(work, f"http://127.0.0.1:{port}", editor, viewer)
    assert DvcObject.objects.filter(remote="my_dataset", md5=md5(DATASET)).exists()

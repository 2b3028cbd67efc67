"""The Dockerfile and the scripts it runs: what can be checked without building the image."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.compose import (
    DEPLOY,
    ROOT,
    command_of,
    dockerfile_env,
    dockerfile_instructions,
    load_compose,
    mount_of,
)

INSTRUCTIONS = dockerfile_instructions()
SERVICES = load_compose()["services"]


def arguments(keyword: str) -> list[str]:
    return [args for kw, args in INSTRUCTIONS if kw == keyword]


def test_the_image_is_built_on_python_3_11_slim() -> None:
    assert arguments("FROM") == ["python:3.11-slim"]


def test_the_image_installs_the_pinned_requirements_before_copying_the_code() -> None:
    runs = [args for kw, args in INSTRUCTIONS if kw in {"RUN", "COPY"}]
    install = next(i for i, args in enumerate(runs) if "pip install -r requirements.txt" in args)
    copy_all = runs.index(". .")
    assert runs.index("requirements.txt .") < install < copy_all


def test_static_files_are_collected_at_build_time_with_a_throwaway_key() -> None:
    collect = [args for args in arguments("RUN") if "collectstatic" in args]
    assert len(collect) == 1
    assert "SECRET_KEY=" in collect[0]
    assert "--noinput" in collect[0]


def test_the_container_runs_as_a_non_root_user() -> None:
    users = arguments("USER")
    assert users, "no USER instruction: the container would run as root"
    assert users[-1] not in {"root", "0"}


def test_the_default_command_is_granian_on_port_8000() -> None:
    assert arguments("EXPOSE") == ["8000"]
    command = json.loads(arguments("CMD")[-1])
    assert command[0] == "granian"
    assert command[-1] == "mlops_portal.wsgi:application"
    assert command[command.index("--port") + 1] == "8000"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    assert command == command_of(SERVICES["web"]), "compose's web command and the image's CMD drifted apart"


def test_the_entry_point_is_an_executable_script_of_the_repository() -> None:
    (entrypoint,) = json.loads(arguments("ENTRYPOINT")[-1])
    # The project is copied to WORKDIR (/app), so /app/x in the image is x in the repository.
    assert arguments("WORKDIR") == ["/app"]
    path = ROOT / Path(entrypoint).relative_to("/app")
    assert path.is_file()
    assert path.stat().st_mode & stat.S_IXUSR


def test_prometheus_multiprocess_files_go_to_a_directory_the_entry_point_clears() -> None:
    multiproc = dockerfile_env()["PROMETHEUS_MULTIPROC_DIR"]
    assert multiproc.startswith("/tmp/")  # writable by the non-root user, never a volume
    assert "PROMETHEUS_MULTIPROC_DIR" in (DEPLOY / "entrypoint.sh").read_text()


def test_every_volume_of_the_portal_image_is_prepared_for_the_non_root_user() -> None:
    # An empty named volume takes the owner of the directory it is mounted on, so each mount point
    # must exist in the image and belong to the user, or the portal cannot write to it.
    prepared = " ".join(args for args in arguments("RUN") if "chown" in args)
    for name in ["migrate", "web", "worker", "beat"]:
        for entry in SERVICES[name].get("volumes", []):
            target = entry.split(":")[1]
            assert target in prepared, f"{name} mounts a volume on {target}, which the Dockerfile does not chown"


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in [".venv", ".git", "var", ".env"]:
        assert path in ignored, path


def test_the_bootstrap_migrates_and_registers_a_metrics_token_that_stays_put(tmp_path: Path) -> None:
    """Run deploy/bootstrap.sh as the compose `migrate` service does, twice, on a fresh SQLite database."""
    database = tmp_path / "portal.sqlite3"
    token_file = tmp_path / "metrics" / "token"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "mlops_portal.settings",
        "SECRET_KEY": "bootstrap-test-secret-key",
        "HTTPS": "false",
        "DATABASE_URL": f"sqlite:///{database}",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "PORTAL_ADMIN_PASSWORD": "an admin password for the test",
        "METRICS_TOKEN_FILE": str(token_file),
        "LOG_FORMAT": "plain",
    }
    for name in ["REDIS_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "PORTAL_ADMIN_USER"]:
        env.pop(name, None)

    def bootstrap() -> str:
        result = subprocess.run(
            [str(DEPLOY / "bootstrap.sh")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    first = bootstrap()
    secret = token_file.read_text().strip()
    assert "Generated a new metrics token" in first
    assert secret.startswith("mlp_") and len(secret) >= 36
    assert secret not in first
    # Prometheus runs as another user (nobody) and must be able to read the file.
    assert token_file.stat().st_mode & stat.S_IROTH

    second = bootstrap()
    assert "Generated" not in second
    assert "already active" in second
    assert token_file.read_text().strip() == secret

    with sqlite3.connect(database) as db:
        tokens = db.execute(
            "SELECT u.username, t.digest, t.revoked_at FROM accounts_apitoken t JOIN auth_user u ON u.id = t.user_id"
        ).fetchall()
        admins = db.execute("SELECT username FROM auth_user WHERE is_superuser").fetchall()
    assert tokens == [("prometheus", hashlib.sha256(secret.encode()).hexdigest(), None)]
    assert admins == [("admin",)]


def test_the_metrics_token_file_is_where_prometheus_reads_it() -> None:
    migrate_env = SERVICES["migrate"]["environment"]
    written, written_at = mount_of(SERVICES["migrate"], migrate_env["METRICS_TOKEN_FILE"])
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (portal_job,) = [job for job in config["scrape_configs"] if job["job_name"] == "portal"]
    read, read_at = mount_of(SERVICES["prometheus"], portal_job["authorization"]["credentials_file"])
    assert written.source == read.source == "metrics-token"
    assert written_at == read_at
    assert read.read_only and not written.read_only
    # Only the bootstrap and Prometheus see the token.
    holders = [
        name for name, service in SERVICES.items() if any("metrics-token" in v for v in service.get("volumes", []))
    ]
    assert sorted(holders) == ["migrate", "prometheus"]

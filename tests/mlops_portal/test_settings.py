"""The settings module refuses to start with unsafe or broken configuration."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py` with these settings variables and none of the test run's own."""
    skip = {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "HTTPS", "STATICFILES_STORAGE"}
    skip |= {"DB_PARALLEL_WORKERS", "DB_PREPARED_STATEMENTS"}
    clean = {k: v for k, v in os.environ.items() if k not in skip}
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "mlops_portal.settings"
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True)


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _manage(env, "check", *args)


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path: Path) -> None:
    result = _check({"PORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off" in result.stderr


def test_it_reports_a_bad_variable_by_name(tmp_path: Path) -> None:
    result = _check({"PORTAL_VAR_DIR": str(tmp_path), "DEBUG": "true", "JOB_MAX_ATTEMPTS": "zero"})
    assert result.returncode != 0
    assert "JOB_MAX_ATTEMPTS must be an integer" in result.stderr


def test_check_deploy_is_clean_with_production_values(tmp_path: Path) -> None:
    result = _check(
        {
            "PORTAL_VAR_DIR": str(tmp_path),
            "SECRET_KEY": "k" * 10 + "production-secret-value-with-enough-entropy-0123456789abcdef",
            "ALLOWED_HOSTS": "portal.example.com",
        },
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _database_options(env: dict[str, str]) -> str:
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])"
    env = {"DEBUG": "true", "DATABASE_URL": "postgres://portal@db.invalid:5432/portal", **env}
    result = _manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_postgresql_connections_start_no_parallel_workers_unless_told(tmp_path: Path) -> None:
    base = {"PORTAL_VAR_DIR": str(tmp_path)}
    assert "-c max_parallel_workers_per_gather=0" in _database_options(base)
    assert "-c max_parallel_workers_per_gather=2" in _database_options({**base, "DB_PARALLEL_WORKERS": "2"})
    assert "max_parallel" not in _database_options({**base, "DB_PARALLEL_WORKERS": "-1"})  # the server's own


def test_prepared_statements_are_prepared_at_once_on_generic_plans_unless_turned_off(tmp_path: Path) -> None:
    base = {"PORTAL_VAR_DIR": str(tmp_path)}
    options = _database_options(base)
    assert "'prepare_threshold': 0" in options and "-c plan_cache_mode=force_generic_plan" in options
    off = _database_options({**base, "DB_PREPARED_STATEMENTS": "false"})
    assert "'prepare_threshold': None" in off and "plan_cache_mode" not in off
    # Behind a pooler that refuses startup options, nothing is sent.
    assert "options" not in _database_options({**base, "DB_PREPARED_STATEMENTS": "false", "DB_PARALLEL_WORKERS": "-1"})


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL setting")
def test_the_live_connection_runs_without_parallel_workers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_parallel_workers_per_gather")
        assert cursor.fetchone()[0] == "0"

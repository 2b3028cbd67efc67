"""docs/configuration.md lists every environment variable the code and the deployment files read."""

from __future__ import annotations

import re

import pytest

from tests.deploy.compose import COMPOSE_FILE, DEPLOY, ROOT

CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def documented(name: str) -> bool:
    return f"`{name}`" in CONFIGURATION


def read_by_settings() -> set[str]:
    text = (ROOT / "mlops_portal" / "settings.py").read_text()
    names = set(re.findall(r"\benv_\w+\(\s*\"([A-Z0-9_]+)\"", text))
    # env_secret and env_url also read NAME_FILE
    names |= {f"{name}_FILE" for name in re.findall(r"\benv_(?:secret|url)\(\s*\"([A-Z0-9_]+)\"", text)}
    return names


def read_by_python(*paths: str) -> set[str]:
    names: set[str] = set()
    for path in paths:
        text = (ROOT / path).read_text()
        names |= set(re.findall(r"os\.environ(?:\.get)?(?:\(|\[)\s*\"([A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"env(?:\.get|\.setdefault|\[)\(?\s*\"([A-Z0-9_]+)\"", text))
    return names


def read_by_scripts() -> set[str]:
    names: set[str] = set()
    for script in DEPLOY.glob("*.sh"):
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script.read_text()))
    return names


def read_by_compose() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))


def test_the_settings_read_variables() -> None:
    # A guard for the regular expressions below: if they found nothing, the next tests would pass vacuously.
    assert {"SECRET_KEY", "SECRET_KEY_FILE", "DATABASE_URL", "JOB_MAX_ATTEMPTS", "LOG_FORMAT"} <= read_by_settings()


@pytest.mark.parametrize("name", sorted(read_by_settings()))
def test_every_variable_of_the_settings_is_documented(name: str) -> None:
    assert documented(name), f"{name} is read by mlops_portal/settings.py but missing from docs/configuration.md"


@pytest.mark.parametrize(
    "name",
    sorted(
        read_by_python(
            "portal",
            "manage.py",
            "mlops_portal/celery.py",
            "mlops_portal/wsgi.py",
            "monitoring/metrics.py",
            "accounts/management/commands/ensure_admin.py",
        )
    ),
)
def test_every_variable_of_the_launcher_and_entry_points_is_documented(name: str) -> None:
    assert documented(name), f"{name} is read by the launcher or an entry point but missing from the docs"


@pytest.mark.parametrize("name", sorted(read_by_scripts() | read_by_compose()))
def test_every_variable_of_the_deployment_files_is_documented(name: str) -> None:
    assert documented(name), f"{name} is read by docker-compose.yml or deploy/*.sh but missing from the docs"


def test_the_launcher_variables_were_found() -> None:
    assert {"PORTAL_VENV", "PORTAL_VAR_DIR", "PORTAL_HOST", "PORT"} <= read_by_python("portal")


def test_the_operations_guide_names_every_metric_and_endpoint() -> None:
    for name in ["http_request_duration_seconds", "mlops_jobs", "mlops_jobs_finished_total", "/health", "/ready"]:
        assert name in OPERATIONS, name
    assert "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])" in OPERATIONS
    assert "## Jobs" in OPERATIONS, "README links to operations.md#jobs"

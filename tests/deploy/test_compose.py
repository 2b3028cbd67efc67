"""docker-compose.yml refers only to things that exist: images, files, commands, queues, services.

Docker cannot run here, so these tests check what `docker compose up` would trip over, one reference at
a time: every command is parsed by the real granian and celery option parsers against the real app.
"""

from __future__ import annotations

import importlib
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
from celery import Celery
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands
from django.test import Client, override_settings
from granian.cli import cli as granian_cli

from mlops_portal.celery import QUEUES
from tests.deploy.compose import (
    DEPLOY,
    ROOT,
    MissingVariable,
    command_of,
    dockerfile_env,
    environment_of,
    interpolate,
    load_compose,
    mount_of,
    mounts_of,
    option,
    raw_compose,
)
from tests.services import launcher

COMPOSE = load_compose()
SERVICES: dict[str, Any] = COMPOSE["services"]
PORTAL_SERVICES = ["migrate", "web", "worker", "beat"]  # the ones that run the portal's image
LONG_RUNNING = ["web", "worker", "beat"]


def celery_command(service: str) -> tuple[Celery, str, click.Context]:
    """The app, the subcommand and the parsed options of a `celery -A APP SUBCOMMAND ...` command."""
    args = command_of(SERVICES[service])
    assert args[0] == "celery", f"{service} should run celery, runs {args[0]}"
    app_name = option(args, "-A", "--app")
    assert app_name is not None, f"{service}: no -A/--app"
    # Celery's -A MODULE loads MODULE.celery's `app` (or `celery`) when MODULE itself has none.
    module = importlib.import_module(f"{app_name}.celery")
    app = getattr(module, "app", None) or module.celery
    assert isinstance(app, Celery)
    rest = args[args.index(app_name) + 1 :]
    subcommand, options = rest[0], rest[1:]
    assert subcommand in celery_cli.commands, f"{service}: celery has no subcommand {subcommand!r}"
    parent = click.Context(celery_cli, obj=CLIContext(app=app, no_color=True, workdir=None, quiet=True))
    # The real option parser: a misspelt option or a bad value raises click.UsageError here.
    context = celery_cli.commands[subcommand].make_context(subcommand, list(options), parent=parent)
    return app, subcommand, context


def test_the_compose_file_refuses_to_start_without_a_secret_key() -> None:
    assert "${SECRET_KEY:?" in (ROOT / "docker-compose.yml").read_text()
    with pytest.raises(MissingVariable, match="SECRET_KEY"):
        load_compose(environ={})


def test_the_interpolation_helper_follows_compose_rules() -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET $SET", env) == "value d d  $SET value"
    assert interpolate("${SET:+alt}${UNSET:+alt}", env) == "alt"


def test_every_service_has_an_image_or_a_build_context_with_a_dockerfile() -> None:
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (ROOT / context / dockerfile).is_file(), f"{name}: no {dockerfile} in build context {context}"
        else:
            # Third-party images are pinned to a tag, never an implicit :latest.
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), f"{name}: pin a tag on {service['image']}"


def test_the_portal_services_run_the_image_built_from_this_repository() -> None:
    images = {SERVICES[name]["image"] for name in PORTAL_SERVICES}
    assert len(images) == 1
    for name in PORTAL_SERVICES:
        assert SERVICES[name]["build"] == ".", name


def granian_options(args: list[str]) -> dict[str, Any]:
    """The options granian's own command line parser makes of `args` (the arguments after `granian`)."""
    try:
        return granian_cli.make_context("granian", list(args)).params
    except click.UsageError as exc:  # a misspelt option or a bad value
        pytest.fail(f"granian does not accept {args}: {exc}")


def test_web_runs_the_portal_wsgi_application_with_granian() -> None:
    args = command_of(SERVICES["web"])
    assert args[0] == "granian"
    options = granian_options(args[1:])
    assert (options["host"], options["port"]) == ("0.0.0.0", 8000)  # noqa: S104
    assert str(options["interface"]) in ("wsgi", "Interfaces.WSGI")
    assert options["respawn_failed_workers"] is True
    module, _, name = options["app"].partition(":")
    wsgi = importlib.import_module(module)
    assert callable(getattr(wsgi, name))
    assert wsgi is importlib.import_module("mlops_portal.wsgi") and name == "application"


def test_web_runs_what_the_launcher_runs() -> None:
    """`./portal up` and the containers start the web process with the same options (bar the worker count)."""
    options = launcher().web_server_options("0.0.0.0", 8000, 3)  # noqa: S104
    at = options.index("--workers")
    assert command_of(SERVICES["web"])[1:] == options[:at] + options[at + 2 :]


def test_the_web_worker_count_comes_from_web_concurrency() -> None:
    web = SERVICES["web"]
    assert "--workers" not in command_of(web)  # granian reads GRANIAN_WORKERS, set from the operator's variable
    assert environment_of(web)["GRANIAN_WORKERS"] == "2"
    operator = load_compose(environ={"SECRET_KEY": "x", "WEB_CONCURRENCY": "5"})
    assert environment_of(operator["services"]["web"])["GRANIAN_WORKERS"] == "5"


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_worker_and_beat_run_the_celery_subcommand_of_their_name_on_the_portal_app(service: str) -> None:
    app, subcommand, _ = celery_command(service)
    assert subcommand == service
    assert app.main == "mlops_portal"


def test_the_worker_consumes_every_queue_the_app_declares() -> None:
    _, _, context = celery_command("worker")
    assert context.params["queues"] == list(QUEUES)


def test_beat_keeps_its_schedule_file_in_a_volume() -> None:
    _, _, context = celery_command("beat")
    schedule = Path(context.params["schedule"])
    volumes = {mount.target: mount for mount in mounts_of(SERVICES["beat"])}
    assert str(schedule.parent) in volumes, f"{schedule} is not in a volume, so a restart forgets the schedule"
    assert not volumes[str(schedule.parent)].is_bind


def test_every_file_and_directory_mounted_from_the_repository_exists() -> None:
    binds = [(name, mount) for name, service in SERVICES.items() for mount in mounts_of(service) if mount.is_bind]
    assert binds, "Prometheus and Grafana read their configuration from the repository"
    for name, mount in binds:
        assert mount.host_path.exists(), f"{name} mounts {mount.source}, which does not exist"
        assert mount.host_path.is_relative_to(ROOT), f"{name} mounts {mount.source} from outside the repository"
        assert mount.read_only, f"{name} should mount {mount.source} read-only"


def test_every_named_volume_is_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {mount.source for service in SERVICES.values() for mount in mounts_of(service) if not mount.is_bind}
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert declared <= used, f"declared but unused volumes: {declared - used}"


def test_every_dependency_is_a_service_and_a_health_condition_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        depends_on = service.get("depends_on") or {}
        for target in depends_on:
            assert target in SERVICES, f"{name} depends on {target}, which is not a service"
            assert target != name, f"{name} depends on itself"
            condition = depends_on[target].get("condition") if isinstance(depends_on, dict) else None
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy; it has no check"
            if condition == "service_completed_successfully":
                assert SERVICES[target].get("restart", "no") == "no", f"{target} is one-shot and must not restart"


def test_the_portal_starts_after_migrations_on_healthy_postgres_and_redis() -> None:
    for name in LONG_RUNNING:
        depends_on = SERVICES[name]["depends_on"]
        assert depends_on["postgres"]["condition"] == "service_healthy", name
        assert depends_on["redis"]["condition"] == "service_healthy", name
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
    migrate = SERVICES["migrate"]["depends_on"]
    assert migrate["postgres"]["condition"] == "service_healthy"
    assert "migrate" not in migrate


def test_the_migrate_service_runs_the_bootstrap_script() -> None:
    args = command_of(SERVICES["migrate"])
    assert args == ["/app/deploy/bootstrap.sh"]
    script = DEPLOY / "bootstrap.sh"
    assert script.is_file()
    assert script.stat().st_mode & stat.S_IXUSR, "bootstrap.sh must be executable"


def test_the_bootstrap_script_calls_only_real_management_commands() -> None:
    text = (DEPLOY / "bootstrap.sh").read_text()
    called = re.findall(r"manage\.py\s+([a-z_]+)", text)
    assert {"migrate", "ensure_admin", "ensure_service_token"} <= set(called)
    commands = get_commands()
    for name in called:
        assert name in commands, f"bootstrap.sh calls manage.py {name}, which does not exist"


def test_the_portal_services_share_one_configuration() -> None:
    for name in PORTAL_SERVICES:
        env = environment_of(SERVICES[name])
        assert urlsplit(env["DATABASE_URL"]).hostname == "postgres", name
        assert urlsplit(env["REDIS_URL"]).hostname == "redis", name
        assert env["SECRET_KEY"] == "a-secret-key-given-by-the-operator", name
        assert env["HTTPS"] == "false", name


def test_the_database_credentials_match_the_postgres_service() -> None:
    postgres = environment_of(SERVICES["postgres"])
    url = urlsplit(environment_of(SERVICES["web"])["DATABASE_URL"])
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_web_and_worker_share_the_volume_that_holds_the_artifacts() -> None:
    # Training jobs on the worker write artifacts that the web process serves.
    var_dir = dockerfile_env()["PORTAL_VAR_DIR"]
    for name in ["web", "worker"]:
        assert "ARTIFACT_ROOT" not in environment_of(SERVICES[name]), "ARTIFACT_ROOT defaults to PORTAL_VAR_DIR"
        mount, relative = mount_of(SERVICES[name], var_dir)
        assert (mount.source, relative) == ("portal-data", ""), name


def test_web_and_prometheus_use_host_names_the_portal_allows() -> None:
    allowed = environment_of(SERVICES["web"])["ALLOWED_HOSTS"].split(",")
    assert "web" in allowed, "Prometheus scrapes http://web:8000/metrics"
    assert "localhost" in allowed, "the health check calls http://localhost:8000/health"


def test_the_web_health_check_gets_200_from_the_health_endpoint(db: None) -> None:
    check = " ".join(SERVICES["web"]["healthcheck"]["test"])
    url = urlsplit(re.search(r"http://[^'\"\s]+", check).group(0))  # type: ignore[union-attr]
    assert url.path == "/health"
    assert url.port == 8000
    allowed = environment_of(SERVICES["web"])["ALLOWED_HOSTS"].split(",")
    with override_settings(ALLOWED_HOSTS=allowed):
        response = Client().get(url.path, HTTP_HOST=url.netloc)
    assert response.status_code == 200


def test_the_web_port_is_published_and_the_dashboards_only_on_loopback() -> None:
    assert SERVICES["web"]["ports"] == ["8000:8000"]
    for name in ["prometheus", "grafana"]:
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"]), name
    for name in ["postgres", "redis"]:
        assert "ports" not in SERVICES[name], f"{name} needs no port outside the compose network"


def test_redis_keeps_nothing_on_disk() -> None:
    args = command_of(SERVICES["redis"])
    assert option(args, "--save") == ""
    assert option(args, "--appendonly") == "no"


def test_operator_overrides_reach_the_services() -> None:
    compose = load_compose({"SECRET_KEY": "s", "POSTGRES_PASSWORD": "pw", "WORKER_CONCURRENCY": "8"})
    assert environment_of(compose["services"]["postgres"])["POSTGRES_PASSWORD"] == "pw"
    assert "portal:pw@postgres" in environment_of(compose["services"]["worker"])["DATABASE_URL"]
    assert option(command_of(compose["services"]["worker"]), "--concurrency") == "8"


def test_the_yaml_anchors_leave_no_unknown_top_level_keys() -> None:
    # Compose accepts x-* extension keys; anything else is a typo.
    for key in raw_compose():
        assert key in {"services", "volumes", "networks", "secrets", "configs", "name"} or key.startswith("x-"), key


def test_the_entry_point_exists_clears_stale_metrics_and_runs_the_command(tmp_path: Path) -> None:
    script = DEPLOY / "entrypoint.sh"
    assert script.stat().st_mode & stat.S_IXUSR, "entrypoint.sh must be executable"
    multiproc = tmp_path / "prometheus-multiproc"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    env.pop("PORTAL_BOOTSTRAP", None)

    def start() -> str:
        result = subprocess.run([str(script), "echo", "started"], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert start() == "started"
    assert multiproc.is_dir(), "the first start creates the directory"
    (multiproc / "histogram_123.db").write_bytes(b"left by the previous run")
    (multiproc / "keep.txt").write_text("not a metrics file")

    assert start() == "started"
    assert sorted(p.name for p in multiproc.iterdir()) == ["keep.txt"]


def test_the_model_server_runs_the_serve_models_command_on_the_shared_volume() -> None:
    service = SERVICES["modelserver"]
    args = command_of(service)
    assert args[:3] == ["python", "manage.py", "serve_models"]
    assert "serve_models" in get_commands()
    assert option(args, "--port") == "8001"
    assert service["build"] == "."
    mount, relative = mount_of(service, dockerfile_env()["PORTAL_VAR_DIR"])
    assert (mount.source, relative) == ("portal-data", "")


def test_training_scripts_on_the_worker_log_to_the_web_service_it_can_reach() -> None:
    uri = urlsplit(SERVICES["worker"]["environment"]["SCRIPT_TRACKING_URI"])
    assert uri.hostname in SERVICES and uri.hostname == "web"
    web = command_of(SERVICES["web"])
    assert (option(web, "--host"), option(web, "--port")) == ("0.0.0.0", str(uri.port))  # noqa: S104
    assert uri.hostname in SERVICES["web"]["environment"]["ALLOWED_HOSTS"].split(",")


def test_the_model_server_has_time_to_write_its_prediction_log_when_stopped() -> None:
    from deployments.management.commands.serve_models import STOP_SECONDS
    from deployments.server.logwriter import JOIN_SECONDS, SENDER_JOIN_SECONDS

    service = SERVICES["modelserver"]
    assert command_of(service)[:3] == ["python", "manage.py", "serve_models"]
    grace = service["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > STOP_SECONDS > JOIN_SECONDS + SENDER_JOIN_SECONDS

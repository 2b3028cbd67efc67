"""Real services for end-to-end tests: PostgreSQL, Redis, and Celery worker/beat processes.

End-to-end tests need a database that other processes can see (PostgreSQL, not SQLite's in-memory
test database) and a real broker. Without them the tests skip on a laptop; CI sets
PORTAL_TEST_REQUIRE_SERVICES=1 so they fail instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("PORTAL_TEST_REQUIRE_SERVICES", "") == "1"
# Fast clocks so a dead worker is noticed in seconds, not minutes.
E2E_JOB_SETTINGS = {
    "JOB_HEARTBEAT_INTERVAL": "0.5",
    "JOB_HEARTBEAT_TIMEOUT": "4",
    "JOB_REDISPATCH_AFTER": "4",
    "JOB_RECONCILE_INTERVAL": "1",
}


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PORTAL_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("end-to-end tests need DATABASE_URL pointing at PostgreSQL")


def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("end-to-end tests need REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} is unreachable: {exc}")
    return url


def database_url() -> str:
    """The URL of the test database pytest-django created, for child processes."""
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or "5432"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{host}:{port}/{s['NAME']}"


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(E2E_JOB_SETTINGS)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url(),
            "CELERY_BROKER_URL": redis_url(),
            "PORTAL_VAR_DIR": str(tmp_path / "var"),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    env.update(extra)
    return env


class Process:
    """A child process in its own process group, its output collected for assertions and failures."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip())

    def wait_for_output(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never printed {needle!r}; output:\n" + self.output())

    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children, as a crash would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def start_worker(env: dict[str, str], name: str = "worker", concurrency: int = 1) -> Process:
    worker = Process(
        name,
        [
            sys.executable, "-m", "celery", "-A", "mlops_portal", "worker", "--loglevel", "INFO",
            "--queues", "default,training,deployments", "--concurrency", str(concurrency),
            "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
        ],
        env,
    )  # fmt: skip
    worker.wait_for_output("ready.")
    return worker


def start_beat(env: dict[str, str]) -> Process:
    Path(env["PORTAL_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    beat = Process("beat", [sys.executable, "-m", "celery", "-A", "mlops_portal", "beat", "--loglevel", "INFO"], env)
    beat.wait_for_output("beat: Starting")
    return beat


def launcher() -> Any:
    """The `portal` script as a module (it has no .py suffix)."""
    import importlib.machinery
    import types

    loader = importlib.machinery.SourceFileLoader("portal_launcher", str(ROOT / "portal"))
    module = types.ModuleType(loader.name)
    module.__file__ = loader.path
    loader.exec_module(module)
    return module


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_web(env: dict[str, str], port: int, workers: int = 2) -> Process:
    """The portal's web process as `./portal up` starts it (granian), answering /health."""
    import urllib.request

    granian = Path(sys.executable).parent / "granian"
    web = Process("web", [str(granian), *launcher().web_server_options("127.0.0.1", port, workers)], env)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return True
        except OSError:
            if web.proc.poll() is not None:
                raise AssertionError("the web process exited:\n" + web.output()) from None
            return False

    wait_until(answers, timeout=60, message="the web process to answer /health")
    return web


@contextmanager
def running(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def wait_until(predicate: Any, timeout: float = 60, interval: float = 0.2, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")


def in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `target` in a thread with its own database connection (closed at the end), for tests that
    race two transactions; the thread's `result` or `error` lands in the dict."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:  # reported to the test
            out["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def drop_connection() -> int:
    """Have PostgreSQL end this thread's open connection, as a database restart would, from a
    connection of its own; the ended backend's pid. Django's connection object still looks open."""
    import psycopg

    connection.ensure_connection()
    pid = int(connection.connection.info.backend_pid)
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"],
        password=settings["PASSWORD"] or None, autocommit=True,
    ) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    return pid

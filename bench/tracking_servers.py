"""Start and stop the servers the tracking benchmark compares, and describe the machine.

Every server runs in its own process group (start_new_session), so stopping it stops its children
too (uvicorn workers, MLflow's huey job consumers, granian workers) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
from benchdb import recreate_database
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BENCH_DATABASES = ("bench_mlflow", "bench_portal")  # the only databases this benchmark may drop


@dataclass
class Server:
    """A running server: its name in the report, base URL, the headers it needs, its process."""

    name: str
    label: str
    url: str
    headers: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    command: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.proc.poll() is None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reset_database(pg_url: str, name: str) -> None:
    """Drop and recreate one of the benchmark's own databases (never any other)."""
    if name not in BENCH_DATABASES:
        raise ValueError(f"refusing to touch database {name!r}: only {BENCH_DATABASES} are the benchmark's")
    recreate_database(pg_url, name)


def analyze_database(pg_url: str, name: str) -> None:
    """VACUUM ANALYZE after bulk loading, as autovacuum would soon do on a live server: planner
    statistics and the visibility map (index-only scans) as a steady-state database has them."""
    if name not in BENCH_DATABASES:
        raise ValueError(f"refusing to touch database {name!r}")
    with psycopg.connect(f"{pg_url}/{name}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def postgres_facts(pg_url: str) -> dict[str, str]:
    with psycopg.connect(f"{pg_url}/postgres") as conn:
        facts = {"version": str(conn.execute("SHOW server_version").fetchone()[0])}  # type: ignore[index]
        for setting in ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "work_mem"):
            facts[setting] = str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(setting))).fetchone()[0])  # type: ignore[index]
    return facts


def _start(name: str, command: list[str], env: dict[str, str], log: Path, root: Path = ROOT) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            command, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        handle.close()


def wait_ready(server: Server, timeout: float = 240.0) -> float:
    """Poll GET /health until it answers 200; the seconds it took. Fails early if the process died."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited with status {server.proc.returncode}:\n{tail(server.log)}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                return time.monotonic() - start
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{tail(server.log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(server: Server, timeout: float = 30.0) -> None:
    """SIGTERM the server's own process group, then SIGKILL it if it lingers."""
    pgid = server.proc.pid  # start_new_session made the server the leader of its own group
    if server.alive():
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_pids(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        server.proc.wait(timeout=10)


def group_pids(pgid: int) -> list[int]:
    """Live processes of one process group (zombies excluded), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


# MLflow ------------------------------------------------------------------------------------------


def start_mlflow(name: str, label: str, *, pg_url: str, database: str, workers: int | None, tmp: Path) -> Server:
    """`mlflow server` on PostgreSQL with --serve-artifacts, as its docs set up a team server."""
    port = free_port()
    backend = pg_url.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"
    command = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        str(tmp / "mlflow-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    log = tmp / f"{name}.log"
    proc = _start(name, command, env, log)
    return Server(name, label, f"http://127.0.0.1:{port}", {}, proc, log, command)


# The portal --------------------------------------------------------------------------------------


def portal_env(pg_url: str, database: str, tmp: Path) -> dict[str, str]:
    """The environment `./portal up` gives its processes, on PostgreSQL, with quiet logs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "DATABASE_URL", "REDIS_URL", "CELERY_", "SECRET_KEY", "DJANGO_"))
    }
    metrics_dir = tmp / "prometheus"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        DATABASE_URL=pg_url.replace("postgresql://", "postgres://", 1) + f"/{database}",
        SECRET_KEY=secrets.token_urlsafe(50),
        HTTPS="false",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="plain",
        PORTAL_VAR_DIR=str(tmp / "portal-var"),
        DJANGO_SETTINGS_MODULE="mlops_portal.settings",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),  # `./portal up` always sets it
        PYTHONUNBUFFERED="1",
    )
    return env


_MAKE_USER = """
from django.contrib.auth import get_user_model
from accounts.services import create_api_token, ensure_admin, set_role
role = {role!r}
if role == "admin":
    user, _, _ = ensure_admin("bench", "bench-" + "x" * 20)
else:
    user, _ = get_user_model().objects.get_or_create(username="bench")
    set_role(user, role, actor=None)
print("TOKEN=" + create_api_token(user, "bench").secret)
"""


def prepare_portal(env: dict[str, str], role: str, log: Path) -> str:
    """Migrate the portal's database and create the benchmark user; its API token."""
    with log.open("ab") as handle:
        subprocess.run(
            [str(BIN / "python"), "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
        )
    out = subprocess.run(
        [str(BIN / "python"), "manage.py", "shell", "-c", _MAKE_USER.format(role=role)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stdout.splitlines():
        if line.startswith("TOKEN="):
            return line.removeprefix("TOKEN=")
    raise RuntimeError(f"no token printed:\n{out.stdout}\n{out.stderr}")


def launcher() -> Any:
    """The `portal` script as a module (it has no .py suffix), for its web server options."""
    import importlib.machinery
    import types

    loader = importlib.machinery.SourceFileLoader("portal_launcher", str(ROOT / "portal"))
    module = types.ModuleType(loader.name)
    module.__file__ = loader.path
    loader.exec_module(module)
    return module


def start_portal(
    name: str,
    label: str,
    *,
    env: dict[str, str],
    token: str,
    workers: int,
    threads: int,
    tmp: Path,
    root: Path = ROOT,
    server: str = "granian",
) -> Server:
    """The web process exactly as `./portal up` starts it (granian, the launcher's options); `root`: the
    checkout to run (bench/tracking_ab.py runs another revision from a git worktree). `server="gunicorn"`:
    gunicorn as `./portal up` ran it until 2026-12-07, for comparing the two servers."""
    port = free_port()
    if server == "gunicorn":
        command = [str(BIN / "gunicorn"), "mlops_portal.wsgi", "--bind", f"127.0.0.1:{port}"]
        command += ["--workers", str(workers), "--threads", str(threads), "--access-logfile", "-"]
        command += ["--graceful-timeout", "10"]
    else:
        command = [str(BIN / "granian"), *launcher().web_server_options("127.0.0.1", port, workers)]
        if threads != 4:
            command[command.index("--blocking-threads") + 1] = str(threads)
    log = tmp / f"{name}.log"
    proc = _start(name, command, env, log, root)
    return Server(name, label, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}, proc, log, command)


# The machine -------------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    facts = {"cpus": str(os.cpu_count()), "python": platform.python_version(), "kernel": platform.release()}
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        facts["memory"] = f"{total_kb / 1024**2:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        facts["memory"] = "?"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        facts["cpu_model"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        facts["cpu_model"] = platform.processor() or "?"
    facts["nproc"] = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or facts["cpus"]
    return facts


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in (
        "mlflow",
        "Django",
        "granian",
        "uvicorn",
        "starlette",
        "fastapi",
        "SQLAlchemy",
        "psycopg",
        "requests",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_revision() -> str:
    """The portal's commit and whether the tree had local changes (read-only: no index refresh)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (+ {len(dirty.splitlines())} modified files)" if dirty else head


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"

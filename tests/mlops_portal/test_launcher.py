"""`./portal up` supervises web, worker and beat: Ctrl-C stops them all, and so does one of them dying."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _supervisor(tmp_path: Path, children: dict[str, str]) -> subprocess.Popen[str]:
    script = textwrap.dedent(
        f"""
        import importlib.machinery, sys, types
        loader = importlib.machinery.SourceFileLoader("portal_launcher", {str(ROOT / "portal")!r})
        launcher = types.ModuleType(loader.name)
        launcher.__file__ = loader.path
        loader.exec_module(launcher)
        children = {{name: [sys.executable, "-c", code] for name, code in {children!r}.items()}}
        sys.exit(launcher.supervise(children, dict(__import__("os").environ)))
        """
    )
    return subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.PIPE, text=True)


def _pids_alive(pid_dir: Path) -> list[int]:
    alive = []
    for pid_file in pid_dir.glob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def _child(pid_dir: Path, name: str, lifetime: float = 600) -> str:
    return (
        f"import os, time; open({str(pid_dir / name)!r} + '.pid', 'w').write(str(os.getpid())); "
        f"print('{name} up', flush=True); time.sleep({lifetime})"
    )


def _wait_for_pids(pid_dir: Path, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(list(pid_dir.glob("*.pid"))) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    names = ["web", "worker", "beat"]
    proc = _supervisor(tmp_path, {name: _child(tmp_path, name) for name in names})
    _wait_for_pids(tmp_path, 3)
    assert len(_pids_alive(tmp_path)) == 3
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "all stopped" in out and "web    | web up" in out
    assert _pids_alive(tmp_path) == []


def test_one_process_dying_stops_the_others(tmp_path: Path) -> None:
    proc = _supervisor(
        tmp_path,
        {"web": _child(tmp_path, "web"), "worker": _child(tmp_path, "worker", lifetime=1)},
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "worker exited with status" in out
    assert _pids_alive(tmp_path) == []

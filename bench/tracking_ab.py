"""The portal against itself: two revisions side by side, in one run, on one database.

    .venv/bin/python bench/tracking_ab.py                      # the last commit against the working tree
    .venv/bin/python bench/tracking_ab.py --base 5e97b99 --only log_metric,log_param --blocks 20
    .venv/bin/python bench/tracking_ab.py --base HEAD --base-server gunicorn   # one revision, two servers

On a 2-core machine shared with other work, the same workload measured twice an hour apart can move by
half (docs/performance.md, "The misses, and why"): a change of 10-20 % cannot be judged from two
separate runs of bench/tracking.py. Here both revisions run at once, as `./portal up` runs its web
process (granian, 2 workers x 4 threads), on one database (`bench_portal_ab`, dropped and recreated;
no other is touched) migrated by the working tree, and the workloads alternate between them in blocks
(`--blocks` of `--calls`, the order swapped every block), so whatever the machine does, both see it.
A revision is checked out with `git worktree` into a temporary directory and removed at the end; it
must work on the working tree's schema. Medians per revision, and head / base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import tracking_servers as srv  # bench/ is on the path: the benchmarks run as scripts
from benchdb import recreate_database
from tracking_workloads import CLIENT_SCRIPT

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_portal_ab"
WORKLOADS = ("health", "create_run", "log_metric", "log_param", "log_batch", "client_sequence")


class Portal:
    """One revision's server, with a session, a run to log into and a step counter."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        experiment = self.post("experiments/create", {"name": f"ab-{url}"})["experiment_id"]
        self.experiment = experiment
        self.run = self.post("runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"]
        self.step = 0

    def post(self, path: str, body: Any, raw: bytes | None = None) -> Any:
        response = self.session.post(
            f"{self.url}/api/2.0/mlflow/{path}",
            data=raw if raw is not None else json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def call(self, workload: str) -> None:
        self.step += 1
        if workload == "health":
            self.session.get(f"{self.url}/health").raise_for_status()
        elif workload == "create_run":
            self.post("runs/create", {"experiment_id": self.experiment})
        elif workload == "log_metric":
            self.post(
                "runs/log-metric", {"run_id": self.run, "key": "m", "value": 0.5, "timestamp": 1, "step": self.step}
            )
        elif workload == "log_param":
            self.post("runs/log-parameter", {"run_id": self.run, "key": f"p{self.step}", "value": "1"})
        elif workload == "log_batch":
            self.post("runs/log-batch", None, raw=self.batch())

    def batch(self) -> bytes:
        """1000 new points (10 keys x 100 steps). Encoding them is timed too: the same small cost for both."""
        base = self.step * 100
        metrics = [
            {"key": f"k{k}", "value": 0.5, "timestamp": 1000, "step": base + s} for k in range(10) for s in range(100)
        ]
        return json.dumps({"run_id": self.run, "metrics": metrics}).encode()


def client_sequence(url: str, token: str, reps: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    plan = json.dumps({"server": [url, token]})
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, plan, str(reps)], env=env, capture_output=True, text=True,
        timeout=900, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"client sequence failed: {out.stderr[-600:]}")
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    if result["errors"]:
        raise RuntimeError(f"client sequence failed: {result['errors']['server']}")
    return [t * 1000 for t in result["timings"]["server"][1:]]


def measure(portals: dict[str, Portal], workload: str, blocks: int, calls: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in portals}
    names = list(portals)
    if workload == "client_sequence":
        for block in range(blocks):
            for name in names if block % 2 == 0 else names[::-1]:
                times[name] += client_sequence(portals[name].url, portals[name].token, 2)
        return times
    for name in names:  # warm-up, not measured
        for _ in range(10):
            portals[name].call(workload)
    for block in range(blocks):
        for name in names if block % 2 == 0 else names[::-1]:
            call: Callable[[str], None] = portals[name].call
            for _ in range(calls):
                start = time.perf_counter()
                call(workload)
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the revision to compare against (default HEAD)")
    parser.add_argument("--head", default="", help="the other revision (default: the working tree)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"workloads, from {', '.join(WORKLOADS)}")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=40, help="calls per block (log_batch: a quarter)")
    parser.add_argument("--base-server", choices=("granian", "gunicorn"), default="granian",
                        help="the web server for the base revision (the head always runs under granian)")  # fmt: skip
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    workloads = [w for w in args.only.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    trees: dict[str, Path] = {}
    servers: list[srv.Server] = []
    try:
        for name, rev in (("base", args.base), ("head", args.head)):
            if not rev:
                trees[name] = ROOT
                continue
            trees[name] = tmp / name
            subprocess.run(["git", "worktree", "add", "--detach", str(trees[name]), rev], cwd=ROOT, check=True,
                           capture_output=True)  # fmt: skip
        recreate_database(args.pg, DATABASE)
        env = srv.portal_env(args.pg, DATABASE, tmp)
        token = srv.prepare_portal(env, "editor", tmp / "setup.log")  # the working tree's migrations
        portals = {}
        for name, tree in trees.items():
            server = srv.start_portal(
                name, name, env={**env, "PYTHONPATH": str(tree)}, token=token, workers=2, threads=4, tmp=tmp,
                root=tree, server=args.base_server if name == "base" else "granian",
            )  # fmt: skip
            servers.append(server)
            srv.wait_ready(server)
            portals[name] = Portal(server.url, token)
        print(f"base {args.base} ({args.base_server}), head {args.head or 'working tree'} (granian); "
              f"load average {srv.load_average()}\n")  # fmt: skip
        print("| workload | base median ms | head median ms | head / base | calls each |")
        print("|---|---:|---:|---:|---:|")
        for workload in workloads:
            calls = max(1, args.calls // 4) if workload == "log_batch" else args.calls
            times = measure(portals, workload, args.blocks, calls)
            base, head = statistics.median(times["base"]), statistics.median(times["head"])
            print(f"| {workload} | {base:.2f} | {head:.2f} | {head / base:.2f}x | {len(times['head'])} |", flush=True)
    finally:
        for server in servers:
            srv.stop(server)
        for tree in trees.values():
            if tree != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()

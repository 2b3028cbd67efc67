"""Tracking performance: the portal against `mlflow server`, same machine, same PostgreSQL, same raw HTTP.

    .venv/bin/python bench/tracking.py                 # the full measurement (about 20 min on 2 cores)
    .venv/bin/python bench/tracking.py --quick         # a small end-to-end check of the harness (~4 min)
    .venv/bin/python bench/tracking.py --quick --only create_run,log_metric --out -

It drops and recreates the databases `bench_mlflow` and `bench_portal` (and no others), starts MLflow
twice (its default 4 workers and `--workers 1`, both on `bench_mlflow`) and the portal under granian
as `./portal up` runs it, on free ports; every workload talks raw HTTP with `requests`, on kept-alive
connections (one Session) and on fresh ones (a new connection per call). It writes the tables into
docs/performance.md between the generated-section markers (`--out`), and stops every server at the end.
See docs/performance.md for what each workload does and how the ratios are computed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tracking_report
import tracking_servers as srv
from tracking_clients import Sizes, expected_orders
from tracking_workloads import (
    Bench,
    seed_history,
    seed_search,
    setup_ids,
    w_bulk_interval,
    w_client_sequence,
    w_create_run,
    w_health,
    w_history,
    w_log_batch,
    w_log_metric,
    w_log_param,
    w_paging,
    w_search,
)

WORKLOADS = (
    "health",
    "create_run",
    "log_metric",
    "log_param",
    "log_batch_1",
    "log_batch_8",
    "search_nofilter",
    "search_filter",
    "search_default",
    "paging",
    "history",
    "bulk_interval",
    "client_sequence",
)
NEEDS_SEARCH_DATA = {"search_nofilter", "search_filter", "search_default", "paging"}
NEEDS_HISTORY_DATA = {"history", "bulk_interval"}


# Orchestration -----------------------------------------------------------------------------------


SERVERS = ("mlflow-default", "mlflow-w1", "portal")


def start_servers(bench: Bench, tmp: Path) -> None:
    args = bench.args
    wanted = set(args.servers)
    databases = [
        db for db, used in (("bench_mlflow", wanted - {"portal"}), ("bench_portal", "portal" in wanted)) if used
    ]
    print(f"== databases: dropping and recreating {', '.join(databases)}", flush=True)
    for database in databases:
        srv.reset_database(args.pg_url, database)
    ready: dict[str, float] = {}
    # One MLflow at a time on the empty database: each migrates it when it starts.
    for name, label, workers in (
        ("mlflow-default", "MLflow, default workers (4)", None),
        ("mlflow-w1", "MLflow, --workers 1", 1),
    ):
        if name not in wanted:
            continue
        print(f"== starting {label}", flush=True)
        server = srv.start_mlflow(name, label, pg_url=args.pg_url, database="bench_mlflow", workers=workers, tmp=tmp)
        bench.servers[name] = server
        ready[name] = srv.wait_ready(server)
    if "portal" in wanted:
        print("== preparing the portal (migrate, bench user and token) and starting granian", flush=True)
        env = srv.portal_env(args.pg_url, "bench_portal", tmp)
        token = srv.prepare_portal(env, args.portal_role, tmp / "portal-setup.log")
        label = f"Portal (granian, {args.portal_workers} workers x {args.portal_threads} threads)"
        server = srv.start_portal(
            "portal", label, env=env, token=token, workers=args.portal_workers, threads=args.portal_threads, tmp=tmp
        )
        bench.servers["portal"] = server
        ready["portal"] = srv.wait_ready(server)
    # MLflow keeps booting its huey job consumers after /health answers; measuring before every server
    # has gone quiet would charge that start-up to whichever workload runs first.
    quiet_after = wait_until_quiet(bench)
    # What each server still burns while idle competes with the others for the two cores.
    before = {name: srv.group_cpu_seconds(s.proc.pid) for name, s in bench.servers.items()}
    time.sleep(5)
    idle = {name: 100 * (srv.group_cpu_seconds(s.proc.pid) - before[name]) / 5 for name, s in bench.servers.items()}
    bench.results["_servers"] = {
        name: {
            "label": s.label,
            "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(s.command)),
            "ready_s": ready[name],
            "quiet_after_s": quiet_after,
            "idle_cpu_pct": idle[name],
            "processes": len(srv.group_pids(s.proc.pid)),
        }
        for name, s in bench.servers.items()
    }


def wait_until_quiet(bench: Bench, threshold: float = 5.0, window: float = 2.0, timeout: float = 180.0) -> float:
    """Seconds until every server used under `threshold` % of a core over `window` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = {name: srv.group_cpu_seconds(s.proc.pid) for name, s in bench.servers.items()}
        time.sleep(window)
        busy = {
            name: 100 * (srv.group_cpu_seconds(s.proc.pid) - before[name]) / window for name, s in bench.servers.items()
        }
        if all(pct < threshold for pct in busy.values()):
            return time.monotonic() - start
    print(f"== servers still busy after {timeout:.0f} s: {busy}; measuring anyway", flush=True)
    return time.monotonic() - start


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (0, 0 where there is none)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_for_machine(threshold: float = 25.0, window: float = 2.0, timeout: float = 120.0) -> float:
    """Seconds until the whole machine (PostgreSQL included) used under `threshold` % of its CPUs
    over `window` seconds; after `timeout`, measure anyway."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        busy0, total0 = _cpu_times()
        time.sleep(window)
        busy1, total1 = _cpu_times()
        if total1 == total0 or 100 * (busy1 - busy0) / (total1 - total0) < threshold:
            return time.monotonic() - start
    print(f"== the machine is still busy after {timeout:.0f} s; measuring anyway", flush=True)
    return time.monotonic() - start


def selected_servers(value: str) -> list[str]:
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    unknown = set(chosen) - set(SERVERS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(SERVERS)}")
    return [name for name in SERVERS if name in chosen]


def selected(args: argparse.Namespace) -> list[str]:
    if not args.only:
        return list(WORKLOADS)
    chosen = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(chosen) - set(WORKLOADS)
    if unknown:
        sys.exit(f"unknown workloads: {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    return [w for w in WORKLOADS if w in chosen]


def run_workloads(bench: Bench, workloads: list[str]) -> Iterator[str]:
    steps: dict[str, Callable[[], None]] = {
        "health": lambda: w_health(bench),
        "create_run": lambda: w_create_run(bench),
        "log_metric": lambda: w_log_metric(bench),
        "log_param": lambda: w_log_param(bench),
        "log_batch_1": lambda: w_log_batch(bench, 1),
        "log_batch_8": lambda: w_log_batch(bench, 8),
        "seed_search": lambda: seed_search(bench),
        "search_nofilter": lambda: w_search(bench, "search_nofilter", "metric"),
        "search_filter": lambda: w_search(bench, "search_filter", "filter"),
        "search_default": lambda: w_search(bench, "search_default", "default"),
        "paging": lambda: w_paging(bench),
        "seed_history": lambda: seed_history(bench),
        "history": lambda: w_history(bench),
        "bulk_interval": lambda: w_bulk_interval(bench),
        "client_sequence": lambda: w_client_sequence(bench),
    }
    plan = list(workloads)
    if NEEDS_SEARCH_DATA & set(plan):
        plan.insert(plan.index(next(w for w in plan if w in NEEDS_SEARCH_DATA)), "seed_search")
    if NEEDS_HISTORY_DATA & set(plan):
        plan.insert(plan.index(next(w for w in plan if w in NEEDS_HISTORY_DATA)), "seed_history")
    for name in plan:
        # After a seed step, PostgreSQL goes on writing (its checkpoint, autovacuum) for a while after
        # the servers are idle: measuring then times the machine, not the servers.
        settled = wait_for_machine()
        bench.results.setdefault("_settle", {})[name] = settled
        load = srv.load_average()
        bench.results.setdefault("_load", {})[name] = load
        print(f"== {name}  (load average {load}; the machine settled in {settled:.0f} s)", flush=True)
        start = time.monotonic()
        try:
            steps[name]()
        except Exception as exc:  # one broken workload must not lose the others' numbers
            traceback.print_exc()
            bench.results[name] = {"failed": f"{type(exc).__name__}: {exc}"}
        bench.results.setdefault("_durations", {})[name] = time.monotonic() - start
        yield name


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions (harness check)")
    parser.add_argument("--runs", type=int, help="runs in the search experiment (default 10000; --quick 500)")
    parser.add_argument("--history", type=int, help="points of the history metric (default 100000; --quick 10000)")
    parser.add_argument("--calls", type=int, help="calls per small-call workload and variant (default 200; quick 40)")
    parser.add_argument("--page-size", type=int, default=100, help="max_results of search-runs (default 100)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    parser.add_argument(
        "--servers",
        type=selected_servers,
        default=list(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)} (e.g. portal alone while working on it; a subset "
        "does not update docs/performance.md unless --out names it)",
    )
    parser.add_argument("--out", help="markdown file to update (default docs/performance.md; '-': none)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL, no database")
    parser.add_argument(
        "--portal-role",
        default="editor",
        choices=["editor", "admin"],
        help="role of the portal's benchmark user (editor: a data scientist; default)",
    )
    parser.add_argument("--portal-workers", type=int, default=2, help="granian workers (./portal up: 2)")
    parser.add_argument("--portal-threads", type=int, default=4, help="granian blocking threads (./portal up: 4)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and temporary files")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.out is None:
        args.out = "docs/performance.md" if len(args.servers) == len(SERVERS) else "-"
    sizes = Sizes.for_args(args)
    bench = Bench(args, sizes, expected=expected_orders(sizes.runs))
    signal.signal(signal.SIGTERM, _interrupt)  # so `kill` still stops the servers
    workloads = selected(args)
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    meta: dict[str, Any] = {
        "quick": args.quick,
        "sizes": sizes.__dict__,
        "page_size": args.page_size,
        "portal_role": args.portal_role,
        "started": started.isoformat(timespec="seconds"),
        "machine": srv.machine_facts(),
        "versions": srv.package_versions(),
        "postgres": srv.postgres_facts(args.pg_url),
        "git": srv.git_revision(),
        "load_start": srv.load_average(),
        "workloads": workloads,
        "servers": args.servers,
        "command": " ".join(["bench/tracking.py", *sys.argv[1:]]),
    }
    print(f"== temporary files and server logs in {tmp}", flush=True)
    try:
        start_servers(bench, tmp)
        setup_ids(bench)
        for _ in run_workloads(bench, workloads):
            pass
    except KeyboardInterrupt:
        print("== interrupted; stopping the servers", flush=True)
        return 130
    finally:
        for server in bench.servers.values():
            srv.stop(server)
        meta["load_end"] = srv.load_average()
        meta["duration_s"] = (datetime.now(UTC) - started).total_seconds()
        report = {"meta": meta, "results": bench.results, "checks": bench.checks}
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        if args.out != "-" and bench.results:
            tracking_report.update_doc(srv.ROOT / args.out, report)
            print(f"== wrote {args.out}", flush=True)
        print(tracking_report.summary_text(report), flush=True)
        if not args.keep_logs and not any("MISMATCH" in c for c in bench.checks):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"== logs kept in {tmp}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

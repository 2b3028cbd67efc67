"""The workloads of bench/tracking.py, one function each.

Every workload measures every variant (a server reached over kept-alive or fresh connections) and records
medians into `Bench.results`; bench/tracking_report.py turns those into tables.
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
from dataclasses import dataclass, field
from typing import Any

import tracking_report
import tracking_servers as srv
from tracking_clients import (
    ORDER_BY_METRIC,
    SEARCH_FILTER,
    Client,
    HttpError,
    Sizes,
    Variant,
    batch_body,
    batch_client,
    latency_stats,
    rotated,
    run_processes,
    seed_client,
    snippet,
    thousand_metrics,
)

# The benchmark -----------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    sizes: Sizes
    servers: dict[str, srv.Server] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # per database: experiment and run ids
    clients: dict[str, Client] = field(default_factory=dict)
    expected: dict[str, list[str]] = field(default_factory=dict)  # run names in each search order

    @property
    def variants(self) -> list[Variant]:
        return [Variant(server, fresh) for server in self.servers.values() for fresh in (False, True)]

    def client(self, variant: Variant) -> Client:
        if variant.key not in self.clients:
            self.clients[variant.key] = Client(variant)
        return self.clients[variant.key]

    @property
    def dbs(self) -> list[str]:
        """The databases in play: "mlflow" (shared by both MLflow servers) and/or "portal"."""
        return sorted({v.db for v in self.variants})

    def primary(self, db: str) -> Variant:
        """The variant that prepares a database's data: MLflow's fastest writer is fresh connections."""
        if db == "portal":
            return Variant(self.servers["portal"], fresh=False)
        return Variant(self.servers.get("mlflow-default") or self.servers["mlflow-w1"], fresh=True)

    def check(self, ok: bool, message: str) -> None:
        self.checks.append(("ok: " if ok else "MISMATCH: ") + message)
        print(("   ok  " if ok else "   !!  ") + message, flush=True)

    def record(self, workload: str, unit: str, variants: dict[str, Any], **extra: Any) -> None:
        self.results[workload] = {"unit": unit, "variants": variants, **extra}
        for key, stats in variants.items():
            print(f"   {key:22} {tracking_report.short(stats, unit)}", flush=True)


def setup_ids(bench: Bench) -> None:
    """Per database: the experiment writes go to, and runs for the single-call workloads."""
    for db in bench.dbs:
        client = bench.client(bench.primary(db))
        _, created = client.call("POST", "experiments/create", {"name": "bench-writes"})
        bench.ids[db] = {"writes": created["experiment_id"]}
    for variant in bench.variants:
        client = bench.client(variant)
        for purpose in ("metric", "param"):
            _, created = client.call(
                "POST",
                "runs/create",
                {
                    "experiment_id": bench.ids[variant.db]["writes"],
                    "start_time": int(time.time() * 1000),
                    "run_name": f"{purpose}-{variant.key}",
                },
            )
            bench.ids[variant.db][f"{purpose}:{variant.key}"] = created["run"]["info"]["run_id"]


def measure_calls(
    bench: Bench,
    workload: str,
    make: Callable[[Variant, int], tuple[str, str, Any]],
    calls: int,
    variants: list[Variant] | None = None,
    warmup: int = 3,
) -> dict[str, Any]:
    """Latency of one kind of call on every variant, in `rounds` blocks with the variants interleaved."""
    variants = variants or bench.variants
    rounds = max(1, min(bench.sizes.rounds, calls))
    samples: dict[str, list[float]] = {v.key: [] for v in variants}
    errors: dict[str, str] = {}
    counter = {v.key: 0 for v in variants}

    def one(variant: Variant) -> float:
        i = counter[variant.key]
        counter[variant.key] += 1
        elapsed, _ = bench.client(variant).call(*make(variant, i))
        return elapsed

    for variant in variants:
        try:
            for _ in range(warmup):
                one(variant)
        except HttpError as exc:
            errors[variant.key] = str(exc)
    for round_no in range(rounds):
        per_round = calls // rounds + (1 if round_no < calls % rounds else 0)
        for variant in rotated(variants, round_no):
            if variant.key in errors:
                continue
            try:
                samples[variant.key].extend(one(variant) for _ in range(per_round))
            except HttpError as exc:
                errors[variant.key] = str(exc)
    return {v.key: ({"error": errors[v.key]} if v.key in errors else latency_stats(samples[v.key])) for v in variants}


def now_ms() -> int:
    return int(time.time() * 1000)


def w_health(bench: Bench) -> None:
    """GET /health: no database, no auth; what the HTTP stack and framework cost per call."""
    bench.record(
        "health", "ms", measure_calls(bench, "health", lambda v, i: ("GET", "/health", None), bench.sizes.calls)
    )


def w_create_run(bench: Bench) -> None:
    def make(variant: Variant, i: int) -> tuple[str, str, Any]:
        return (
            "POST",
            "runs/create",
            {
                "experiment_id": bench.ids[variant.db]["writes"],
                "user_id": "bench",
                "start_time": now_ms(),
                "run_name": f"cr-{variant.key}-{i}",
                "tags": [
                    {"key": "mlflow.user", "value": "bench"},
                    {"key": "mlflow.source.name", "value": "bench.py"},
                    {"key": "mlflow.source.type", "value": "LOCAL"},
                ],
            },
        )

    bench.record("create_run", "ms", measure_calls(bench, "create_run", make, bench.sizes.calls))


def w_log_metric(bench: Bench) -> None:
    def make(variant: Variant, i: int) -> tuple[str, str, Any]:
        run_id = bench.ids[variant.db][f"metric:{variant.key}"]
        return (
            "POST",
            "runs/log-metric",
            {"run_id": run_id, "key": "loss", "value": 1 / (i + 1), "timestamp": now_ms(), "step": i},
        )

    bench.record("log_metric", "ms", measure_calls(bench, "log_metric", make, bench.sizes.calls))


def w_log_param(bench: Bench) -> None:
    def make(variant: Variant, i: int) -> tuple[str, str, Any]:
        run_id = bench.ids[variant.db][f"param:{variant.key}"]
        return "POST", "runs/log-parameter", {"run_id": run_id, "key": f"param_{i}", "value": "0.01"}

    bench.record("log_param", "ms", measure_calls(bench, "log_param", make, bench.sizes.calls))


def w_log_batch(bench: Bench, clients: int) -> None:
    """Throughput of log-batch (1000 metrics each) with `clients` processes, each on its own run."""
    batches = bench.sizes.batches_1 if clients == 1 else bench.sizes.batches_8
    workload = f"log_batch_{clients}"
    runs: dict[str, list[float]] = {v.key: [] for v in bench.variants}
    latencies: dict[str, list[float]] = {v.key: [] for v in bench.variants}
    errors: dict[str, str] = {}
    for rep in range(bench.sizes.batch_reps):
        for variant in rotated(bench.variants, rep):
            if variant.key in errors:
                continue
            client = bench.client(variant)
            arg_lists = []
            for c in range(clients):
                _, created = client.call(
                    "POST",
                    "runs/create",
                    {
                        "experiment_id": bench.ids[variant.db]["writes"],
                        "start_time": now_ms(),
                        "run_name": f"batch{clients}-{variant.key}-{rep}-{c}",
                    },
                )
                run_id = created["run"]["info"]["run_id"]
                headers = {"Content-Type": "application/json", **variant.server.headers}
                bodies = [thousand_metrics(run_id, b) for b in range(batches)]
                arg_lists.append(
                    (
                        client.base + "runs/log-batch",
                        headers,
                        variant.fresh,
                        thousand_metrics(run_id, 0, prefix="warm"),
                        bodies,
                    )
                )
            out = run_processes(batch_client, arg_lists, with_barrier=True)
            failed = [o["error"] for o in out if "error" in o]
            if failed:
                errors[variant.key] = failed[0]
                continue
            span = max(o["end"] for o in out) - min(o["start"] for o in out)
            runs[variant.key].append(clients * batches * 1000 / span)
            for o in out:
                latencies[variant.key].extend(o["latencies"])
    variants: dict[str, Any] = {}
    for variant in bench.variants:
        if variant.key in errors:
            variants[variant.key] = {"error": errors[variant.key]}
            continue
        values = runs[variant.key]
        variants[variant.key] = {
            "n": len(values),
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "batch_median_ms": statistics.median(latencies[variant.key]),
            "batch_p95_ms": latency_stats(latencies[variant.key])["p95"],
        }
    bench.record(workload, "metrics/s", variants, clients=clients, batches_per_client=batches)


# The search experiment ---------------------------------------------------------------------------


def seed_search(bench: Bench) -> None:
    """N runs x (5 params, 5 metrics, 3 tags) through runs/create + runs/log-batch, 8 client processes."""
    n = bench.sizes.runs
    variants = {}
    for db in bench.dbs:
        primary = bench.primary(db)
        client = bench.client(primary)
        _, created = client.call("POST", "experiments/create", {"name": f"bench-search-{n}"})
        experiment_id = created["experiment_id"]
        bench.ids[db]["search"] = experiment_id
        headers = {"Content-Type": "application/json", **primary.server.headers}
        k = bench.sizes.seed_clients
        base_time = now_ms() - n - 1000
        start = time.perf_counter()
        out = run_processes(
            seed_client,
            [(client.base, headers, primary.fresh, experiment_id, list(range(c, n, k)), base_time) for c in range(k)],
            with_barrier=False,
        )
        elapsed = time.perf_counter() - start
        failed = [o["error"] for o in out if "error" in o]
        variants[primary.key] = {"error": failed[0]} if failed else {"median": n / elapsed, "seconds": elapsed, "n": 1}
    for db in bench.dbs:
        srv.analyze_database(bench.args.pg_url, f"bench_{db}")
    bench.record("seed_search", "runs/s", variants, runs=n, clients=bench.sizes.seed_clients)


def search_body(bench: Bench, variant: Variant, kind: str, page_token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "experiment_ids": [bench.ids[variant.db]["search"]],
        "max_results": bench.args.page_size,
        "run_view_type": "ACTIVE_ONLY",
    }
    if kind == "filter":
        body["filter"] = SEARCH_FILTER
    if kind in ("filter", "metric"):
        body["order_by"] = ORDER_BY_METRIC
    if page_token:
        body["page_token"] = page_token
    return body


def run_names(payload: dict[str, Any]) -> list[str]:
    return [r["info"].get("run_name", "") for r in payload.get("runs", [])]


def available(bench: Bench, variants: list[Variant], probe: Callable[[Client], Any]) -> tuple[list[Variant], dict]:  # type: ignore[type-arg]
    """The variants whose server answers the probe; the others as {"unavailable": reason}."""
    ok, missing = [], {}
    for variant in variants:
        try:
            probe(bench.client(variant))
            ok.append(variant)
        except HttpError as exc:
            reason = str(exc)
            if variant.server.name == "portal" and not (srv.ROOT / "experiments" / "search").exists():
                reason = "experiments/search does not exist yet; " + reason
            missing[variant.key] = {"unavailable": reason}
    return ok, missing


def w_search(bench: Bench, workload: str, kind: str) -> None:
    expected = bench.expected[kind][: bench.args.page_size]
    ok, missing = available(
        bench, bench.variants, lambda c: c.call("POST", "runs/search", search_body(bench, c.variant, kind))
    )
    for variant in ok:
        _, payload = bench.client(variant).call("POST", "runs/search", search_body(bench, variant, kind))
        names = run_names(payload)
        bench.check(
            names == expected,
            f"{workload} {variant.key}: first page has the expected {len(expected)} runs "
            f"in order (got {len(names)}{'' if names == expected else ', first ' + str(names[:3])})",
        )
    results = (
        measure_calls(
            bench,
            workload,
            lambda v, i: ("POST", "runs/search", search_body(bench, v, kind)),
            bench.sizes.search_reps,
            ok,
        )
        if ok
        else {}
    )
    bench.record(
        workload,
        "ms",
        {**results, **missing},
        filter=SEARCH_FILTER if kind == "filter" else "",
        order_by=ORDER_BY_METRIC if kind != "default" else [],
    )


def page_through(client: Client, bench: Bench, kind: str) -> tuple[float, list[str], int]:
    """(milliseconds, run names, pages) for following next_page_token to the end."""
    names: list[str] = []
    total = 0.0
    token = None
    pages = 0
    while True:
        elapsed, payload = client.call("POST", "runs/search", search_body(bench, client.variant, kind, token))
        total += elapsed
        pages += 1
        names.extend(run_names(payload))
        token = payload.get("next_page_token")
        if not token:
            return total, names, pages
        if pages > 10 * bench.sizes.runs:
            raise HttpError("page tokens never end")


def w_paging(bench: Bench) -> None:
    expected = bench.expected["metric"]
    ok, missing = available(
        bench, bench.variants, lambda c: c.call("POST", "runs/search", search_body(bench, c.variant, "metric"))
    )
    samples: dict[str, list[float]] = {v.key: [] for v in ok}
    pages: dict[str, int] = {}
    errors: dict[str, str] = {}
    for variant in ok:  # untimed correctness pass of the filtered query, paged
        try:
            _, names, _ = page_through(bench.client(variant), bench, "filter")
            want = bench.expected["filter"]
            bench.check(
                names == want,
                f"paging {variant.key}: filtered search pages through the expected {len(want)} runs (got {len(names)})",
            )
        except HttpError as exc:
            errors[variant.key] = str(exc)
    for rep in range(bench.sizes.paging_reps):
        for variant in rotated(ok, rep):
            if variant.key in errors:
                continue
            try:
                elapsed, names, pages[variant.key] = page_through(bench.client(variant), bench, "metric")
            except HttpError as exc:
                errors[variant.key] = str(exc)
                continue
            samples[variant.key].append(elapsed / 1000)
            if rep == 0:
                dupes = len(names) - len(set(names))
                bench.check(
                    names == expected,
                    f"paging {variant.key}: {len(names)} runs in {pages[variant.key]} pages, "
                    f"{dupes} duplicates, order {'as expected' if names == expected else 'DIFFERENT'}",
                )
    variants: dict[str, Any] = dict(missing)
    for variant in ok:
        if variant.key in errors:
            variants[variant.key] = {"error": errors[variant.key]}
        else:
            values = samples[variant.key]
            variants[variant.key] = {
                "n": len(values),
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "pages": pages[variant.key],
            }
    bench.record("paging", "s", variants, runs=bench.sizes.runs, page_size=bench.args.page_size)


# Metric history ----------------------------------------------------------------------------------


def seed_history(bench: Bench) -> None:
    """One run per database with a metric `loss` of H points (steps 0..H-1), logged 1000 per log-batch."""
    h = bench.sizes.history
    variants = {}
    for db in bench.dbs:
        primary = bench.primary(db)
        client = bench.client(primary)
        _, created = client.call(
            "POST",
            "runs/create",
            {"experiment_id": bench.ids[db]["writes"], "start_time": now_ms(), "run_name": "history"},
        )
        run_id = created["run"]["info"]["run_id"]
        bench.ids[db]["history"] = run_id
        base = now_ms()
        start = time.perf_counter()
        for first in range(0, h, 1000):
            points = [
                ("loss", 1 / (1 + step / 1000) + (step % 7) / 100, base + step, step)
                for step in range(first, min(first + 1000, h))
            ]
            client.call("POST", "runs/log-batch", batch_body(run_id, points))
        elapsed = time.perf_counter() - start
        variants[primary.key] = {"median": h / elapsed, "seconds": elapsed, "n": 1}
    for db in bench.dbs:
        srv.analyze_database(bench.args.pg_url, f"bench_{db}")
    bench.record("seed_history", "metrics/s", variants, points=h)


def full_history(client: Client, bench: Bench) -> tuple[float, list[dict[str, Any]], int]:
    """(milliseconds, points, requests): get-history, following next_page_token when the server pages."""
    params: dict[str, Any] = {"run_id": bench.ids[client.variant.db]["history"], "metric_key": "loss"}
    points: list[dict[str, Any]] = []
    total = 0.0
    calls = 0
    while True:
        elapsed, payload = client.call("GET", "metrics/get-history", params)
        total += elapsed
        calls += 1
        points.extend(payload.get("metrics", []))
        token = payload.get("next_page_token")
        if not token:
            return total, points, calls
        params = {**params, "page_token": token}


def w_history(bench: Bench) -> None:
    h = bench.sizes.history
    samples: dict[str, list[float]] = {v.key: [] for v in bench.variants}
    requests_made: dict[str, int] = {}
    errors: dict[str, str] = {}
    for rep in range(bench.sizes.history_reps):
        for variant in rotated(bench.variants, rep):
            if variant.key in errors:
                continue
            try:
                elapsed, points, requests_made[variant.key] = full_history(bench.client(variant), bench)
            except HttpError as exc:
                errors[variant.key] = str(exc)
                continue
            samples[variant.key].append(elapsed)
            if rep == 0:
                steps = [int(p["step"]) for p in points]
                bench.check(
                    steps == list(range(h)),
                    f"get-history {variant.key}: {len(points)} points of {h}, "
                    f"steps {'0..' + str(h - 1) + ' in order' if steps == list(range(h)) else 'WRONG'} "
                    f"in {requests_made[variant.key]} request(s)",
                )
    variants = {}
    for variant in bench.variants:
        if variant.key in errors:
            variants[variant.key] = {"error": errors[variant.key]}
        else:
            variants[variant.key] = {**latency_stats(samples[variant.key]), "requests": requests_made[variant.key]}
    bench.record("history", "ms", variants, points=h)


def w_bulk_interval(bench: Bench) -> None:
    def make(variant: Variant, i: int) -> tuple[str, str, Any]:
        return (
            "GET",
            "metrics/get-history-bulk-interval",
            {"run_ids": [bench.ids[variant.db]["history"]], "metric_key": "loss", "max_results": 320},
        )

    counts = {}
    for variant in bench.variants:
        try:
            _, payload = bench.client(variant).call(*make(variant, 0))
        except HttpError:
            continue
        steps = [int(p["step"]) for p in payload.get("metrics", [])]
        counts[variant.key] = len(steps)
        has_ends = bool(steps) and steps[0] == 0 and steps[-1] == bench.sizes.history - 1
        bench.check(
            has_ends and steps == sorted(steps),
            f"bulk-interval {variant.key}: {len(steps)} points, first and "
            f"last step included, ascending: {has_ends and steps == sorted(steps)}",
        )
    if len(set(counts.values())) > 1:
        bench.check(False, f"bulk-interval point counts differ between servers: {counts}")
    results = measure_calls(bench, "bulk_interval", make, bench.sizes.bulk_reps)
    for key, count in counts.items():
        if "error" not in results.get(key, {}):
            results[key]["points"] = count
    bench.record("bulk_interval", "ms", results, max_results=320, points=bench.sizes.history)


# The real mlflow client --------------------------------------------------------------------------

CLIENT_SCRIPT = """
import json, os, sys, time
import mlflow

servers = json.loads(sys.argv[1])  # name -> [url, token or null], in this round's order
sequences = int(sys.argv[2])
timings = {name: [] for name in servers}
run_ids = {name: [] for name in servers}
errors = {}

def use(name):
    url, token = servers[name]
    mlflow.set_tracking_uri(url)
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)

def sequence(name):
    use(name)
    start = time.perf_counter()
    run = mlflow.start_run()
    mlflow.log_param("lr", 0.01)
    for i in range(100):
        mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    mlflow.end_run()
    return time.perf_counter() - start, run.info.run_id

try:  # the client process's own first sequence (imports, connections) is nobody's
    sequence(next(iter(servers)))
except Exception:
    pass
for name in servers:  # a block per server: one uncounted sequence warms it up again, then the timed ones
    try:
        for rep in range(sequences + 1):
            seconds, run_id = sequence(name)
            timings[name].append(seconds)
            run_ids[name].append(run_id)
    except Exception as exc:
        mlflow.end_run()
        errors[name] = f"{type(exc).__name__}: {exc}"[:600]
print("BENCH_RESULT " + json.dumps({"timings": timings, "run_ids": run_ids, "errors": errors}), flush=True)
"""


def check_client_run(bench: Bench, server: srv.Server, run_id: str) -> None:
    """What the client logged arrived: a finished run, its param, 100 points of history."""
    client = bench.client(Variant(server, fresh=False))
    try:
        _, got = client.call("GET", "runs/get", {"run_id": run_id})
        _, history = client.call("GET", "metrics/get-history", {"run_id": run_id, "metric_key": "loss"})
    except HttpError as exc:
        bench.check(False, f"client sequence {server.name}: cannot read the run back: {exc}")
        return
    params = {p["key"]: p["value"] for p in got["run"]["data"].get("params", [])}
    status = got["run"]["info"].get("status")
    points = len(history.get("metrics", []))
    ok = status == "FINISHED" and params.get("lr") == "0.01" and points == 100
    bench.check(ok, f"client sequence {server.name}: run {status}, lr={params.get('lr')}, {points} loss points")


def w_client_sequence(bench: Bench) -> None:
    """mlflow.start_run(); log_param; 100 x log_metric; end_run(), timed inside a client subprocess.

    This machine's speed moves by tens of percent within minutes (the same sequence, the same server:
    308 and 448 ms a few minutes apart, with CPU time per call moving as much), so every server must be
    measured in the same stretches of time. Each round starts one client process, which takes the
    servers in turn, in an order that rotates from round to round: on each, one uncounted sequence,
    then CLIENT_SEQUENCES timed ones, back to back. The uncounted one matters: a server whose
    sequences alternate with another server's runs about a tenth slower (its caches go cold; measured
    for MLflow: 1,211 against 1,100 ms), so each server is timed warm, as it is with a client of its
    own."""
    servers = list(bench.servers.values())
    timings: dict[str, list[float]] = {f"{server.name}/client": [] for server in servers}
    first: dict[str, list[float]] = {key: [] for key in timings}
    errors: dict[str, str] = {}
    last_run: dict[str, tuple[srv.Server, str]] = {}
    for round_ in range(bench.sizes.client_reps):
        order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
        order = [server for server in order if f"{server.name}/client" not in errors]
        if not order:
            break
        result = _client_process(order, CLIENT_SEQUENCES)
        if isinstance(result, str):  # the process itself failed: every server of the round
            errors.update({f"{server.name}/client": result for server in order})
            break
        for server in order:
            key = f"{server.name}/client"
            if server.name in result["errors"]:
                errors[key] = snippet(result["errors"][server.name])
                continue
            times = [t * 1000 for t in result["timings"][server.name]]
            first[key].append(times[0])
            timings[key] += times[1:]
            last_run[key] = (server, result["run_ids"][server.name][-1])
    variants: dict[str, Any] = {}
    for key, samples in timings.items():
        if key in errors or not samples:
            variants[key] = {"error": errors.get(key, "no sequence ran")}
        else:
            stats = latency_stats(samples)
            del stats["stalls"]  # a whole sequence always takes longer than a stall
            # The uncounted first sequence of each block: the server after another server's turn.
            variants[key] = {**stats, "first_ms": statistics.median(first[key])}
            check_client_run(bench, *last_run[key])
    bench.record("client_sequence", "ms", variants, rounds=bench.sizes.client_reps, per_process=CLIENT_SEQUENCES)


CLIENT_SEQUENCES = 3  # timed sequences per server and round, after an uncounted one


def _client_process(servers: list[srv.Server], sequences: int) -> dict[str, Any] | str:
    """One client process taking the servers in turn: its timings and run ids per server, or what
    went wrong."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="120", PYTHONUNBUFFERED="1")
    plan = {
        server.name: [server.url, server.headers.get("Authorization", "").removeprefix("Bearer ") or None]
        for server in servers
    }
    try:
        out = subprocess.run(
            [sys.executable, "-c", CLIENT_SCRIPT, json.dumps(plan), str(sequences)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=tempfile.gettempdir(),
        )
    except subprocess.TimeoutExpired:
        return "timed out"
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        return snippet(out.stderr[-600:] or out.stdout[-600:])
    return dict(json.loads(line.removeprefix("BENCH_RESULT ")))

"""The client side of bench/tracking.py: sizes, raw-HTTP clients, the generated data, and the client
processes that load the servers concurrently.
"""

# Benchmark data is pseudo-random on purpose, seeded for reproducibility; nothing here is security-related.
# ruff: noqa: S311

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import tracking_servers as srv

API = "/api/2.0/mlflow/"
STALL_MS = 38.0  # Linux delays an ACK by at least 40 ms: a call this slow on localhost hit a Nagle stall
LRS = ("0.1", "0.01", "0.001")
SEARCH_FILTER = "metrics.acc > 0.9 and params.lr = '0.01'"
ORDER_BY_METRIC = ["metrics.acc DESC"]


@dataclass(frozen=True)
class Sizes:
    """How much of everything: --quick shrinks every count, the full run uses the issue's sizes."""

    runs: int
    history: int
    calls: int  # per small-call workload and variant
    rounds: int  # small calls are measured in this many blocks, variants interleaved
    search_reps: int
    paging_reps: int
    history_reps: int
    bulk_reps: int
    batches_1: int  # log-batch requests of the single client
    batches_8: int  # log-batch requests of each of the eight clients
    batch_reps: int
    client_reps: int
    seed_clients: int = 8

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            sizes = cls(
                runs=500,
                history=10_000,
                calls=40,
                rounds=2,
                search_reps=8,
                paging_reps=1,
                history_reps=2,
                bulk_reps=8,
                batches_1=5,
                batches_8=3,
                batch_reps=1,
                client_reps=2,
            )
        else:
            sizes = cls(
                runs=10_000,
                history=100_000,
                calls=200,
                rounds=4,
                search_reps=20,
                paging_reps=3,
                history_reps=5,
                bulk_reps=20,
                batches_1=20,
                batches_8=8,
                batch_reps=3,
                client_reps=5,
            )
        changes = {name: getattr(args, name) for name in ("runs", "history", "calls") if getattr(args, name)}
        return cls(**{**sizes.__dict__, **changes})


# HTTP --------------------------------------------------------------------------------------------


class HttpError(Exception):
    pass


@dataclass(frozen=True)
class Variant:
    """One way of reaching one server: kept-alive connections or a fresh connection per call."""

    server: srv.Server
    fresh: bool

    @property
    def key(self) -> str:
        return f"{self.server.name}/{'fresh' if self.fresh else 'keep'}"

    @property
    def db(self) -> str:
        return "portal" if self.server.name == "portal" else "mlflow"


class Client:
    """Raw HTTP to one server. The timed span covers sending, receiving and decoding the JSON answer."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.base = variant.server.url + API
        self.headers = {"Content-Type": "application/json", **variant.server.headers}
        self.session = None if variant.fresh else requests.Session()

    def call(self, method: str, path: str, payload: Any = None) -> tuple[float, Any]:
        """(milliseconds, decoded JSON). `payload` is the JSON body of a POST, the query of a GET.

        `path` is relative to the MLflow API; one starting with "/" is relative to the server and
        may answer something other than JSON (MLflow's /health says "OK")."""
        url = self.variant.server.url + path if path.startswith("/") else self.base + path
        if method == "GET":
            kwargs: dict[str, Any] = {"params": payload}
        else:
            kwargs = {"data": payload if isinstance(payload, bytes) else json.dumps(payload).encode()}
        send = self.session.request if self.session is not None else requests.request
        start = time.perf_counter()
        response = send(method, url, headers=self.headers, timeout=600, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text if path.startswith("/") else None
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200 or body is None:
            raise HttpError(f"{method} {path}: HTTP {response.status_code}: {snippet(response.text)}")
        return elapsed, body


def snippet(text: str) -> str:
    text = " ".join(text.split())
    if "<title>" in text:
        text = text.split("<title>", 1)[1].split("</title>", 1)[0]
    return text[:200]


def latency_stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p95": ordered[max(0, -(-95 * len(ordered) // 100) - 1)],
        "mean": statistics.fmean(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "stalls": sum(1 for s in ordered if s >= STALL_MS),
    }


def rotated(items: list[Variant], shift: int) -> list[Variant]:
    shift %= len(items)
    return items[shift:] + items[:shift]


# The data ----------------------------------------------------------------------------------------


def run_data(i: int) -> dict[str, Any]:
    """Run i of the search experiment: 5 params, 5 metrics, 3 tags, the same on every server."""
    rng = random.Random(i)
    acc = rng.random()
    return {
        "name": f"run-{i:05d}",
        "acc": acc,
        "lr": LRS[i % 3],
        "params": [
            ("lr", LRS[i % 3]),
            ("batch_size", str(2 ** (4 + i % 5))),
            ("optimizer", ("adam", "sgd", "rmsprop")[(i // 3) % 3]),
            ("epochs", str(10 + i % 20)),
            ("seed", str(i)),
        ],
        "metrics": [
            ("acc", acc),
            ("loss", 1 - acc + rng.random() / 10),
            ("f1", rng.random()),
            ("precision", rng.random()),
            ("recall", rng.random()),
        ],
        "tags": [("team", ("vision", "nlp", "tabular")[i % 3]), ("dataset", f"ds-{i % 7}"), ("purpose", "benchmark")],
    }


def expected_orders(runs: int) -> dict[str, list[str]]:
    data = [run_data(i) for i in range(runs)]
    by_acc = sorted(data, key=lambda d: -d["acc"])
    return {
        "metric": [d["name"] for d in by_acc],
        "filter": [d["name"] for d in by_acc if d["acc"] > 0.9 and d["lr"] == "0.01"],
        "default": [f"run-{i:05d}" for i in reversed(range(runs))],  # start_time DESC
    }


def batch_body(run_id: str, metrics: list[tuple[str, float, int, int]], params=(), tags=()) -> bytes:  # type: ignore[no-untyped-def]
    return json.dumps(
        {
            "run_id": run_id,
            "metrics": [{"key": k, "value": v, "timestamp": ts, "step": s} for k, v, ts, s in metrics],
            "params": [{"key": k, "value": v} for k, v in params],
            "tags": [{"key": k, "value": v} for k, v in tags],
        }
    ).encode()


def thousand_metrics(run_id: str, batch: int, prefix: str = "m") -> bytes:
    """One log-batch of 1000 metrics: 10 keys x 100 steps, the steps continuing batch after batch."""
    rng = random.Random(batch)
    now = int(time.time() * 1000)
    points = [
        (f"{prefix}{k}", rng.random(), now + step, step)
        for step in range(batch * 100, batch * 100 + 100)
        for k in range(10)
    ]
    return batch_body(run_id, points)


# Subprocess clients (processes, not threads, so the client side never shares one GIL) -----------


def _post(session: requests.Session | None, url: str, headers: dict[str, str], body: bytes) -> None:
    send = session.post if session is not None else requests.post
    response = send(url, data=body, headers=headers, timeout=600)
    if response.status_code != 200:
        raise HttpError(f"HTTP {response.status_code}: {snippet(response.text)}")


def batch_client(
    url: str, headers: dict[str, str], fresh: bool, warm: bytes, bodies: list[bytes], barrier: Any, results: Any
) -> None:
    session = None if fresh else requests.Session()
    try:
        _post(session, url, headers, warm)
        barrier.wait(timeout=120)
        start = time.perf_counter()
        latencies = []
        for body in bodies:
            t = time.perf_counter()
            _post(session, url, headers, body)
            latencies.append((time.perf_counter() - t) * 1000)
        results.put({"start": start, "end": time.perf_counter(), "latencies": latencies})
    except Exception as exc:
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def seed_client(
    base: str,
    headers: dict[str, str],
    fresh: bool,
    experiment_id: str,
    indices: list[int],
    base_time: int,
    results: Any,
) -> None:
    session = None if fresh else requests.Session()
    send = session.post if session is not None else requests.post
    try:
        for i in indices:
            data = run_data(i)
            response = send(
                base + "runs/create",
                timeout=600,
                headers=headers,
                data=json.dumps(
                    {
                        "experiment_id": experiment_id,
                        "start_time": base_time + i,
                        "run_name": data["name"],
                    }
                ),
            )
            if response.status_code != 200:
                raise HttpError(f"runs/create: HTTP {response.status_code}: {snippet(response.text)}")
            run_id = response.json()["run"]["info"]["run_id"]
            metrics = [(k, v, base_time + i, 0) for k, v in data["metrics"]]
            _post(session, base + "runs/log-batch", headers, batch_body(run_id, metrics, data["params"], data["tags"]))
        results.put({"count": len(indices)})
    except Exception as exc:
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def run_processes(
    target: Callable[..., None], arg_lists: list[tuple[Any, ...]], with_barrier: bool, timeout: float = 3600
) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    barrier = ctx.Barrier(len(arg_lists)) if with_barrier else None
    procs = [
        ctx.Process(target=target, args=(*args, barrier, results) if with_barrier else (*args, results))
        for args in arg_lists
    ]
    for proc in procs:
        proc.start()
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < len(procs):
        try:
            out.append(results.get(timeout=1))
        except queue.Empty:
            # A child that died without reporting (killed, crashed in C) must not hang the benchmark.
            if all(not p.is_alive() for p in procs) or time.monotonic() > deadline:
                if barrier is not None:
                    barrier.abort()
                out += [{"error": "a client process died without a result"}] * (len(procs) - len(out))
    for proc in procs:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.terminate()
    return out

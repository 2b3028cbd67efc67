"""The experiment page (the runs table) and the run chart at scale: server time and SQL queries.

    .venv/bin/python bench/experiment_page.py              # 10,000 runs, a 1,000,000-point metric
    .venv/bin/python bench/experiment_page.py --runs 1000 --points 100000   # a quick check

MLflow's UI has no server-rendered equivalent (its page is a single-page app calling runs/search,
which bench/tracking.py measures), so this one reports the portal's own numbers against the issue's
target: under 150 ms of server time for the runs table of a 10,000-run experiment.

It drops and recreates the PostgreSQL database `bench_page` (no other), migrates it, seeds an
experiment of `--runs` runs (5 params, 5 metrics, 3 tags each, through the same service functions
the API uses) and one run with a `--points`-point metric, then times each page in process with
Django's test client (the view, its templates and its queries: server time, without the network),
several times after a warm-up, and counts the SQL queries of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchdb import recreate_database  # bench/ is on the path: the benchmarks run as scripts

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_page"


def seed(runs: int, points: int) -> tuple[int, str]:
    import random

    from django.contrib.auth import get_user_model

    from accounts.services import set_role
    from experiments import services
    from experiments.services import MetricPoint

    user = get_user_model().objects.create_user("bench", password="bench-password-1")  # noqa: S106
    set_role(user, "editor", actor=user)
    experiment = services.create_experiment("bench-page", owner=user)
    rng = random.Random(7)  # noqa: S311  (benchmark data, not secrets)
    start = time.monotonic()
    for i in range(runs):
        run = services.create_run(experiment, user_id="bench", start_time=1_700_000_000_000 + i, run_name=f"run-{i}",
                                  tags=[("team", f"t{i % 4}"), ("stage", "dev"), ("seed", str(i))])  # fmt: skip
        params = [("lr", rng.choice(["0.1", "0.01", "0.001"])), ("layers", str(rng.randint(1, 8))),
                  ("optimizer", rng.choice(["adam", "sgd"])), ("batch", "32"), ("dropout", "0.2")]  # fmt: skip
        metrics = [MetricPoint(k, rng.random(), 1_700_000_000_000 + i, 0) for k in ("acc", "loss", "f1", "auc", "mae")]
        services.log_batch(run, metrics=metrics, params=params, tags=[])
    print(f"seeded {runs:,} runs in {time.monotonic() - start:.0f} s", flush=True)
    long_run = services.create_run(experiment, user_id="bench", start_time=None, run_name="long", tags=[])
    for first in range(0, points, 1000):
        steps = range(first, min(first + 1000, points))
        services.log_metrics(long_run, [MetricPoint("loss", 1 / (s + 1), 1_700_000_000_000 + s, s) for s in steps])
    print(f"seeded a {points:,}-point metric", flush=True)
    return experiment.pk, long_run.pk


def measure(experiment_id: int, long_run_id: str, reps: int, points: int) -> list[tuple[str, float, float, int]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    chart = f"/experiments/runs/{long_run_id}/metrics/loss.json"
    pages = [
        ("runs table, newest first", f"/experiments/{experiment_id}/", {}),
        ("runs table, sorted by metrics.acc", f"/experiments/{experiment_id}/", {"sort": "metrics.acc", "dir": "desc"}),
        ("runs table, sorted, page 50", f"/experiments/{experiment_id}/",
         {"sort": "metrics.acc", "dir": "desc", "page": "50"}),
        ("runs table, filtered and sorted", f"/experiments/{experiment_id}/",
         {"sort": "metrics.acc", "dir": "desc", "filter": "metrics.acc > 0.9 and params.lr = '0.01'"}),
        (f"run page of the {points:,}-point run", f"/experiments/runs/{long_run_id}/", {}),
        (f"chart data, {points:,} points by step", chart, {}),
        (f"chart data, {points:,} points by time (cached)", chart, {"x": "time"}),
    ]  # fmt: skip
    results = []
    for label, path, query in pages:
        times = []
        for _ in range(reps + 2):
            start = time.perf_counter()
            response = client.get(path, query)
            times.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{label}: HTTP {response.status_code}")
        with CaptureQueriesContext(connection) as queries:
            client.get(path, query)
        results.append((label, statistics.median(times[2:]), max(times[2:]), len(queries)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = recreate_database(args.pg_url, DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")  # static files from the finders
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # Django's test client
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    experiment_id, long_run_id = seed(args.runs, args.points)
    call_command("dbshell", "--", "-q", "-c", "VACUUM ANALYZE")
    print(f"\n| page ({args.runs:,} runs) | median | max | SQL queries |\n|---|---|---|---|")
    for label, median, worst, queries in measure(experiment_id, long_run_id, args.reps, args.points):
        print(f"| {label} | {median:.1f} ms | {worst:.1f} ms | {queries} |")


if __name__ == "__main__":
    main()

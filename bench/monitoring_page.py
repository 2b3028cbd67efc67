"""The monitoring page of a deployment over 30 days of per-minute rollups: server time and SQL queries.

    .venv/bin/python bench/monitoring_page.py             # 30 days, 2 series (stable and canary)
    .venv/bin/python bench/monitoring_page.py --days 7     # a quick check

Issue #7's target: thirty days of per-minute rollups render in under 200 ms of server time.

It drops and recreates the PostgreSQL database `bench_monitoring` (no other), migrates it, creates one
deployment with `--days` of per-minute rollups on two series (a stable and a canary arm, with latency
buckets, errors and labels), plus 30 days of drift windows every 15 minutes for 8 features, then times
`GET /monitoring/<name>/?range=30d` (and the other ranges) in process with Django's test client: the view,
its SQL and its templates, without the network, after a warm-up, several times.
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
DATABASE = "bench_monitoring"


def seed(days: int) -> tuple[object, str]:
    import random
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.services import set_role
    from deployments.models import Deployment
    from monitoring.models import BUCKET_FIELDS, DriftResult, MinuteRollup
    from monitoring.rollups import epoch_minute
    from registry import services as registry

    user = get_user_model().objects.create_user("bench", password="bench-password-1")  # noqa: S106
    set_role(user, "editor", actor=user)
    model = registry.create_registered_model("bench", owner=user)
    deployment = Deployment.objects.create(name="bench", registered_model=model, selector="1", owner=user)
    rng = random.Random(7)  # noqa: S311  (benchmark data)
    end = timezone.now().replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    rows = []
    minutes = days * 24 * 60
    for m in range(minutes):
        minute = start + timedelta(minutes=m)
        for version, arm in ((1, "stable"), (2, "canary")):
            requests = rng.randint(50, 150) if arm == "stable" else rng.randint(5, 15)
            buckets = dict.fromkeys(BUCKET_FIELDS, 0)
            buckets["b02"], buckets["b03"], buckets["b05"] = requests - 4, 3, 1
            rows.append(MinuteRollup(
                deployment=deployment, model_version=version, arm=arm, minute=minute,
                epoch_minute=epoch_minute(minute), requests=requests, errors=rng.randint(0, 2),
                latency_sum_ms=requests * 1.9, labelled=requests // 2, correct=int(requests // 2 * 0.9), **buckets,
            ))  # fmt: skip
        if len(rows) >= 20_000:
            MinuteRollup.objects.bulk_create(rows)
            rows = []
    MinuteRollup.objects.bulk_create(rows)
    drift = [
        DriftResult(deployment=deployment, window_end=start + timedelta(minutes=15 * w), window_minutes=60,
                    window_epoch_minute=epoch_minute(start) + 15 * w,
                    feature=f"f{k}", kind="numeric", n=500, psi=rng.random() * 0.3, ks=0.1, severity="none")
        for w in range(days * 96) for k in range(8)
    ]  # fmt: skip
    DriftResult.objects.bulk_create(drift, batch_size=20_000)
    return user, deployment.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    os.environ.update({
        "DATABASE_URL": recreate_database(args.pg, DATABASE), "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": "",
        "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "testserver",
    })  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    user, name = seed(args.days)
    print(f"seeded {args.days} days of per-minute rollups (2 series) in {time.monotonic() - started:.0f} s")
    client = Client()
    client.force_login(user)
    print("\n| page | median ms | p90 ms | SQL queries |")
    print("|---|---:|---:|---:|")
    for range_name in ("1h", "24h", "7d", "30d"):
        url = f"/monitoring/{name}/?range={range_name}"
        assert client.get(url).status_code == 200
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        times.sort()
        print(f"| {url} | {statistics.median(times):.1f} | {times[int(0.9 * len(times)) - 1]:.1f} | {len(queries)} |")
    overview = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        client.get("/monitoring/")
        overview.append((time.perf_counter() - began) * 1000)
    print(
        f"| /monitoring/ | {statistics.median(overview):.1f} | {sorted(overview)[int(0.9 * args.repeat) - 1]:.1f} | |"
    )


if __name__ == "__main__":
    main()

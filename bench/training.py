"""Training jobs: submit-to-start latency on a real worker, and what the portal's logging adds to model.fit.

    .venv/bin/python bench/training.py                 # 20 submissions, 12 fit pairs on 20,000 rows
    .venv/bin/python bench/training.py --jobs 5 --repeat 2 --rows 5000    # a quick check

Issue #5's targets: submit-to-start under 1 s median with Redis and an idle worker; logging adds under 5%
to training time compared with plain `model.fit` on the same data.

It drops and recreates the PostgreSQL database `bench_training` (no other), migrates it, and pushes one
synthetic tabular dataset version. Then:

1. **Submit-to-start**: starts a real Celery worker (Redis broker, `training` queue, one process) and, one
   at a time, submits a small training job as the API does and waits for it to finish, so the worker is idle
   at each submission. Reported from the job rows: created → sent to the broker → claimed by the worker.
2. **Logging overhead**: in this process, alternately (a) the plain Keras loop: the same prepared data, the
   same model from the same trainer, `model.fit` with the same epochs, batch size and seed and no callbacks;
   and (b) the portal's training job (`runner.execute`, with its heartbeat thread): the same fit plus the
   cancel and timeout watch (the heartbeat thread), the per-epoch metrics written to PostgreSQL and the
   progress updates. Both
   time `model.fit` alone (the job reports it as `fit_seconds`); the ratio of medians is the overhead.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchdb import recreate_database  # bench/ is on the path: the benchmarks run as scripts

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_training"
PARAMS = {"hidden_units": [64, 32], "dropout": 0.1, "learning_rate": 0.001, "batch_size": 32,
          "early_stopping_patience": 0, "class_weight": "none"}  # fmt: skip


def synthetic_csv(rows: int) -> bytes:
    rng = random.Random(5)  # noqa: S311  (benchmark data)
    lines = ["age,plan,spend,visits,churned"]
    for _ in range(rows):
        age, plan = rng.randint(18, 80), rng.choice(["basic", "pro", "team", "enterprise"])
        spend, visits = round(rng.uniform(0, 100), 2), rng.randint(0, 30)
        churned = int((plan == "basic" and spend < 40) or age > 70 or (visits < 3 and rng.random() < 0.5))
        lines.append(f"{age},{plan},{spend},{visits},{churned}")
    return ("\n".join(lines) + "\n").encode()


def seed(rows: int) -> tuple[Any, Any, Any]:
    from django.contrib.auth import get_user_model

    from accounts.services import set_role
    from datasets.services import push_version
    from experiments import services as tracking

    user = get_user_model().objects.create_user("bench", password="bench-password-1")  # noqa: S106
    set_role(user, "editor", actor=user)
    data = synthetic_csv(rows)
    version, _ = push_version("churn", iter([data]), filename="churn.csv", message="bench", author=user)
    version.refresh_from_db()
    experiment = tracking.create_experiment("bench-training", owner=user)
    return user, version, experiment


def submit_to_start(user: Any, version: Any, experiment: Any, jobs: int, env: dict[str, str]) -> list[str]:
    from experiments.training.services import start_training_job
    from jobs.models import Job

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mlops_portal", "worker", "--loglevel", "WARNING", "--queues",
         "training", "--concurrency", "1", "--without-gossip", "--without-mingle", "--hostname", "bench@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(8)  # the worker connects and forks its pool process
        rows = []
        for n in range(jobs + 1):  # the first warms the pool process up (imports), and is not counted
            job = start_training_job(experiment, dataset_version=version, target="churned",
                                     trainer="keras_linear_classifier", params={"epochs": 1}, seed=n,
                                     requested_by=user)  # fmt: skip
            deadline = time.monotonic() + 300
            while not Job.objects.get(pk=job.pk).is_finished:
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job.pk} did not finish; is the worker running?")
                time.sleep(0.05)
            job.refresh_from_db()
            if n:
                rows.append((job.enqueued_at - job.created_at, job.started_at - job.enqueued_at,
                             job.started_at - job.created_at))  # fmt: skip
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
    total = sorted(r[2].total_seconds() * 1000 for r in rows)
    dispatch = statistics.median(r[0].total_seconds() * 1000 for r in rows)
    claim = statistics.median(r[1].total_seconds() * 1000 for r in rows)
    median = statistics.median(total)
    verdict = "meets" if median < 1000 else "misses"
    return [
        "| measure | value |", "|---|---:|", f"| jobs submitted one at a time to an idle worker | {len(rows)} |",
        f"| submit → sent to the broker (median) | {dispatch:.1f} ms |",
        f"| sent → claimed by the worker (median) | {claim:.1f} ms |",
        f"| **submit → start, median** | **{median:.1f} ms** ({verdict} the 1 s target) |",
        f"| submit → start, p90 / max | {total[int(0.9 * len(total)) - 1]:.1f} / {total[-1]:.1f} ms |",
    ]  # fmt: skip


def plain_fit(version: Any, epochs: int) -> tuple[float, float]:
    import keras
    import tensorflow as tf

    from experiments.training import get_trainer
    from experiments.training.data import prepare
    from experiments.training.job import _tensors

    trainer = get_trainer("keras_mlp_classifier")
    data = prepare(version, "churned", "classification", 0)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    model = trainer().build(data, {**PARAMS, "epochs": epochs})
    x = {split: _tensors(columns) for split, columns in data.x.items()}
    began = time.perf_counter()
    model.fit(x["train"], data.y["train"], validation_data=(x["validation"], data.y["validation"]), epochs=epochs,
              batch_size=PARAMS["batch_size"], verbose=0, shuffle=True)  # fmt: skip
    return time.perf_counter() - began, FIT_CPU[-1]


def portal_fit(user: Any, version: Any, experiment: Any, epochs: int) -> tuple[float, float]:
    from experiments.training.services import start_training_job
    from jobs import runner
    from jobs.models import Job

    job = start_training_job(experiment, dataset_version=version, target="churned", trainer="keras_mlp_classifier",
                             params={**PARAMS, "epochs": epochs}, seed=0, requested_by=user)  # fmt: skip
    outcome = runner.execute(job.pk)
    job = Job.objects.get(pk=job.pk)
    if outcome != "succeeded":
        raise SystemExit(f"the training job {outcome}: {job.error}")
    return float(job.result["fit_seconds"]), FIT_CPU[-1]


FIT_CPU: list[float] = []


def time_fit_cpu() -> None:
    """Record the CPU time (all threads of this process: the heartbeat's too) of every `model.fit`."""
    import keras

    fit = keras.Model.fit

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.process_time()
        try:
            return fit(self, *args, **kwargs)
        finally:
            FIT_CPU.append(time.process_time() - began)

    keras.Model.fit = timed


def overhead(user: Any, version: Any, experiment: Any, repeat: int, epochs: int) -> list[str]:
    time_fit_cpu()
    plain_fit(version, 1)  # warm-up: TensorFlow's graph building and the data path
    plain: list[tuple[float, float]] = []
    portal: list[tuple[float, float]] = []
    for n in range(repeat):
        order = ("plain", "portal") if n % 2 == 0 else ("portal", "plain")
        for which in order:
            if which == "plain":
                plain.append(plain_fit(version, epochs))
            else:
                portal.append(portal_fit(user, version, experiment, epochs))
    wall = statistics.median(q[0] for q in portal) / statistics.median(p[0] for p in plain) - 1
    paired = statistics.median(q[0] / p[0] for p, q in zip(plain, portal, strict=True)) - 1
    cpu = statistics.median(q[1] for q in portal) / statistics.median(p[1] for p in plain) - 1
    verdict = "meets" if wall < 0.05 else "misses"
    return [
        "| measure | plain `model.fit` | portal training job | overhead |", "|---|---:|---:|---:|",
        f"| wall seconds, median of {repeat} | {statistics.median(p[0] for p in plain):.2f} | "
        f"{statistics.median(q[0] for q in portal):.2f} | {wall * 100:+.1f}% |",
        f"| wall, median of the {repeat} pairs' ratios | | | **{paired * 100:+.1f}%** |",
        f"| CPU seconds of the process (all threads), median | {statistics.median(p[1] for p in plain):.2f} | "
        f"{statistics.median(q[1] for q in portal):.2f} | {cpu * 100:+.1f}% |",
        f"| all wall times (s) | {', '.join(f'{p[0]:.2f}' for p in plain)} | "
        f"{', '.join(f'{q[0]:.2f}' for q in portal)} | |",
        f"| verdict (medians of wall time) | | | {verdict} the 5% target |",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=12)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()
    var = ROOT / "var" / "bench-training"
    os.environ.update({
        "DATABASE_URL": recreate_database(args.pg, DATABASE), "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": args.redis,
        "CELERY_BROKER_URL": args.redis, "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING", "PORTAL_VAR_DIR": str(var),
        "ARTIFACT_ROOT": str(var / "artifacts"), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
    })  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    user, version, experiment = seed(args.rows)
    print(f"dataset: {version.row_count} rows; {os.cpu_count()} cores\n")
    print("### Submit to start\n")
    print("\n".join(submit_to_start(user, version, experiment, args.jobs, dict(os.environ))))
    print(f"\n### Logging overhead ({args.rows} rows, {args.epochs} epochs, batch {PARAMS['batch_size']})\n")
    print("\n".join(overhead(user, version, experiment, args.repeat, args.epochs)))


if __name__ == "__main__":
    main()

"""The model server against `mlflow models serve`, the same Keras model, the same requests, one run.

    .venv/bin/python bench/model_server.py                 # 2,000 sequential requests, 20 s of load each
    .venv/bin/python bench/model_server.py --requests 300 --seconds 5   # a quick check

It trains a small Keras MLP (8 features, 64-32-1), saves it once in MLflow's format with a signature and
an input example, then:

- serves that directory with `mlflow models serve --env-manager local` (MLflow's scoring server, the same
  version as the client), and
- registers the same files as a model version in a throwaway portal (SQLite under a temporary
  PORTAL_VAR_DIR, nothing else touched), deploys it, and starts `manage.py serve_models`;

and measures on each, with the same raw-HTTP client (http.client, one kept-alive connection per client
thread, TCP_NODELAY on so no request waits on Nagle's algorithm):

1. single-row latency: `--requests` sequential requests after a warm-up, median and p95;
2. throughput: 8 concurrent clients for `--seconds`, requests per second, and their median latency;
3. the raw in-process call of the same model through the portal's loader (its traced graph), so the
   server's overhead over it is reported.

MLflow is sent `{"inputs": [[...]]}` on /invocations; the portal the same body on
/v1/models/bench/invocations (MLflow's protocol) and `{"instances": [[...]]}` on :predict (TF Serving's).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEATURES = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_model(target: Path) -> list[float]:
    """Train and save the model; return one input row."""
    import keras
    import mlflow.tensorflow
    import numpy as np
    from mlflow.models import infer_signature

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=FEATURES) + 0.1 * rng.normal(size=2000)).astype("float32")
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(32, activation="relu"),
         keras.layers.Dense(1)]
    )  # fmt: skip
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, verbose=0)
    mlflow.tensorflow.save_model(
        model, str(target), signature=infer_signature(x[:5], model.predict(x[:5], verbose=0)), input_example=x[:1],
        pip_requirements=["tensorflow"],
    )  # fmt: skip
    return [float(v) for v in x[0]]


class Client:
    """One kept-alive HTTP/1.1 connection with Nagle off."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.connection.connect()
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        self.connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000


def wait_ready(port: int, path: str, body: bytes, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if Client(port).post(path, body)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no answer on port {port} after {timeout:.0f} s")


def sequential(port: int, path: str, body: bytes, count: int) -> dict[str, float]:
    client = Client(port)
    for _ in range(min(50, count)):
        client.post(path, body)
    times = []
    for _ in range(count):
        status, ms = client.post(path, body)
        assert status == 200, status
        times.append(ms)
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(len(times) * 0.95) - 1]}


def concurrent(port: int, path: str, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    stop = time.monotonic() + seconds
    results: list[list[float]] = [[] for _ in range(clients)]
    errors = [0]

    def run(index: int) -> None:
        client = Client(port)
        while time.monotonic() < stop:
            status, ms = client.post(path, body)
            if status == 200:
                results[index].append(ms)
            else:
                errors[0] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    times = sorted(t for r in results for t in r)
    return {"rps": len(times) / elapsed, "median_ms": statistics.median(times), "errors": errors[0]}


def raw_call(model_dir: Path, row: list[float], count: int) -> float:
    """Median ms of the portal loader's in-process call on one row (what a server cannot beat)."""
    import numpy as np

    from deployments.server import loader

    model = loader._load_keras(model_dir / "data", loader.parse_signature(_mlmodel(model_dir)))
    array = np.asarray([row], dtype="float32")
    for _ in range(50):
        model.predict(array)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        model.predict(array)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _prefixed(values: dict[str, float]) -> dict[str, float]:
    return {f"c_{k}": v for k, v in values.items()}


def _mlmodel(model_dir: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((model_dir / "MLmodel").read_text())


def portal_setup(var: Path, model_dir: Path) -> dict[str, str]:
    """A throwaway portal (SQLite) with the model registered and deployed; returns its environment."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mlops_portal.settings", "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "HTTPS": "false", "PORTAL_VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3",
            "ARTIFACT_ROOT": str(var / "artifacts"), "LOG_LEVEL": "WARNING", "REDIS_URL": "",
            "MODEL_SERVER_LOG_FLUSH_SECONDS": "1",
        }
    )  # fmt: skip
    script = f"""
import django, shutil
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from accounts.services import set_role
from experiments import artifacts, services as tracking
from registry import services as registry
from deployments import services as deployments
user = get_user_model().objects.create_user("bench", password="bench-password-1")
set_role(user, "editor", actor=user)
experiment = tracking.create_experiment("bench", owner=user)
run = tracking.create_run(experiment, user_id="bench", start_time=None, run_name="bench", tags=[])
target = artifacts.resolve(artifacts.relative_of_uri(run.artifact_uri)) / "model"
shutil.copytree({str(model_dir)!r}, target)
model = registry.create_registered_model("bench", owner=user)
source = f"runs:/{{run.run_uuid}}/model"
version = registry.create_model_version(model, registry.resolve_source(user, source), source=source, creator=user)
deployment = deployments.create_deployment("bench", model, "1", owner=user)
rollout = deployments.deploy(deployment, version, actor=user)
deployments.complete_rollout(deployments.shift_traffic(rollout, 0), actor=user)
"""
    var.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import mlflow

    work = Path(tempfile.mkdtemp(prefix="bench-model-server-"))
    model_dir = work / "model"
    row = build_model(model_dir)
    mlflow_body = json.dumps({"inputs": [row]}).encode()
    tf_body = json.dumps({"instances": [row]}).encode()
    results: dict[str, dict[str, Any]] = {}
    try:
        raw = raw_call(model_dir, row, 2000)
        mlflow_port = free_port()
        # `mlflow models serve` execs `uvicorn` by name: the virtualenv's bin must be on PATH.
        mlflow_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(mlflow_port)],
            cwd=work, env=mlflow_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_ready(mlflow_port, "/invocations", mlflow_body, server)
            results["mlflow models serve: /invocations"] = {
                **sequential(mlflow_port, "/invocations", mlflow_body, args.requests),
                **_prefixed(concurrent(mlflow_port, "/invocations", mlflow_body, args.clients, args.seconds)),
            }
        finally:
            if server.poll() is None:
                os.killpg(server.pid, 15)
            server.wait(timeout=30)
        env = portal_setup(work / "portal", model_dir)
        portal_port = free_port()
        portal = subprocess.Popen(
            [sys.executable, "manage.py", "serve_models", "--port", str(portal_port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            for label, path, body in (
                ("portal: /v1/models/bench/invocations", "/v1/models/bench/invocations", mlflow_body),
                ("portal: /v1/models/bench:predict", "/v1/models/bench:predict", tf_body),
            ):
                wait_ready(portal_port, path, body, portal)
                results[label] = {
                    **sequential(portal_port, path, body, args.requests),
                    **_prefixed(concurrent(portal_port, path, body, args.clients, args.seconds)),
                }
        finally:
            if portal.poll() is None:
                os.killpg(portal.pid, 15)
            portal.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmlflow {mlflow.__version__}; {os.cpu_count()} cores; {args.requests} sequential single-row requests, "
          f"{args.clients} clients for {args.seconds:g} s; raw in-process call: median {raw:.3f} ms\n")  # fmt: skip
    print(
        "| server: route | median ms | p95 ms | overhead over raw call, ms | req/s, 8 clients | median ms, 8 clients |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(
            f"| {label} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} | {r['median_ms'] - raw:.2f} | {r['c_rps']:.0f} | "
            f"{r['c_median_ms']:.2f} |"
        )
    base = results["mlflow models serve: /invocations"]
    print()
    for label, r in results.items():
        if label.startswith("portal"):
            print(
                f"{label}: median latency {r['median_ms'] / base['median_ms']:.3f}x MLflow's "
                f"(target <= 0.1), throughput {r['c_rps'] / base['c_rps']:.1f}x MLflow's (target >= 10)"
            )


if __name__ == "__main__":
    main()

"""`manage.py simulate_traffic --deployment NAME --rps N --duration S [--drift FEATURE:SHIFT] [--label-delay S]`

Drives realistic traffic at a deployment through the model server (real HTTP, as clients would), and
sends the true labels back as feedback after a delay, for demos and tests:

- rows come from the deployment's holdout dataset version (its label column is the truth), cycled and
  shuffled; without a holdout, rows are drawn from a standard normal per input of the model's signature
  and no labels are sent;
- `--drift FEATURE:SHIFT` adds SHIFT to that column (a name, or a position for unnamed inputs) of every
  row sent, e.g. `--drift age:15`; it can be given more than once;
- `--label-delay S` posts the labels S seconds after each prediction (0: right away), in batches, through
  the same service as `POST /api/v1/feedback`, as `--user` (default: the deployment's owner).
"""

from __future__ import annotations

import http.client
import json
import math
import random
import threading
import time
import urllib.parse
from collections import deque
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.tables import TableReadError, read_head
from deployments.models import Deployment
from monitoring import services

MAX_RPS = 5_000
MAX_DURATION = 24 * 3600
HOLDOUT_ROWS = 20_000
FEEDBACK_BATCH = 1_000


def parse_drift(values: list[str]) -> dict[str, float]:
    drift: dict[str, float] = {}
    for value in values:
        feature, sep, shift = value.rpartition(":")
        try:
            drift[feature] = float(shift)
        except ValueError:
            feature = ""
        if not sep or not feature:
            raise CommandError(f"--drift takes FEATURE:SHIFT, e.g. age:15 (got {value!r})")
    return drift


class Client:
    """One kept-alive connection to the model server."""

    def __init__(self, base: str) -> None:
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, str]:
        for attempt in (1, 2):
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.connection.request("POST", self.prefix + path, body, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                response.read()
                return response.status, response.headers.get("X-Request-Id", "")
            except (OSError, http.client.HTTPException):
                self.connection = None
                if attempt == 2:
                    return 0, ""
        return 0, ""


class Command(BaseCommand):
    help = "Send realistic prediction traffic to a deployment, and its true labels after a delay."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", required=True)
        parser.add_argument("--rps", type=float, default=10.0, help=f"requests per second (at most {MAX_RPS})")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds")
        parser.add_argument("--drift", action="append", default=[], metavar="FEATURE:SHIFT")
        parser.add_argument("--label-delay", type=float, default=0.0, help="seconds before a label is sent")
        parser.add_argument("--url", default=settings.MODEL_SERVER_URL, help="the model server")
        parser.add_argument("--user", help="who posts the labels (default: the deployment's owner)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = (
            Deployment.objects.select_related("holdout_dataset_version", "owner")
            .filter(name=options["deployment"])
            .first()
        )
        if deployment is None:
            raise CommandError(f"no deployment named {options['deployment']!r}")
        rps, duration = options["rps"], options["duration"]
        if not 0 < rps <= MAX_RPS:
            raise CommandError(f"--rps must be between 0 and {MAX_RPS}")
        if not 0 < duration <= MAX_DURATION:
            raise CommandError(f"--duration must be between 0 and {MAX_DURATION} seconds")
        if options["label_delay"] < 0:
            raise CommandError("--label-delay must not be negative")
        drift = parse_drift(options["drift"])
        rng = random.Random(options["seed"])  # noqa: S311  (simulated traffic, not secrets)
        rows, labels, columns = self.rows(deployment, rng)
        unknown = set(drift) - set(columns)
        if unknown:
            raise CommandError(f"--drift names {sorted(unknown)[0]!r}, not an input; inputs: {', '.join(columns)}")
        user = self.labeller(deployment, options["user"]) if labels is not None else None
        stats = self.run(deployment, options["url"], rows, labels, columns, drift, rps, duration,
                         options["label_delay"], user, rng)  # fmt: skip
        self.stdout.write(
            f"sent {stats['sent']} requests to {deployment.name} ({stats['ok']} answered 200, "
            f"{stats['failed']} failed) and {stats['labels']} labels"
        )

    def labeller(self, deployment: Deployment, username: str | None) -> Any:
        if username:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user named {username!r}")
            return user
        if deployment.owner is None:
            raise CommandError("the deployment has no owner: name the user who posts labels with --user")
        return deployment.owner

    def rows(self, deployment: Deployment, rng: random.Random) -> tuple[list[list[Any]], list[Any] | None, list[str]]:
        """Input rows, their labels (None without a holdout), and the input names."""
        version = deployment.holdout_dataset_version
        if version is not None:
            try:
                table = read_head(version, max_rows=HOLDOUT_ROWS)
            except TableReadError as exc:
                raise CommandError(str(exc)) from None
            target = deployment.target_column
            columns = [c for c in table.column_names if c != target]
            data = [table.column(c).to_pylist() for c in columns]
            rows = [list(values) for values in zip(*data, strict=True)]
            labels = table.column(target).to_pylist() if target in table.column_names else None
            return rows, labels, columns
        width, names = self.signature_width(deployment)
        rows = [[round(rng.gauss(0, 1), 4) for _ in range(width)] for _ in range(1000)]
        return rows, None, names

    def signature_width(self, deployment: Deployment) -> tuple[int, list[str]]:
        """The inputs of the serving version's signature, read from its MLmodel (nothing is unpickled)."""
        from experiments import artifacts

        revision = deployment.revisions.filter(state="active").select_related("model_version").first()
        if revision is None:
            raise CommandError(f"{deployment.name} serves nothing yet: deploy a version first")
        path = artifacts.resolve(artifacts.relative_of_uri(revision.model_version.storage_location)) / "MLmodel"
        signature = (yaml.safe_load(path.read_text()) or {}).get("signature") or {}
        inputs = json.loads(signature.get("inputs") or "[]")
        if len(inputs) == 1 and inputs[0].get("type") == "tensor":
            shape = inputs[0]["tensor-spec"]["shape"]
            width = int(shape[-1]) if len(shape) == 2 and int(shape[-1]) > 0 else 1
            return width, [str(i) for i in range(width)]
        if not inputs:
            raise CommandError("the serving version has no signature to draw inputs from: set a holdout dataset")
        names = [str(i.get("name", index)) for index, i in enumerate(inputs)]
        return len(names), names

    def run(
        self, deployment: Deployment, url: str, rows: list[list[Any]], labels: list[Any] | None,
        columns: list[str], drift: dict[str, float], rps: float, duration: float, label_delay: float,
        user: Any, rng: random.Random,
    ) -> dict[str, int]:  # fmt: skip
        path = f"/v1/models/{deployment.name}:predict"
        # Labels that are numbers with fractions are regression targets, sent as `value`.
        key = "label"
        numbers = [v for v in labels or [] if v is not None and not isinstance(v, bool)]
        if numbers and all(isinstance(v, int | float) for v in numbers):
            finite = [v for v in numbers if math.isfinite(v)]
            key = "value" if any(float(v) != int(v) for v in finite) else "label"
        named = bool(columns) and not all(c.isdigit() for c in columns)
        shift = [drift.get(c, 0.0) for c in columns]
        order = list(range(len(rows)))
        rng.shuffle(order)
        stats = {"sent": 0, "ok": 0, "failed": 0, "labels": 0}
        pending: deque[tuple[float, str, Any]] = deque()
        lock = threading.Lock()
        stop = threading.Event()
        workers = max(1, min(16, int(rps // 100) + 1))
        started = time.monotonic()
        total = int(rps * duration)
        next_index = iter(range(total))

        def send() -> None:
            client = Client(url)
            while not stop.is_set():
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                wait = started + index / rps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                row_index = order[index % len(order)]
                values = [
                    v + s if s and isinstance(v, int | float) else v
                    for v, s in zip(rows[row_index], shift, strict=True)
                ]
                instance = dict(zip(columns, values, strict=True)) if named else values
                status, request_id = client.post(path, json.dumps({"instances": [instance]}).encode())
                with lock:
                    stats["sent"] += 1
                    stats["ok" if status == 200 else "failed"] += 1
                    label = labels[row_index] if labels is not None else None
                    usable = label is not None and not (isinstance(label, float) and not math.isfinite(label))
                    if status == 200 and usable and request_id:
                        pending.append((time.monotonic() + label_delay, request_id, label))

        def post_labels(final: bool = False) -> None:
            while True:
                batch = []
                with lock:
                    while pending and len(batch) < FEEDBACK_BATCH and (final or pending[0][0] <= time.monotonic()):
                        _, request_id, label = pending.popleft()
                        batch.append({"request_id": request_id, key: label})
                if not batch:
                    return
                services.record_feedback(batch, actor=user)
                stats["labels"] += len(batch)

        threads = [threading.Thread(target=send, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                post_labels()
                time.sleep(0.2)
            if labels is not None:
                if label_delay > 0:
                    time.sleep(min(label_delay, max(0.0, pending[-1][0] - time.monotonic())) if pending else 0)
                post_labels(final=True)
        except KeyboardInterrupt:
            stop.set()
            post_labels(final=True)
        return stats

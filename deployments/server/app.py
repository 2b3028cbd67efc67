"""The model server's WSGI application: routing, protocols, metrics and hot swaps.

`ModelServer.refresh()` reads the active revisions from the database, loads any model version it has
not loaded yet (outside the lock, while the old one keeps serving), then swaps in the new table with
one reference assignment, so no request is dropped or sees a half-built table. A poller thread calls
it every MODEL_SERVER_POLL_SECONDS.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from deployments.models import ACTIVE_ROLLOUT_STATUSES, DeploymentRevision, RevisionState, Rollout
from deployments.server import inputs, loader
from deployments.server.predlog import PredictionLogger

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
TF_PREDICT = re.compile(r"^/v1/models/(?P<name>[^/:]+):predict$")
TF_STATUS = re.compile(r"^/v1/models/(?P<name>[^/:]+)$")
MLFLOW_NAMED = re.compile(r"^/v1/models/(?P<name>[^/:]+)/invocations$")
DEPLOYMENT_HEADER = "HTTP_X_DEPLOYMENT"
ROUTING_KEY_HEADER = "HTTP_X_ROUTING_KEY"


@dataclass(frozen=True)
class Served:
    """One active revision, loaded (or failed to load) and ready to answer."""

    deployment: str
    revision_id: int
    model_version_id: int
    version: int
    weight: int
    model: loader.LoadedModel | None
    error: str = ""
    deployment_id: int = 0
    arm: str = "stable"  # "canary" while a rollout is moving traffic to this revision


def _sampled() -> bool:
    """Whether this request's body goes into the prediction log (MODEL_SERVER_LOG_INPUT_SAMPLE_RATE)."""
    rate = settings.MODEL_SERVER_LOG_INPUT_SAMPLE_RATE
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)  # noqa: S311  (sampling, not security)


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


class ModelServer:
    """Serves every active deployment; a WSGI callable."""

    def __init__(self, registry: CollectorRegistry | None = None, prediction_log: Any = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time spent answering model server requests.",
            ["deployment", "model_version", "route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.predictions = Counter(
            "model_predictions", "Rows predicted.", ["deployment", "model_version"], registry=self.registry
        )
        self.errors = Counter(
            "model_prediction_errors",
            "Prediction requests that failed, by reason.",
            ["deployment", "model_version", "reason"],
            registry=self.registry,
        )
        self.table: dict[str, list[Served]] = {}
        self.cache: dict[int, Served] = {}
        self.refreshed = False
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        # In-process by default (tests); the served app (wsgi.py) writes from a separate process.
        # The given writer (the wsgi entry point's child process), else one in this process; none when off.
        self.prediction_log = prediction_log or (
            PredictionLogger(settings.MODEL_SERVER_LOG_FLUSH_SECONDS) if settings.MODEL_SERVER_LOG_PREDICTIONS else None
        )
        self._reported: dict[int, str] = {}  # revision id -> load outcome already written to its row

    # Loading ---------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Load what became active, then swap the table; models no longer active are dropped."""
        with self._refresh_lock:
            active = DeploymentRevision.objects.filter(state=RevisionState.ACTIVE)
            if settings.MODEL_SERVER_DEPLOYMENTS:  # one server per deployment (Kubernetes)
                active = active.filter(deployment__name__in=settings.MODEL_SERVER_DEPLOYMENTS)
            rows = list(
                active.select_related("deployment", "model_version").order_by(
                    "deployment__name", "-traffic_weight", "-id"
                )
            )
            canaries = set(
                Rollout.objects.filter(status__in=ACTIVE_ROLLOUT_STATUSES).values_list("revision_id", flat=True)
            )
            table: dict[str, list[Served]] = {}
            cache: dict[int, Served] = {}
            for row in rows:
                key = row.model_version_id
                # A version that failed to load is tried again on the next refresh (the error may pass).
                loaded = cache.get(key) or self._reuse(key) or self._load(row)
                cache[key] = loaded
                served = Served(
                    row.deployment.name, row.pk, key, row.model_version.version, row.traffic_weight,
                    loaded.model, loaded.error, row.deployment_id, "canary" if row.pk in canaries else "stable",
                )  # fmt: skip
                table.setdefault(served.deployment, []).append(served)
            for name, group in self.table.items():
                # Never swap a deployment that answers for one that cannot (nothing of it loaded): serving
                # the previous revisions beats answering 404 until someone notices.
                if name in table and not any(s.model for s in table[name]) and any(s.model for s in group):
                    logger.warning("deployment %s: nothing of the new revisions loaded; keeping the old ones", name)
                    table[name] = group
                    cache.update({s.model_version_id: s for s in group})
            loaded_now = any(key not in self.cache for key in cache)
            self.table, self.cache = table, cache  # the swap: requests read one reference or the other
            if loaded_now:
                # TensorFlow leaves millions of long-lived objects behind; a full collection walking them all
                # stalls every request thread for 100+ ms (measured: p99 135 ms at 500 requests/s). Freeze
                # them out of the collector's generations once they are loaded.
                gc.collect()
                gc.freeze()
            self.refreshed = True
            self._report_loads(rows, cache)

    def _report_loads(self, rows: list[DeploymentRevision], cache: dict[int, Served]) -> None:
        """Tell the rollout job (through the revision row) that a revision is loaded, or why it is not."""
        for row in rows:
            loaded = cache[row.model_version_id]
            outcome = "loaded" if loaded.model is not None else loaded.error
            if self._reported.get(row.pk) == outcome:
                continue
            if loaded.model is not None:
                DeploymentRevision.objects.filter(pk=row.pk, loaded_at__isnull=True).update(
                    loaded_at=timezone.now(), load_error=""
                )
            else:
                DeploymentRevision.objects.filter(pk=row.pk, loaded_at__isnull=True).update(
                    load_error=loaded.error[:4000]
                )
            self._reported[row.pk] = outcome

    def _reuse(self, key: int) -> Served | None:
        """The version as loaded before, unless its load failed."""
        found = self.cache.get(key)
        return found if found is not None and found.model is not None else None

    def _load(self, row: DeploymentRevision) -> Served:
        version = row.model_version
        started = time.monotonic()
        try:
            model = loader.load(version.storage_location)
        except Exception as exc:  # one broken model must not take the others down
            logger.warning("deployment %s: cannot load version %s: %s", row.deployment.name, version.version, exc)
            return Served(row.deployment.name, row.pk, version.pk, version.version, row.traffic_weight, None, str(exc))
        logger.info(
            "deployment %s: loaded version %s (%s) in %.2fs",
            row.deployment.name, version.version, model.flavor, time.monotonic() - started,
        )  # fmt: skip
        return Served(row.deployment.name, row.pk, version.pk, version.version, row.traffic_weight, model)

    def start_polling(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.start()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh()
                except Exception:
                    logger.exception("model server: refreshing the deployments failed")
                finally:
                    # A long-lived thread: drop a connection the database closed (or that is too old).
                    close_old_connections()
                self._stop.wait(settings.MODEL_SERVER_POLL_SECONDS)

        threading.Thread(target=loop, name="deployment-poller", daemon=True).start()

    def stop(self) -> None:
        """Stop polling and write the prediction log that is still queued (a clean shutdown loses none)."""
        self._stop.set()
        if self.prediction_log is not None:
            self.prediction_log.stop()

    @property
    def ready(self) -> bool:
        return self.refreshed and all(s.model is not None for group in self.table.values() for s in group)

    def pick(self, name: str, routing_key: str | None) -> Served | None:
        """The revision to answer with: by traffic weight, sticky when the client sends a routing key."""
        group = [s for s in self.table.get(name, []) if s.model is not None]
        if not group:
            return None
        total = sum(s.weight for s in group)
        if len(group) == 1 or total <= 0:
            return group[0]
        point = (zlib.crc32(routing_key.encode()) % total) if routing_key else random.randrange(total)  # noqa: S311
        for served in group:
            point -= served.weight
            if point < 0:
                return served
        return group[-1]

    # WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = (environ.get("HTTP_X_REQUEST_ID") or "")[:64] or uuid.uuid4().hex
        labels = {"deployment": "", "model_version": "", "route": "other"}
        record: dict[str, Any] = {}
        try:
            status, body, content_type = self.dispatch(environ, labels, record)
        except Exception:
            logger.exception("model server: unexpected error (request %s)", request_id)
            status, body, content_type = 500, {"error": "internal error"}, "application/json"
            if labels["deployment"]:
                self.errors.labels(labels["deployment"], labels["model_version"], "server_error").inc()
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        start_response(
            f"{status} {_REASONS.get(status, '')}",
            [("Content-Type", content_type), ("Content-Length", str(len(payload))), ("X-Request-Id", request_id)],
        )
        elapsed = time.perf_counter() - started
        if labels["route"] not in ("/metrics", "/health", "/ready"):
            self.latency.labels(status=str(status), **labels).observe(elapsed)
        served = record.get("served")
        if served is not None and self.prediction_log is not None:
            self.prediction_log.log(
                time=timezone.now(), request_id=request_id, deployment_id=served.deployment_id,
                revision_id=served.revision_id, model_version=served.version, arm=served.arm,
                latency_ms=elapsed * 1000, status=status, error=record.get("error", ""), rows=record.get("rows", 0),
                inputs=record.get("inputs"), outputs=record.get("outputs"),
            )  # fmt: skip
        return [payload]

    def dispatch(
        self, environ: dict[str, Any], labels: dict[str, str], record: dict[str, Any] | None = None
    ) -> tuple[int, Any, str]:
        record = {} if record is None else record
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path in ("/health", "/ready", "/metrics"):
            labels["route"] = path
            if path == "/health":
                return 200, {"status": "ok"}, "application/json"
            if path == "/ready":
                return self.readiness()
            return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
        for pattern, route, protocol in (
            (TF_PREDICT, "/v1/models/{name}:predict", "tf"),
            (MLFLOW_NAMED, "/v1/models/{name}/invocations", "mlflow"),
        ):
            match = pattern.match(path)
            if match:
                labels["route"] = route
                return self.predict(environ, method, match["name"], protocol, labels, record)
        if path == "/invocations":
            labels["route"] = "/invocations"
            return self.predict(environ, method, self._only_deployment(environ), "mlflow", labels, record)
        match = TF_STATUS.match(path)
        if match and method == "GET":
            labels["route"] = "/v1/models/{name}"
            return self.status(match["name"])
        return 404, {"error": f"no such endpoint: {method} {path}"}, "application/json"

    def _only_deployment(self, environ: dict[str, Any]) -> str:
        query = dict(p.partition("=")[::2] for p in environ.get("QUERY_STRING", "").split("&") if p)
        named = query.get("deployment") or environ.get(DEPLOYMENT_HEADER)
        if named:
            return named
        names = list(self.table)
        return names[0] if len(names) == 1 else ""

    def readiness(self) -> tuple[int, Any, str]:
        deployments = {
            name: [{"version": s.version, "loaded": s.model is not None, "error": s.error} for s in group]
            for name, group in self.table.items()
        }
        status = 200 if self.ready else 503
        return status, {"ready": self.ready, "deployments": deployments}, "application/json"

    def status(self, name: str) -> tuple[int, Any, str]:
        group = self.table.get(name)
        if not group:
            return 404, {"error": f"Servable not found for request: Latest({name})"}, "application/json"
        return (
            200,
            {
                "model_version_status": [
                    {
                        "version": str(s.version),
                        "state": "AVAILABLE" if s.model is not None else "END",
                        "status": {"error_code": "OK" if s.model is not None else "UNKNOWN", "error_message": s.error},
                    }
                    for s in group
                ]
            },
            "application/json",
        )

    def predict(
        self,
        environ: dict[str, Any],
        method: str,
        name: str,
        protocol: str,
        labels: dict[str, str],
        record: dict[str, Any],
    ) -> tuple[int, Any, str]:
        """Answer one prediction request; `record` gets what the prediction log keeps of it."""

        def error(status: int, message: str, code: str = "INVALID_PARAMETER_VALUE") -> tuple[int, Any, str]:
            if protocol == "tf":
                return status, {"error": message}, "application/json"
            return status, {"error_code": code, "message": message}, "application/json"

        if method != "POST":
            return error(405, f"{method} is not allowed here; POST a JSON body")
        served = self.pick(name, environ.get(ROUTING_KEY_HEADER)) if name else None
        if served is None:
            if not name:
                return error(400, "several deployments are served: name one with ?deployment= or X-Deployment")
            message = f"No deployment named {name!r}"
            if protocol == "tf":  # TF Serving's own wording, which its clients match on
                message = f"Servable not found for request: Latest({name})"
            return error(404, message, "RESOURCE_DOES_NOT_EXIST")
        labels["deployment"], labels["model_version"] = served.deployment, str(served.version)
        record["served"] = served
        assert served.model is not None
        try:
            raw = self._read_body(environ)
            body = json.loads(raw)
            if len(raw) <= settings.MODEL_SERVER_LOG_MAX_BODY_BYTES and _sampled():
                record["inputs"] = body
            features = (inputs.parse_tf_serving if protocol == "tf" else inputs.parse_mlflow)(served.model, body)
        except HttpError as exc:
            self.errors.labels(served.deployment, str(served.version), "too_large").inc()
            record["error"] = "too_large"
            return error(exc.status, str(exc), exc.code)
        except (ValueError, inputs.InputError) as exc:  # JSONDecodeError is a ValueError
            self.errors.labels(served.deployment, str(served.version), "bad_input").inc()
            record["error"] = "bad_input"
            message = str(exc) if isinstance(exc, inputs.InputError) else f"the body is not valid JSON: {exc}"
            return error(400, message)
        try:
            predictions = inputs.to_json(served.model.predict(features))
        except Exception as exc:
            self.errors.labels(served.deployment, str(served.version), "model_error").inc()
            record["error"] = "model_error"
            logger.warning("deployment %s v%s: prediction failed: %s", served.deployment, served.version, exc)
            return error(400, f"the model could not predict on this input: {exc}")
        rows = len(predictions) if isinstance(predictions, list) else 1
        self.predictions.labels(served.deployment, str(served.version)).inc(rows)
        record["rows"] = rows
        if "inputs" in record or rows <= 1000:  # outputs are small next to inputs; kept for drift and accuracy
            record["outputs"] = predictions
        return 200, {"predictions": predictions}, "application/json"

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = settings.MODEL_SERVER_MAX_BODY_BYTES
        try:
            declared = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes", "REQUEST_LIMIT_EXCEEDED")
        stream = environ["wsgi.input"]
        # Without a Content-Length (chunked), read one byte past the cap to tell "too large" apart.
        data = stream.read(declared) if declared else stream.read(limit + 1)
        if len(data) > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes", "REQUEST_LIMIT_EXCEEDED")
        return data

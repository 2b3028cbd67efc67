"""The `deployments.rollout` job: validate the candidate, run the gates, then shift traffic step by step.

The `Rollout` row holds every decision, so the job can die at any point and the next attempt carries on
from the stored status, step and bake time:

1. **validating**: load the candidate as the model server would (safe mode, no unpickling unless the
   flavour is allowed) and predict on its input example (or the warm-up row its signature gives).
2. **gating**: holdout accuracy at least `min_accuracy` and not below the serving version's minus
   `champion_margin`; p95 of single-row predictions within `latency_budget_ms`. Every gate is an event.
3. **rolling_out**: for each traffic step, move the weights, wait for the model server to report the
   candidate loaded, then bake: every tick, read the user's pause/promote/rollback and judge the
   candidate's live traffic (error rate above `max_error_rate` or p95 latency above the budget rolls back
   once `min_canary_requests` were answered). After the last step the candidate takes over.

Models are loaded here, in a worker on the `deployments` queue, never in the web process.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from datasets.tables import TableReadError, read_head
from deployments import services
from deployments.hooks import canary_checks
from deployments.models import (
    ACTIVE_ROLLOUT_STATUSES,
    DeploymentEvent,
    DeploymentRevision,
    PredictionLog,
    Rollout,
    RolloutStatus,
)
from deployments.server import inputs, loader
from jobs.models import JobStatus
from jobs.runner import JobContext, JobStopped

logger = logging.getLogger(__name__)

# Share of the progress bar each phase fills.
VALIDATE_END, GATE_END = 10, 30
PREDICT_BATCH_ROWS = 4096
LOAD_ERROR_GRACE_SECONDS = 30.0
HEALTH_WINDOW_ROWS = 20_000  # latencies read to compute one p95 (the newest first)


class RolloutFailed(Exception):
    """The candidate cannot go on: the reason is recorded on the rollout and the timeline."""


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype="float64"), q)) if values else None


# Validation -------------------------------------------------------------------------------------


def input_example(model: loader.LoadedModel, storage_location: str) -> Any | None:
    """The model's saved input example as model input, or None when it has none.

    MLflow writes `serving_input_example.json` (a scoring-protocol body) next to `input_example.json`
    (split-oriented columns for a DataFrame, `{"inputs": ...}` or a bare list for arrays)."""
    path = loader.model_directory(storage_location)
    for name in ("serving_input_example.json", "input_example.json"):
        file = Path(path) / name
        if not file.is_file():
            continue
        body = json.loads(file.read_text())
        if isinstance(body, dict) and any(key in body for key in inputs.MLFLOW_FORMATS):
            return inputs.parse_mlflow(model, body)
        if isinstance(body, dict) and "data" in body:
            return inputs.parse_mlflow(model, {"dataframe_split": body})
        return inputs.parse_mlflow(model, {"instances": body})
    return None


def _rows(features: Any) -> int:
    first = next(iter(features.values())) if isinstance(features, dict) else features
    return len(first)


def _first_row(features: Any) -> Any:
    if isinstance(features, dict):
        return {k: v[:1] for k, v in features.items()}
    return features[:1]


def _output_array(predictions: Any) -> np.ndarray:
    if isinstance(predictions, dict):  # several named outputs: judge the first
        predictions = next(iter(predictions.values()))
    return np.asarray(predictions)


# Scoring on a holdout ---------------------------------------------------------------------------


def holdout(version: Any, target: str, model: loader.LoadedModel) -> tuple[Any, np.ndarray]:
    """The holdout's features (as model input) and its labels."""
    table = read_head(version, max_rows=settings.ROLLOUT_HOLDOUT_MAX_ROWS)
    if target not in table.column_names:
        raise RolloutFailed(f"the holdout {version} has no column {target!r} ({', '.join(table.column_names)})")
    truth = np.asarray(table.column(target).to_pylist(), dtype=object)
    columns = {name: table.column(name).to_pylist() for name in table.column_names if name != target}
    try:
        features = inputs.from_named(model, columns)
    except inputs.InputError as exc:
        raise RolloutFailed(f"the holdout {version} does not fit the model's signature: {exc}") from None
    return features, truth


def predict_all(model: loader.LoadedModel, features: Any) -> np.ndarray:
    rows = _rows(features)
    parts = []
    for start in range(0, rows, PREDICT_BATCH_ROWS):
        if isinstance(features, dict):
            chunk = {k: v[start : start + PREDICT_BATCH_ROWS] for k, v in features.items()}
        else:
            chunk = features[start : start + PREDICT_BATCH_ROWS]
        parts.append(_output_array(model.predict(chunk)))
    return np.concatenate(parts) if parts else np.empty((0,))


def _numeric(values: np.ndarray) -> np.ndarray | None:
    try:
        return values.astype("float64")
    except (TypeError, ValueError):
        return None


def score(predictions: np.ndarray, truth: np.ndarray) -> tuple[str, float]:
    """Accuracy for a classifier, R² for a regressor, decided by the outputs and the labels.

    Several outputs per row are class scores (argmax); one output per row against 0/1 labels is a
    probability (threshold 0.5); labels that are whole numbers with few distinct values against whole-number
    outputs are classes; anything else numeric is a regression."""
    if len(predictions) != len(truth):
        raise RolloutFailed(f"the model returned {len(predictions)} predictions for {len(truth)} rows")
    numeric_truth = _numeric(truth)
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        if numeric_truth is None:
            raise RolloutFailed("the labels are text but the model outputs class scores; label classes 0..k-1")
        return "accuracy", float(np.mean(predictions.argmax(axis=1) == numeric_truth))
    flat = predictions.reshape(len(predictions))
    if numeric_truth is None:
        return "accuracy", float(np.mean(flat.astype(str) == truth.astype(str)))
    numeric = _numeric(flat)
    if numeric is None:
        raise RolloutFailed("the model's outputs are not numbers but the labels are")
    whole = bool(np.all(np.mod(numeric_truth, 1) == 0))
    if whole and set(np.unique(numeric_truth)) <= {0.0, 1.0} and np.all((numeric >= 0) & (numeric <= 1)):
        return "accuracy", float(np.mean((numeric >= 0.5) == (numeric_truth == 1)))
    if whole and len(np.unique(numeric_truth)) <= 20 and np.all(np.mod(numeric, 1) == 0):
        return "accuracy", float(np.mean(numeric == numeric_truth))
    total = float(np.sum((numeric_truth - numeric_truth.mean()) ** 2))
    residual = float(np.sum((numeric_truth - numeric) ** 2))
    return "r2", (1.0 - residual / total) if total > 0 else (1.0 if residual == 0 else 0.0)


def single_row_p95_ms(model: loader.LoadedModel, row: Any, samples: int) -> float:
    model.predict(row)  # the first call may still trace
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 95))


# Live health ------------------------------------------------------------------------------------


def live_health(rollout: Rollout) -> dict[str, Any]:
    """The candidate's live traffic since its current step began, and the baseline's for comparison.

    Errors are the answers the model is to blame for (5xx, or a prediction that raised); a client's bad
    input is not held against it."""
    since = rollout.step_started or rollout.created
    health: dict[str, Any] = {"since": since.isoformat()}
    for arm, revision_id in (("candidate", rollout.revision_id), ("baseline", rollout.baseline_id)):
        if revision_id is None:
            continue
        logs = PredictionLog.objects.filter(revision_id=revision_id, time__gte=since)
        counts = logs.aggregate(requests=Count("id"), errors=Count("id", filter=PredictionLog.model_errors()))
        latencies = list(logs.order_by("-time").values_list("latency_ms", flat=True)[:HEALTH_WINDOW_ROWS])
        requests = counts["requests"]
        health[arm] = {
            "requests": requests,
            "errors": counts["errors"],
            "error_rate": round(counts["errors"] / requests, 4) if requests else None,
            "p95_ms": round(p95, 3) if (p95 := _percentile(latencies, 95)) is not None else None,
        }
    return health


def health_verdict(rollout: Rollout, health: dict[str, Any]) -> str | None:
    """Why the candidate must be rolled back, or None while it looks fine (or has too little traffic)."""
    deployment = rollout.deployment
    candidate = health.get("candidate") or {}
    if candidate.get("requests", 0) < deployment.min_canary_requests:
        return None
    if candidate["error_rate"] is not None and candidate["error_rate"] > deployment.max_error_rate:
        return (
            f"live error rate {candidate['error_rate']:.1%} over {candidate['requests']} requests is above "
            f"the limit of {deployment.max_error_rate:.1%}"
        )
    budget = deployment.latency_budget_ms
    if budget is not None and candidate["p95_ms"] is not None and candidate["p95_ms"] > budget:
        return f"live p95 latency {candidate['p95_ms']:.1f} ms is above the budget of {budget:g} ms"
    return None


# The job ----------------------------------------------------------------------------------------


class RolloutWalker:
    """Walks one rollout from its stored state to an end; one instance per job attempt."""

    def __init__(self, ctx: JobContext, rollout: Rollout) -> None:
        self.ctx = ctx
        self.rollout = rollout
        self._model: loader.LoadedModel | None = None
        self.example: Any | None = None

    # State ------------------------------------------------------------------------------------

    def refresh(self) -> Rollout:
        self.rollout = Rollout.objects.select_related(
            "deployment__registered_model", "revision__model_version", "baseline__model_version"
        ).get(pk=self.rollout.pk)
        return self.rollout

    def move_to(self, status: str) -> bool:
        """Advance the status unless the rollout ended meanwhile (a rollback by hand)."""
        moved = Rollout.objects.filter(pk=self.rollout.pk, status__in=ACTIVE_ROLLOUT_STATUSES).update(status=status)
        self.refresh()
        return bool(moved)

    def save(self, **fields: Any) -> bool:
        return bool(Rollout.objects.filter(pk=self.rollout.pk, status__in=ACTIVE_ROLLOUT_STATUSES).update(**fields))

    @property
    def model(self) -> loader.LoadedModel:
        if self._model is None:
            self._model = self.load(self.rollout.revision)
        return self._model

    def load(self, revision: DeploymentRevision) -> loader.LoadedModel:
        try:
            return loader.load(revision.model_version.storage_location)
        except Exception as exc:  # a broken or refused model fails the rollout, not the worker
            raise RolloutFailed(f"version {revision.model_version.version} could not be loaded: {exc}") from exc

    # Phases -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        if self.rollout.status in (RolloutStatus.QUEUED, RolloutStatus.VALIDATING):
            if not self.move_to(RolloutStatus.VALIDATING):
                return self.result()
            self.validate()
            if not self.move_to(RolloutStatus.GATING):
                return self.result()
        if self.rollout.status == RolloutStatus.GATING:
            self.gate()
            if not self.move_to(RolloutStatus.ROLLING_OUT):
                return self.result()
        if self.rollout.status == RolloutStatus.ROLLING_OUT:
            self.roll_out()
        return self.result()

    def result(self) -> dict[str, Any]:
        rollout = self.refresh()
        return {
            "rollout": rollout.pk,
            "deployment": rollout.deployment.name,
            "version": rollout.revision.model_version.version,
            "status": rollout.status,
            "reason": rollout.reason,
        }

    def validate(self) -> None:
        version = self.rollout.revision.model_version
        self.ctx.progress(1, f"loading version {version.version}")
        self.ctx.log(f"validating version {version.version}")
        model = self.model
        try:
            example = input_example(model, version.storage_location)
        except (inputs.InputError, ValueError) as exc:
            raise RolloutFailed(f"the model's input example does not fit its own signature: {exc}") from None
        source = "input example"
        if example is None:
            example, source = loader.warm_up_input(model), "a row of zeros shaped by the signature"
        detail: dict[str, Any] = {"flavor": model.flavor, "signature": bool(model.inputs)}
        if example is None:
            message = "loaded; no input example or tensor signature to smoke-test with"
        else:
            try:
                output = _output_array(model.predict(example))
            except Exception as exc:
                raise RolloutFailed(f"the smoke prediction on its {source} failed: {exc}") from None
            rows = _rows(example)
            if len(output) != rows:
                raise RolloutFailed(f"the smoke prediction returned {len(output)} rows for {rows}")
            if output.dtype.kind == "f" and not np.all(np.isfinite(output)):
                raise RolloutFailed(f"the smoke prediction on its {source} returned NaN or infinity")
            self.example = example
            message = f"loaded ({model.flavor}); {rows} smoke prediction(s) on its {source} look sane"
            detail["example_rows"] = rows
        self.ctx.log(message)
        gates = [{"name": "validation", "passed": True, "message": message}]
        self.save(gates=gates)
        services.record_rollout_event(self.rollout, DeploymentEvent.Kind.VALIDATED, message=message, **detail)
        self.ctx.progress(VALIDATE_END, "validated")

    def gate(self) -> None:
        deployment = self.rollout.deployment
        gates = [g for g in self.rollout.gates if g.get("name") == "validation"]
        failed: list[str] = []

        def record(name: str, passed: bool, message: str, **values: Any) -> None:
            gates.append({"name": name, "passed": passed, "message": message, **values})
            kind = DeploymentEvent.Kind.GATE_PASSED if passed else DeploymentEvent.Kind.GATE_FAILED
            services.record_rollout_event(self.rollout, kind, gate=name, passed=passed, message=message, **values)
            self.ctx.log(f"gate {name}: {'passed' if passed else 'FAILED'}: {message}")
            if not passed:
                failed.append(f"{name}: {message}")

        row = self.example if self.example is not None else None
        if deployment.holdout_dataset_version_id is not None:
            self.ctx.progress(VALIDATE_END + 2, "scoring the holdout")
            version = deployment.holdout_dataset_version
            try:
                features, truth = holdout(version, deployment.target_column, self.model)
            except TableReadError as exc:
                raise RolloutFailed(str(exc)) from None
            row = _first_row(features)
            metric, value = score(predict_all(self.model, features), truth)
            threshold = deployment.min_accuracy
            if threshold is not None:
                record(
                    "holdout_accuracy", value >= threshold,
                    f"{metric} {value:.4f} on {len(truth)} rows of {version} (at least {threshold:g})",
                    metric=metric, value=round(value, 6), threshold=threshold,
                )  # fmt: skip
            self.ctx.progress(VALIDATE_END + 10, "scoring the serving version")
            baseline = self.rollout.baseline
            if baseline is not None:
                champion = self.champion_score(baseline, version, deployment.target_column)
                if isinstance(champion, str):
                    # A serving version that cannot be scored (broken, or a signature the holdout no longer
                    # fits) must not block deploying its replacement; the gate says why it did not compare.
                    record("champion", True, f"not compared: {champion}", metric=metric, value=round(value, 6))
                else:
                    floor = champion - deployment.champion_margin
                    record(
                        "champion",
                        value >= floor,
                        f"{metric} {value:.4f} against v{baseline.model_version.version}'s {champion:.4f} "
                        f"(margin {deployment.champion_margin:g})",
                        metric=metric, value=round(value, 6), champion=round(champion, 6),
                        champion_version=baseline.model_version.version, threshold=round(floor, 6),
                    )  # fmt: skip
            elif threshold is None:
                record("holdout_accuracy", True, f"{metric} {value:.4f} on {len(truth)} rows (no threshold set)",
                       metric=metric, value=round(value, 6))  # fmt: skip
        budget = deployment.latency_budget_ms
        if budget is not None:
            self.ctx.progress(GATE_END - 5, "timing single-row predictions")
            row = row if row is not None else loader.warm_up_input(self.model)
            if row is None:
                record("latency", False, "no input example, holdout or tensor signature to time predictions with")
            else:
                samples = settings.ROLLOUT_LATENCY_SAMPLES
                p95 = single_row_p95_ms(self.model, _first_row(row), samples)
                message = f"p95 {p95:.2f} ms over {samples} single-row predictions (budget {budget:g} ms)"
                record("latency", p95 <= budget, message, value=round(p95, 3), threshold=budget)
        self.save(gates=gates)
        if failed:
            raise RolloutFailed("gate " + "; ".join(failed))
        self.ctx.progress(GATE_END, "gates passed")

    def roll_out(self) -> None:
        steps = self.rollout.steps or [100]
        start = max(self.rollout.step_index, 0)
        for index in range(start, len(steps)):
            if self.rollout.step_index < index:
                self.rollout = services.shift_traffic(self.rollout, index)
                if not self.rollout.is_active:
                    return
                self.ctx.log(f"step {index + 1} of {len(steps)}: the candidate serves {steps[index]} %")
                self.wait_for_model_server()
            if not self.bake(index, steps):
                return
        services.complete_rollout(self.rollout, reason="every step baked healthy")
        self.ctx.log("promoted: the candidate serves all the traffic")

    def champion_score(self, baseline: DeploymentRevision, version: Any, target: str) -> float | str:
        """The serving version's score on the holdout, its features built from its own signature, or why
        it could not be scored."""
        try:
            model = self.load(baseline)
            features, truth = holdout(version, target, model)
            return score(predict_all(model, features), truth)[1]
        except Exception as exc:  # any failure of the old model is reported, not raised
            return f"version {baseline.model_version.version} could not be scored ({exc})"

    def wait_for_model_server(self) -> None:
        """Hold the bake clock until a model server has loaded the candidate (or says it cannot)."""
        if not settings.ROLLOUT_WAIT_FOR_MODEL_SERVER:
            return
        deadline = time.monotonic() + settings.ROLLOUT_LOAD_TIMEOUT_SECONDS
        revision_id = self.rollout.revision_id
        grace = time.monotonic() + LOAD_ERROR_GRACE_SECONDS
        while True:
            self.ctx.checkpoint()
            if not Rollout.objects.filter(pk=self.rollout.pk, status__in=ACTIVE_ROLLOUT_STATUSES).exists():
                return  # rolled back meanwhile: the bake loop sees it and stops
            loaded_at, error = DeploymentRevision.objects.values_list("loaded_at", "load_error").get(pk=revision_id)
            if loaded_at is not None:
                self.save(step_started=timezone.now())
                self.refresh()
                return
            # The server retries a failed load at every poll: give a passing error (a file still being
            # copied, a database blip) a little time before calling it final.
            if error and time.monotonic() > grace:
                raise RolloutFailed(f"the model server could not load the candidate: {error}")
            if time.monotonic() > deadline:
                raise RolloutFailed(
                    f"no model server loaded the candidate within {settings.ROLLOUT_LOAD_TIMEOUT_SECONDS:g} s; "
                    "is `manage.py serve_models` running?"
                )
            self.ctx.progress(self._progress(), "waiting for the model server to load the candidate")
            time.sleep(min(settings.ROLLOUT_TICK_SECONDS, 1.0))

    def bake(self, index: int, steps: list[int]) -> bool:
        """Hold the step for the bake time, acting on user commands and live health. False if it ended."""
        tick = settings.ROLLOUT_TICK_SECONDS
        last = time.monotonic()
        while True:
            self.ctx.checkpoint()
            rollout = self.refresh()
            if not rollout.is_active:
                self.ctx.log(f"the rollout ended elsewhere ({rollout.status}: {rollout.reason})")
                return False
            now = time.monotonic()
            baked = rollout.baked_seconds + (0.0 if rollout.paused else now - last)
            last = now
            health = live_health(rollout)
            verdict = health_verdict(rollout, health)
            for name, check in canary_checks().items():  # e.g. accuracy from feedback (monitoring)
                measured, reason = check(rollout)
                health[name] = measured
                verdict = verdict or reason
            self.save(baked_seconds=baked, health=health)
            if verdict is not None:
                raise RolloutFailed(verdict)
            remaining = rollout.bake_seconds - baked
            step = f"step {index + 1} of {len(steps)} ({steps[index]} %)"
            if rollout.paused:
                self.ctx.progress(self._progress(), f"{step}: paused")
            elif remaining <= 0:
                return True
            else:
                self.ctx.progress(self._progress(), f"{step}: baking, {math.ceil(remaining)} s left")
            time.sleep(max(0.0, min(tick, remaining if not rollout.paused else tick)))

    def _progress(self) -> float:
        rollout = self.rollout
        steps = max(len(rollout.steps), 1)
        within = min(rollout.baked_seconds / rollout.bake_seconds, 1.0) if rollout.bake_seconds else 0.0
        return GATE_END + (100 - GATE_END) * (max(rollout.step_index, 0) + within) / steps * 0.99


def run_rollout(ctx: JobContext) -> dict[str, Any]:
    """Walk the rollout `params["rollout"]`; a failed gate or an unhealthy canary fails the job."""
    rollout = (
        Rollout.objects.select_related(
            "deployment__registered_model", "revision__model_version", "baseline__model_version"
        )
        .filter(pk=int(ctx.params["rollout"]))
        .first()
    )
    if rollout is None:
        return {"skipped": "the rollout was deleted"}
    if not rollout.is_active:
        return {"rollout": rollout.pk, "status": rollout.status, "reason": rollout.reason}
    walker = RolloutWalker(ctx, rollout)
    try:
        return walker.run()
    except RolloutFailed as failure:
        ended = services.abort_rollout(walker.rollout, str(failure))
        ctx.log(f"{ended.status}: {failure}")
        raise JobStopped(JobStatus.FAILED, f"rollout {ended.status}: {failure}") from None
    except JobStopped as stop:
        # Cancelled or timed out: give the traffic back. "lost" means another worker carries on.
        if stop.status != "lost":
            services.abort_rollout(walker.rollout, f"the rollout job stopped: {stop.reason}")
        raise

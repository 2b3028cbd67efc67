"""The `experiments.train` job: train a trainer's model on a dataset version, everything into one run.

The run gets the parameters (the trainer's, the target, the seed, the dataset), the library versions as
tags, the dataset version as a `training` input (so lineage and drift find it), one metric point per epoch
as it happens (loss and val_loss, accuracy or MAE), the held-out test scores (accuracy, F1 and AUC, or
RMSE, MAE and R²) and the model in MLflow's format under `model/`, with a signature naming every input
column and an input example. The job's progress is the epoch, with an estimate of the time left; a cancel
stops training between batches and marks the run KILLED. A worker that dies leaves its run RUNNING: the
next attempt marks it FAILED and trains again in a new run.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from datasets.models import DatasetVersion
from experiments import artifacts
from experiments import services as tracking
from experiments.handlers import JOB_TAG, runs_of_job
from experiments.models import Experiment, Run, RunStatus
from experiments.services import MetricPoint, now_ms
from experiments.training import get_trainer
from experiments.training.data import TrainingData, TrainingDataError, prepare
from jobs.models import JobStatus
from jobs.runner import JobContext, JobStopped


def _libraries() -> list[tuple[str, str]]:
    import keras
    import mlflow
    import tensorflow as tf

    return [("portal.tensorflow", tf.__version__), ("portal.keras", keras.__version__),
            ("portal.mlflow", mlflow.__version__), ("portal.numpy", np.__version__)]  # fmt: skip


def _flatten(params: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, json.dumps(value) if isinstance(value, list | dict) else str(value)) for key, value in params.items()]


def scores(data: TrainingData, predictions: np.ndarray) -> dict[str, float]:
    """Held-out scores of the model's outputs on the test split."""
    truth = data.y["test"]
    if data.task == "regression":
        predicted = predictions.reshape(-1)
        errors = predicted - truth
        total = float(np.sum((truth - truth.mean()) ** 2))
        return {"test_rmse": float(np.sqrt(np.mean(errors**2))), "test_mae": float(np.mean(np.abs(errors))),
                "test_r2": 1.0 - float(np.sum(errors**2)) / total if total else 0.0}  # fmt: skip
    if len(data.classes) == 2:
        probability = predictions.reshape(-1)
        predicted = (probability >= 0.5).astype("int64")
    else:
        probability = None
        predicted = predictions.argmax(axis=1)
    out = {"test_accuracy": float(np.mean(predicted == truth))}
    f1s = []
    for k in range(len(data.classes)) if len(data.classes) > 2 else [1]:
        tp = float(np.sum((predicted == k) & (truth == k)))
        fp = float(np.sum((predicted == k) & (truth != k)))
        fn = float(np.sum((predicted != k) & (truth == k)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    out["test_f1"] = float(np.mean(f1s))
    if probability is not None:
        positives, negatives = probability[truth == 1], probability[truth == 0]
        if len(positives) and len(negatives):  # AUC: P(a positive scores above a negative), ties half
            above = (positives[:, None] > negatives[None, :]).mean() + 0.5 * (
                positives[:, None] == negatives[None, :]
            ).mean()
            out["test_auc"] = float(above)
    return out


def _tensors(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Keras takes text columns as string tensors, not numpy object arrays."""
    import tensorflow as tf

    return {
        name: tf.constant(values.astype(str)) if values.dtype == object else values for name, values in columns.items()
    }


def _class_weight(data: TrainingData, params: dict[str, Any]) -> dict[int, float] | None:
    if data.task != "classification" or params.get("class_weight") != "balanced":
        return None
    counts = np.bincount(data.y["train"], minlength=len(data.classes)).astype("float64")
    return {k: float(len(data.y["train"]) / (len(data.classes) * c)) if c else 1.0 for k, c in enumerate(counts)}


def _save_model(model: Any, run: Run, data: TrainingData) -> str:
    import mlflow.tensorflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    # MLflow's Keras flavour wants tensor specs: one (-1, 1) tensor per column, float32 or text (object).
    inputs = Schema([
        TensorSpec(np.dtype("float32") if c.kind == "numeric" else np.dtype(object), (-1, 1), c.name)
        for c in data.columns
    ])  # fmt: skip
    width = 1 if data.task == "regression" or len(data.classes) == 2 else len(data.classes)
    outputs = Schema([TensorSpec(np.dtype("float32"), (-1, width))])
    example = {c.name: data.x["test"][c.name][:2] for c in data.columns}
    target = artifacts.resolve(artifacts.relative_of_uri(run.artifact_uri)) / "model"
    mlflow.tensorflow.save_model(
        model, str(target), signature=ModelSignature(inputs=inputs, outputs=outputs), input_example=example,
        pip_requirements=["tensorflow", "keras"],
    )  # fmt: skip
    return f"runs:/{run.run_uuid}/model"


def fail_earlier_attempts(job_id: int) -> None:
    """Runs of earlier attempts of this job that a dead worker left RUNNING end as FAILED."""
    for run in runs_of_job(job_id).filter(status=RunStatus.RUNNING):
        tracking.update_run(run, status=RunStatus.FAILED, end_time=now_ms(), run_name=None)


def train(ctx: JobContext) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    p = ctx.params
    experiment = Experiment.objects.filter(pk=p["experiment_id"]).first()
    version = DatasetVersion.objects.select_related("dataset").filter(pk=p["dataset_version_id"]).first()
    if experiment is None or version is None:
        return {"skipped": "the experiment or the dataset version was deleted"}
    trainer = get_trainer(p["trainer"])
    if trainer is None:
        raise JobStopped(JobStatus.FAILED, f"no trainer named {p['trainer']!r} (see the TRAINERS setting)")
    fail_earlier_attempts(ctx.job.pk)
    seed = int(p["seed"])
    extra_tags = [(str(k)[:250], str(v)[:5000]) for k, v in p.get("tags", {}).items()]
    run = tracking.create_run(
        experiment, user_id=p.get("user", ""), start_time=None, run_name=p.get("run_name") or None,
        tags=[(JOB_TAG, str(ctx.job.pk)), ("portal.trainer", trainer.name), *_libraries(), *extra_tags],
    )  # fmt: skip
    try:
        ctx.log(f"run {run.run_uuid}: {trainer.label} on {version}, target {p['target']!r}, seed {seed}")
        ctx.progress(1, "reading the data")
        try:
            data = prepare(version, p["target"], trainer.task, seed)
        except TrainingDataError as exc:
            raise JobStopped(JobStatus.FAILED, str(exc)) from None
        params = p["params"]
        tracking.log_batch(run, metrics=[], tags=[], params=[
            ("trainer", trainer.name), ("target", data.target), ("seed", seed),
            ("dataset", f"{version.dataset.name}/v{version.number}"), ("train_rows", data.rows("train")),
            ("classes", json.dumps([str(c) for c in data.classes])), *_flatten(params),
        ])  # fmt: skip
        tracking.log_inputs(run, [{
            "dataset": {"name": version.dataset.name, "digest": version.sha256, "source_type": "portal",
                        "source": f"portal:{version.dataset.name}/v{version.number}"},
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
        }])  # fmt: skip
        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        model = trainer().build(data, params)
        epochs = params["epochs"]
        started = time.monotonic()

        # A cancel or the timeout, noticed by the heartbeat thread, ends fit after the current batch. A
        # per-batch callback would do it too, but makes Keras sync every batch: measurably slower.
        ctx.on_stop(lambda: setattr(model, "stop_training", True))

        class Live(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                stamp = now_ms()
                points = [MetricPoint(k, float(v), stamp, epoch) for k, v in (logs or {}).items()
                          if isinstance(v, int | float) and math.isfinite(float(v))]  # fmt: skip
                tracking.log_batch(run, metrics=points, params=[], tags=[])
                done = epoch + 1
                left = (time.monotonic() - started) / done * (epochs - done)
                ctx.progress(5 + 85 * done / epochs, f"epoch {done} of {epochs}, about {math.ceil(left)} s left")

        callbacks: list[Any] = [Live()]
        if params.get("early_stopping_patience"):
            callbacks.append(keras.callbacks.EarlyStopping(patience=params["early_stopping_patience"],
                                                           restore_best_weights=True))  # fmt: skip
        x = {split: _tensors(columns) for split, columns in data.x.items()}
        fit_started = time.perf_counter()
        model.fit(
            x["train"], data.y["train"], validation_data=(x["validation"], data.y["validation"]),
            epochs=epochs, batch_size=params["batch_size"], callbacks=callbacks, verbose=0, shuffle=True,
            class_weight=_class_weight(data, params),
        )  # fmt: skip
        ctx.checkpoint()  # fit ended early because the job must stop: say why
        fit_seconds = time.perf_counter() - fit_started
        ctx.progress(92, "scoring the test split")
        results = scores(data, np.asarray(model.predict(x["test"], verbose=0)))
        stamp = now_ms()
        tracking.log_batch(run, metrics=[MetricPoint(k, v, stamp, 0) for k, v in results.items()], params=[], tags=[])
        ctx.progress(96, "saving the model")
        source = _save_model(model, run, data)
        tracking.update_run(run, status=RunStatus.FINISHED, end_time=now_ms(), run_name=None)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in results.items())
        ctx.log(f"finished: {summary}; model at {source}")
        ctx.progress(99, f"finished: {summary}")
        return {"run_id": run.run_uuid, "model": source, "fit_seconds": round(fit_seconds, 3), **results}
    except JobStopped as stop:
        cancelled = stop.status == JobStatus.CANCELLED
        tracking.update_run(run, status=RunStatus.KILLED if cancelled else RunStatus.FAILED, end_time=now_ms(),
                            run_name=None)  # fmt: skip
        raise
    except Exception:
        tracking.update_run(run, status=RunStatus.FAILED, end_time=now_ms(), run_name=None)
        raise

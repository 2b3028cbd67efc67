"""Load a model version from the artifact store, safely, as a fast callable with its input schema.

Keras/TensorFlow models are loaded with `keras.saving.load_model(..., safe_mode=True)`, which refuses
the lambda layers that would run arbitrary code, and wrapped in a `tf.function` with a fixed input
signature: one trace, then each request costs a graph call instead of `model.predict`'s ~50 ms of
per-call setup. Flavours that are stored as pickles (sklearn, cloudpickled python functions) would run
code on load; they load only when listed in MODEL_SERVER_ALLOWED_PICKLE_FLAVORS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from django.conf import settings

from experiments import artifacts

logger = logging.getLogger(__name__)

KERAS_FLAVORS = ("tensorflow", "keras")
KERAS_FILES = ("model.keras", "model.h5")


class ModelLoadError(Exception):
    """The model cannot be served: missing files, an unsafe flavour, or a failing warm-up."""


@dataclass(frozen=True)
class InputSpec:
    """One input of the signature: a named column or tensor (name None for a single unnamed tensor)."""

    name: str | None
    dtype: str
    shape: tuple[int, ...] | None  # tensors only; -1 for any size


@dataclass
class LoadedModel:
    """A ready-to-call model: `predict` takes an array (or a dict of arrays for named inputs)."""

    flavor: str
    predict: Callable[[Any], np.ndarray | dict[str, np.ndarray]]
    inputs: list[InputSpec] = field(default_factory=list)

    @property
    def named(self) -> bool:
        return bool(self.inputs) and self.inputs[0].name is not None


_NUMPY_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
}


def parse_signature(mlmodel: dict[str, Any]) -> list[InputSpec]:
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return []
    specs = []
    for item in json.loads(raw):
        if item.get("type") == "tensor":
            tensor = item["tensor-spec"]
            specs.append(InputSpec(item.get("name"), tensor["dtype"], tuple(int(d) for d in tensor["shape"])))
        else:
            specs.append(InputSpec(item.get("name"), _NUMPY_DTYPES.get(item.get("type", ""), "object"), None))
    return specs


def model_directory(storage_location: str) -> Path:
    """The version's files, inside ARTIFACT_ROOT (resolve() refuses anything that leads out of it)."""
    path = artifacts.resolve(artifacts.relative_of_uri(storage_location))
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"{storage_location} has no MLmodel file")
    return path


def load(storage_location: str) -> LoadedModel:
    path = model_directory(storage_location)
    mlmodel = yaml.safe_load((path / "MLmodel").read_text()) or {}
    flavors: dict[str, Any] = mlmodel.get("flavors") or {}
    inputs = parse_signature(mlmodel)
    for name in KERAS_FLAVORS:
        if name in flavors:
            model = _load_keras(path / (flavors[name].get("data") or "data"), inputs)
            model.flavor = name
            _warm_up(model)
            return model
    allowed = set(settings.MODEL_SERVER_ALLOWED_PICKLE_FLAVORS)
    native = [name for name in flavors if name != "python_function"] or ["python_function"]
    permitted = [name for name in native if name in allowed]
    if not permitted:
        raise ModelLoadError(
            f"the {', '.join(native)} flavour loads by unpickling, which can run arbitrary code; an admin may "
            "allow it with MODEL_SERVER_ALLOWED_PICKLE_FLAVORS"
        )
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(path))

    def predict(data: Any) -> Any:
        return np.asarray(pyfunc.predict(data))

    return LoadedModel(permitted[0], predict, inputs)


def _load_keras(data_dir: Path, inputs: list[InputSpec]) -> LoadedModel:
    import keras
    import tensorflow as tf

    files = [data_dir / name for name in KERAS_FILES if (data_dir / name).is_file()]
    if not files:
        raise ModelLoadError(f"no Keras model file ({' or '.join(KERAS_FILES)}) under {data_dir.name}/")
    try:
        model = keras.saving.load_model(files[0], compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt file or a refused lambda layer: report it, keep the server up
        raise ModelLoadError(f"Keras could not load the model safely: {exc}") from exc

    def spec(item: InputSpec) -> Any:
        shape = [None if d == -1 else d for d in (item.shape or (-1,))]
        dtype = tf.string if item.dtype in ("object", "str") else tf.as_dtype(item.dtype)  # text tensors
        return tf.TensorSpec(shape=shape, dtype=dtype, name=item.name)

    tensor_inputs = [i for i in inputs if i.shape is not None]
    if tensor_inputs and len(tensor_inputs) == len(inputs):
        signature = [{i.name: spec(i) for i in inputs}] if inputs[0].name else [spec(inputs[0])]
        # The signature admits one graph: call it directly. tf.function's dispatch (binding the inputs,
        # looking the graph up) cost a third of a small model's CPU per prediction (docs/performance.md).
        call = tf.function(lambda x: model(x, training=False), input_signature=signature).get_concrete_function()
    else:
        call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    # Columns (MLflow column specs) arrive as 1-D arrays; a Keras input of shape (None, 1) wants them 2-D.
    column_inputs = {t.name for t in getattr(model, "inputs", []) if len(t.shape) == 2 and t.shape[-1] == 1}

    def predict(data: Any) -> Any:
        if isinstance(data, dict) and column_inputs:
            data = {k: v.reshape(-1, 1) if k in column_inputs and getattr(v, "ndim", 0) == 1 else v
                    for k, v in data.items()}  # fmt: skip
        result = call(data)
        if isinstance(result, dict):
            return {k: v.numpy() for k, v in result.items()}
        return result.numpy()

    return LoadedModel("tensorflow", predict, inputs)


def warm_up_input(model: LoadedModel) -> Any | None:
    """One row of zeros (empty texts) shaped by a tensor signature, or None without one."""
    if not model.inputs or any(i.shape is None for i in model.inputs):
        return None

    def zeros(item: InputSpec) -> np.ndarray:
        shape = tuple(1 if d == -1 else d for d in (item.shape or (1,)))
        if item.dtype in ("object", "str"):
            return np.full(shape, "", dtype=object)  # an empty text, not the integer 0
        return np.zeros(shape, dtype=item.dtype)

    return {i.name: zeros(i) for i in model.inputs} if model.named else zeros(model.inputs[0])


def _warm_up(model: LoadedModel) -> None:
    """Trace the graph now so the first request does not pay for it (and a broken model fails here)."""
    row = warm_up_input(model)
    if row is None:
        return
    try:
        model.predict(row)
    except Exception as exc:
        raise ModelLoadError(f"the warm-up prediction failed: {exc}") from exc

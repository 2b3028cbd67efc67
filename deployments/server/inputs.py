"""Turn TF Serving and MLflow scoring payloads into model inputs, checked against the signature.

Every problem is an `InputError` whose message names the column (or input) and what is wrong with it,
which the server answers with 400.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deployments.server.loader import InputSpec, LoadedModel

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class InputError(ValueError):
    """A request that does not fit the model's signature."""


def _column_array(name: str, values: list[Any], spec: InputSpec | None) -> np.ndarray:
    dtype = spec.dtype if spec is not None else None
    for row, value in enumerate(values):
        if value is None:  # numpy would quietly turn it into NaN
            raise InputError(f"column '{name}' has no value in row {row}")
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        bad = next((v for v in values if not _convertible(v, dtype)), None)
        raise InputError(f"column '{name}': {bad!r} is not a {dtype} value") from None
    if array.dtype == object and spec is None:
        raise InputError(f"column '{name}' holds values of mixed or unknown types")
    return array


def _convertible(value: Any, dtype: str | None) -> bool:
    try:
        np.asarray(value, dtype=dtype)
        return True
    except (TypeError, ValueError):
        return False


def _check_shape(label: str, array: np.ndarray, spec: InputSpec) -> np.ndarray:
    if spec.shape is None:
        return array
    if array.ndim == len(spec.shape) - 1 and spec.shape[-1] == 1 and array.ndim >= 1:
        array = array.reshape(*array.shape, 1)  # a column of scalars for a (-1, 1) tensor
    expected = tuple(spec.shape)
    if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape, strict=True)):
        raise InputError(f"{label}: shape {tuple(array.shape)} does not match the signature's {expected}")
    return array


def from_columns(model: LoadedModel, columns: list[str], rows: list[list[Any]]) -> Any:
    """Rows of named columns (MLflow's dataframe formats) as the model's input."""
    if not isinstance(rows, list) or not rows:
        raise InputError("the request holds no rows")
    width = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            count = len(row) if isinstance(row, list) else "no"
            raise InputError(f"row {index} has {count} values for {width} columns")
    if model.named:
        return from_named(model, {name: [row[i] for row in rows] for i, name in enumerate(columns)})
    spec = model.inputs[0] if model.inputs else None
    if spec is not None and spec.shape is not None and len(spec.shape) == 2 and spec.shape[1] not in (-1, width):
        raise InputError(f"the model takes {spec.shape[1]} columns, the request has {width} ({', '.join(columns)})")
    arrays = [_column_array(name, [row[i] for row in rows], spec) for i, name in enumerate(columns)]
    matrix = np.stack(arrays, axis=1) if arrays else np.empty((len(rows), 0))
    return _check_shape("input", matrix, spec) if spec is not None else matrix


def from_named(model: LoadedModel, columns: dict[str, Any]) -> Any:
    """A mapping of input (or column) name to values."""
    if not isinstance(columns, dict) or not columns:
        raise InputError("'inputs' must name the model's inputs")
    if not model.named:
        if len(columns) == 1 and model.inputs:
            return from_tensor(model, next(iter(columns.values())))
        names = list(columns)
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InputError("every column must be a list of the same length")
        rows = [list(row) for row in zip(*columns.values(), strict=True)]
        return from_columns(model, names, rows)
    specs = {spec.name: spec for spec in model.inputs}
    for name in specs:
        if name not in columns:
            raise InputError(f"missing input column '{name}'")
    for name in columns:
        if name not in specs:
            raise InputError(f"unexpected input column '{name}'; the model takes {', '.join(map(str, specs))}")
    out = {}
    for name, spec in specs.items():
        values = columns[name]
        if not isinstance(values, list):
            values = [values]
        out[name] = _check_shape(f"column '{name}'", _column_array(name, values, spec), spec)
    return out


def from_tensor(model: LoadedModel, values: Any) -> Any:
    """A single tensor, rows first (TF Serving `instances`, or `inputs` as a list)."""
    if not isinstance(values, list) or not values:
        raise InputError("the request holds no rows")
    if all(isinstance(row, dict) for row in values):
        names = list(dict.fromkeys(key for row in values for key in row))  # every key, in first-seen order
        return from_columns(model, names, [[row.get(name) for name in names] for row in values])
    if model.named:
        raise InputError(f"the model takes named inputs: {', '.join(str(i.name) for i in model.inputs)}")
    spec = model.inputs[0] if model.inputs else None
    matrix = spec is not None and spec.shape is not None and len(spec.shape) == 2
    if matrix and all(isinstance(r, list) for r in values) and len({len(r) for r in values}) == 1:
        return from_columns(model, [str(i) for i in range(len(values[0]))], values)
    try:
        array = np.asarray(values, dtype=spec.dtype if spec else None)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input: {exc}") from None
    return _check_shape("input", array, spec) if spec is not None else array


def parse_tf_serving(model: LoadedModel, body: Any) -> Any:
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object with 'instances' or 'inputs'")
    if ("instances" in body) == ("inputs" in body):
        raise InputError("give exactly one of 'instances' (rows) or 'inputs' (columns)")
    if "instances" in body:
        return from_tensor(model, body["instances"])
    inputs = body["inputs"]
    return from_named(model, inputs) if isinstance(inputs, dict) else from_tensor(model, inputs)


def parse_mlflow(model: LoadedModel, body: Any) -> Any:
    if not isinstance(body, dict):
        raise InputError(f"the body must be a JSON object with one of {', '.join(MLFLOW_FORMATS)}")
    given = [key for key in MLFLOW_FORMATS if key in body]
    if len(given) != 1:
        raise InputError(f"give exactly one of {', '.join(MLFLOW_FORMATS)}")
    key = given[0]
    if key == "dataframe_split":
        frame = body[key]
        if not isinstance(frame, dict) or not isinstance(frame.get("data"), list):
            raise InputError("'dataframe_split' needs 'columns' and 'data'")
        data = frame["data"]
        width = len(data[0]) if data and isinstance(data[0], list) else 0
        columns = frame.get("columns") or [str(i) for i in range(width)]
        return from_columns(model, [str(c) for c in columns], data)
    if key == "dataframe_records":
        records = body[key]
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise InputError("'dataframe_records' must be a list of objects")
        return from_tensor(model, records)
    if key == "instances":
        return from_tensor(model, body[key])
    inputs = body[key]
    return from_named(model, inputs) if isinstance(inputs, dict) else from_tensor(model, inputs)


def to_json(predictions: Any) -> Any:
    if isinstance(predictions, dict):
        return {k: np.asarray(v).tolist() for k, v in predictions.items()}
    return np.asarray(predictions).tolist()

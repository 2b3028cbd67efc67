"""Tabular data for training: a dataset version's rows split into train, validation and test, with what
the model's own preprocessing layers need (means and variances of numbers, the vocabulary of categories).

Columns are typed by their values: numbers (bools included) are numeric, anything else categorical (the
TRAINING_MAX_CATEGORIES most frequent values, the rest out of vocabulary). Rows whose label is missing are
dropped; missing numbers become the training mean, missing categories an empty string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from datasets.models import DatasetVersion
from datasets.tables import read_head


class TrainingDataError(ValueError):
    """The data cannot train this model; the message names the column or the problem."""


@dataclass
class Column:
    name: str
    kind: str  # "numeric" or "categorical"
    mean: float = 0.0
    variance: float = 1.0
    vocabulary: list[str] = field(default_factory=list)


@dataclass
class TrainingData:
    columns: list[Column]
    target: str
    task: str
    classes: list[Any]  # classification: the label values, index = class number
    x: dict[str, dict[str, np.ndarray]]  # split -> column -> values, shape (n, 1)
    y: dict[str, np.ndarray]  # split -> labels (class numbers) or values

    def rows(self, split: str) -> int:
        return len(self.y[split])


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value))


def prepare(version: DatasetVersion, target: str, task: str, seed: int) -> TrainingData:
    table = read_head(version, max_rows=settings.TRAINING_MAX_ROWS)
    if target not in table.column_names:
        raise TrainingDataError(f"{version} has no column {target!r} ({', '.join(table.column_names)})")
    labels = table.column(target).to_pylist()
    keep = [i for i, v in enumerate(labels) if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if len(keep) < 10:
        raise TrainingDataError(f"{version} has {len(keep)} rows with a {target!r} value; at least 10 are needed")
    rng = np.random.default_rng(seed)
    order = rng.permutation(keep)
    n_test = max(1, int(len(order) * settings.TRAINING_TEST_FRACTION))
    n_val = max(1, int(len(order) * settings.TRAINING_VALIDATION_FRACTION))
    splits = {"test": order[:n_test], "validation": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    if task == "classification":
        classes = sorted({labels[i] for i in keep}, key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise TrainingDataError(f"{target!r} holds one class only ({classes[0]!r}): nothing to classify")
        if len(classes) > settings.TRAINING_MAX_CLASSES:
            raise TrainingDataError(
                f"{target!r} holds {len(classes)} classes, more than {settings.TRAINING_MAX_CLASSES}: "
                "is it a regression target?"
            )
        index = {value: i for i, value in enumerate(classes)}
        y_all = np.asarray([index.get(v, 0) for v in labels], dtype="int64")
    else:
        classes = []
        if not all(_is_number(labels[i]) for i in keep):
            raise TrainingDataError(f"{target!r} holds values that are not numbers: a regression needs numbers")
        y_all = np.asarray([float(v) if _is_number(v) else 0.0 for v in labels], dtype="float32")
    columns: list[Column] = []
    x: dict[str, dict[str, np.ndarray]] = {name: {} for name in splits}
    train_rows = splits["train"]
    for name in table.column_names:
        if name == target:
            continue
        values = table.column(name).to_pylist()
        present = [values[i] for i in train_rows if values[i] is not None]
        if present and all(_is_number(v) for v in present):
            numbers = np.asarray(present, dtype="float64")
            mean = float(numbers.mean())
            column = Column(name, "numeric", mean=mean, variance=float(numbers.var()) or 1.0)
            full = np.asarray([float(v) if _is_number(v) else mean for v in values], dtype="float32")
        else:
            counts: dict[str, int] = {}
            for value in present:
                counts[str(value)] = counts.get(str(value), 0) + 1
            vocabulary = sorted(counts, key=lambda v: (-counts[v], v))[: settings.TRAINING_MAX_CATEGORIES]
            column = Column(name, "categorical", vocabulary=vocabulary)
            full = np.asarray(["" if v is None else str(v) for v in values], dtype=object)
        columns.append(column)
        for split, rows in splits.items():
            x[split][name] = full[rows].reshape(-1, 1)
    if not columns:
        raise TrainingDataError(f"{version} has no feature columns besides {target!r}")
    y = {split: y_all[rows] for split, rows in splits.items()}
    return TrainingData(columns, target, task, classes, x, y)

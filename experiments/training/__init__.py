"""Trainers: small plugins that turn a tabular dataset version into a Keras model.

A trainer is a class with a `name`, a `label`, the `task` it solves (classification or regression) and a
`Params` DRF serializer (its parameter schema: defaults, bounds, and the 400 that names a bad field). It
is registered by dotted path in the TRAINERS setting, so a team can add its own. The training job
(experiments/training/job.py) prepares the data, calls `build(data, params)` for a compiled model and
fits it, logging everything into a run.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework import serializers


class Trainer:
    name: ClassVar[str]
    label: ClassVar[str]
    task: ClassVar[str]  # "classification" or "regression"
    Params: ClassVar[type[serializers.Serializer]]

    def build(self, data: Any, params: dict[str, Any]) -> Any:  # pragma: no cover - the interface
        raise NotImplementedError


@cache
def trainers() -> dict[str, type[Trainer]]:
    found: dict[str, type[Trainer]] = {}
    for path in settings.TRAINERS:
        trainer = import_string(path)
        found[trainer.name] = trainer
    return found


def get_trainer(name: str) -> type[Trainer] | None:
    return trainers().get(name)


def param_defaults(trainer: type[Trainer]) -> dict[str, Any]:
    """Each parameter's default, as a form or an API client would start from."""
    out = {}
    for name, field in trainer.Params().fields.items():
        if field.default is not serializers.empty:
            out[name] = field.default() if callable(field.default) else field.default
    return out


def validate_params(trainer: type[Trainer], params: Any) -> dict[str, Any]:
    """The trainer's parameters with defaults filled in; a ValidationError names a bad field."""
    if not isinstance(params, dict):
        raise serializers.ValidationError({"non_field_errors": ["parameters are a JSON object"]})
    serializer = trainer.Params(data=params)
    unknown = sorted(set(params) - set(serializer.fields))
    if unknown:  # a typo must not train with the defaults unnoticed
        raise serializers.ValidationError(
            {unknown[0]: [f"unknown parameter; {trainer.name} takes {', '.join(serializer.fields)}"]}
        )
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)

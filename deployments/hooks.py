"""Checks that apps above deployments add to a canary's live judgment.

`monitoring` knows the ground truth (feedback), which `deployments` may not import; it registers a check
here in its AppConfig.ready. A check gets the rollout and returns what it measured (merged into the
rollout's `health`) and a reason to roll back, or None while the candidate looks fine or there is too
little to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployments.models import Rollout

CanaryCheck = Callable[["Rollout"], tuple[dict[str, Any], str | None]]
_CHECKS: dict[str, CanaryCheck] = {}


def register_canary_check(name: str, check: CanaryCheck) -> None:
    _CHECKS[name] = check


def canary_checks() -> dict[str, CanaryCheck]:
    return dict(_CHECKS)

"""A small in-process event bus: lower apps announce what happened, higher apps subscribe.

Apps import only downwards, so `monitoring` cannot call `pipelines` when an alert opens. Instead it
`publish("alert.opened", alert_id=...)`, and `pipelines` (in its AppConfig.ready) `subscribe`s to it.
Handlers run after the publishing transaction commits, so they never see half-written rows, and take
ids, not model instances. A failing handler is logged and does not affect the publisher or the others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

Handler = Callable[..., None]
_HANDLERS: dict[str, dict[str, Handler]] = defaultdict(dict)

# The events, for the record: name -> what the payload holds.
EVENTS = {
    "alert.opened": "alert_id, rule_id, deployment_id, severity",
    "alert.resolved": "alert_id, rule_id, deployment_id",
    "dataset.version_created": "version_id, dataset_id",
}


def subscribe(event: str, name: str, handler: Handler) -> None:
    """Add (or replace) the handler called `name` for `event`."""
    _HANDLERS[event][name] = handler


def unsubscribe(event: str, name: str) -> None:
    _HANDLERS[event].pop(name, None)


def publish(event: str, **payload: Any) -> None:
    """Call every handler of `event` with `payload` once the current transaction commits."""

    def deliver() -> None:
        for name, handler in list(_HANDLERS[event].items()):
            try:
                handler(**payload)
            except Exception:  # one subscriber's bug must not break the publisher or the others
                logger.exception("event handler failed", extra={"event": event, "handler": name})

    transaction.on_commit(deliver)

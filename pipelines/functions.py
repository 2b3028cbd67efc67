"""Python functions that pipelines' `function` steps may call (listed in PIPELINE_FUNCTIONS): small examples.
A team adds its own module's functions to the setting. A function takes keyword arguments (JSON values) and
returns a JSON object, which becomes the step's outputs."""

from __future__ import annotations

import time
from typing import Any


def echo(**kwargs: Any) -> dict[str, Any]:
    """Return the arguments: handy to pass values on, and to try templates out."""
    return dict(kwargs)


def wait(seconds: float = 1.0) -> dict[str, Any]:
    """Sleep (at most a minute): stands in for slow work in demos and tests."""
    pause = max(0.0, min(float(seconds), 60.0))
    time.sleep(pause)
    return {"waited": pause}

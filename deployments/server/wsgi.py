"""`granian --interface wsgi deployments.server.wsgi:application` (what `manage.py serve_models` runs):
the model server, polling the database for active revisions."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from multiprocessing import util
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
django.setup()

from django.conf import settings  # noqa: E402  (the apps must be loaded first)

from deployments.server.app import ModelServer  # noqa: E402
from deployments.server.logwriter import ProcessPredictionLogger  # noqa: E402
from mlops_portal.environ import without_process_headers  # noqa: E402

# The prediction log is written by a child process: a writer thread here would hold the GIL while it
# builds each batch and add 10-20 ms to the p99 of predictions at 500 requests/s (docs/performance.md).
writer = (
    ProcessPredictionLogger(settings.MODEL_SERVER_LOG_FLUSH_SECONDS) if settings.MODEL_SERVER_LOG_PREDICTIONS else None
)
app = ModelServer(prediction_log=writer)
app.start_polling()
# On the way out, hand the queued prediction log to the writer and wait for it. granian's worker is a
# multiprocessing child, which leaves through os._exit, so `atexit` would never run; multiprocessing's
# own exit finalizers do run, both there and at a normal interpreter exit. Priority above 10: before
# the writer's queue closes its feeder thread (its finalizer has priority 10), and before
# multiprocessing terminates daemon children (the writer is one).
util.Finalize(None, app.stop, exitpriority=100)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The model server, seeing only the headers the request carries. granian starts every request's
    environ from a copy of the process environment (mlops_portal/environ.py), so a variable such as
    `HTTP_X_REQUEST_ID` or `HTTP_X_DEPLOYMENT` would pass for a header the client sent."""
    return app(without_process_headers(environ), start_response)

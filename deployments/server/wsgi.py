"""`gunicorn deployments.server.wsgi:app`: the model server, polling the database for active revisions."""

from __future__ import annotations

import atexit
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
django.setup()

from django.conf import settings  # noqa: E402  (the apps must be loaded first)

from deployments.server.app import ModelServer  # noqa: E402
from deployments.server.logwriter import ProcessPredictionLogger  # noqa: E402

# The prediction log is written by a child process: a writer thread here would hold the GIL while it
# builds each batch and add 10-20 ms to the p99 of predictions at 500 requests/s (docs/performance.md).
writer = (
    ProcessPredictionLogger(settings.MODEL_SERVER_LOG_FLUSH_SECONDS) if settings.MODEL_SERVER_LOG_PREDICTIONS else None
)
app = ModelServer(prediction_log=writer)
app.start_polling()
# Gunicorn's worker exits through sys.exit on SIGTERM/SIGINT: write the queued prediction log first.
atexit.register(app.stop)

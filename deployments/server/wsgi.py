"""`gunicorn deployments.server.wsgi:app`: the model server, polling the database for active revisions."""

from __future__ import annotations

import atexit
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
django.setup()

from deployments.server.app import ModelServer  # noqa: E402  (needs the apps loaded)

app = ModelServer()
app.start_polling()
# Gunicorn's worker exits through sys.exit on SIGTERM/SIGINT: write the queued prediction log first.
atexit.register(app.stop)

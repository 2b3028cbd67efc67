"""`manage.py serve_models --port 8001`: run the model server under gunicorn (one process, threads).

One worker process because each would load every model; gthread threads give the concurrency, and
TensorFlow releases the GIL while it computes. The server keeps its own Prometheus registry, so the
web process's multiprocess metrics directory is not passed on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the model server (TF Serving and MLflow scoring protocols) for every active deployment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.MODEL_SERVER_PORT)
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "mlops_portal.settings"))
        argv = [
            sys.executable, "-m", "gunicorn", "deployments.server.wsgi:app",
            "--bind", f"{options['host']}:{options['port']}", "--workers", "1", "--worker-class", "gthread",
            "--threads", str(options["threads"]), "--graceful-timeout", "10", "--timeout", "120",
        ]  # fmt: skip
        self.stdout.write(f"model server on http://{options['host']}:{options['port']}/", ending="\n")
        self.stdout.flush()
        os.execve(sys.executable, argv, env)  # noqa: S606  (replace this process, as `exec` would)

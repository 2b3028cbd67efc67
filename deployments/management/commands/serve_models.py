"""`manage.py serve_models --port 8001`: run the model server under granian (one process, threads).

One worker process because each would load every model; granian's blocking threads give the
concurrency, and TensorFlow releases the GIL while it computes. granian rather than gunicorn: its HTTP
layer is Rust, so no Python thread has to take the GIL to accept, read and hand over a request.
Under gunicorn's gthread worker that hand-over queued requests behind the GIL, and the p99 latency at
500 requests/s moved between 2.5 and 90 ms from one 10 s stretch to the next; under granian it stays
at 1.5-3.4 ms (docs/performance.md, "The model server"). The server keeps its own Prometheus
registry, so the web process's multiprocess metrics directory is not passed on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

# A stopping worker hands its queued prediction log to the writer process and waits for it
# (deployments/server/logwriter.py: at most 5 s for the hand-over and 20 s for the writer; well under a
# second when the database answers); granian kills a worker that takes longer than this. Under every
# supervisor's grace period: docker-compose's and Kubernetes' 30 s, `./portal up`'s 30 s.
STOP_SECONDS = 28


class Command(BaseCommand):
    help = "Run the model server (TF Serving and MLflow scoring protocols) for every active deployment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.MODEL_SERVER_PORT)
        # 4 as the web process has: more than twice the cores plus one, and granian warns; on 2 cores 1 and
        # 4 threads answered alike at 500 requests/s.
        parser.add_argument("--threads", type=int, default=4, help="request threads (granian's blocking threads)")

    def handle(self, *args: Any, **options: Any) -> None:
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "mlops_portal.settings"))
        argv = [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--host", options["host"],
            "--port", str(options["port"]), "--workers", "1", "--blocking-threads", str(options["threads"]),
            "--no-ws", "--respawn-failed-workers", "--workers-kill-timeout", str(STOP_SECONDS),
            "deployments.server.wsgi:application",
        ]  # fmt: skip
        self.stdout.write(f"model server on http://{options['host']}:{options['port']}/", ending="\n")
        self.stdout.flush()
        os.execve(sys.executable, argv, env)  # noqa: S606  (replace this process, as `exec` would)

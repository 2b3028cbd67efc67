"""WSGI entry point: `granian --interface wsgi mlops_portal.wsgi:application` (what `./portal up` runs).

The application sees only what the request carries. granian, like the standard library's wsgiref,
starts every request's environ from a copy of the process environment (CGI's heritage, which PEP 3333
allows), so `DATABASE_URL`, `SECRET_KEY` and every other variable would sit in `request.META`, where
Django's error reports and any view that lists headers would show them; and a variable such as
`HTTP_PROXY` would pass for a header the client sent. `request_only` (mlops_portal/environ.py) keeps
the CGI keys a server sets for the request, the server's and WSGI's own dotted keys, and the `HTTP_*`
headers, except a header whose value is exactly that of the process variable of the same name (the
copy, not the client's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import FileWrapper

from django.core.wsgi import get_wsgi_application

from mlops_portal.environ import request_only

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")

FILE_BLOCK = 1 << 20


def file_wrapper(filelike: Any, block_size: int = 0) -> FileWrapper:
    """`wsgi.file_wrapper` for a server that has none (granian): a file response in 1 MiB reads. Without
    it Django hands the server 4 KiB pieces, one Python call each, and a download ran at a seventh of
    gunicorn's speed (which sends files with sendfile)."""
    return FileWrapper(filelike, max(block_size, FILE_BLOCK))


def _request_only_app(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ = request_only(environ)
        environ.setdefault("wsgi.file_wrapper", file_wrapper)
        return app(environ, start_response)

    return application


_django = get_wsgi_application()

from experiments.mlflow_api.lane import Lane  # noqa: E402 (needs the apps loaded)

# The mlflow client's per-value writes skip Django's request handling (experiments/mlflow_api/lane.py).
application = _request_only_app(Lane(_django))

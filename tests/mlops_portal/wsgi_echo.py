"""A WSGI application behind the portal's environ filter that answers with the environ's keys as JSON.

Run by tests/mlops_portal/test_wsgi.py under the real granian, to see what the portal's views would get.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from mlops_portal.wsgi import _request_only_app


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/file":  # as Django answers a FileResponse: through wsgi.file_wrapper
        path = environ["QUERY_STRING"].removeprefix("path=")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 4096)  # the server closes it
    body = json.dumps({key: value for key, value in environ.items() if isinstance(value, str)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = _request_only_app(_echo)

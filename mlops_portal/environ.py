"""What a WSGI request's environ holds of the request, and what the server copied from the process.

granian, like the standard library's wsgiref, starts every request's environ from a copy of the process
environment (CGI's heritage, which PEP 3333 allows). Both of the portal's granian applications, the web
process (mlops_portal/wsgi.py) and the model server (deployments/server/wsgi.py), filter it with what is
here. No Django import: the model server uses it without building the web application.
"""

from __future__ import annotations

import os
from typing import Any

# What a server sets for a request (PEP 3333 and the CGI variables servers commonly add).
REQUEST_KEYS = frozenset(
    {
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
        "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "GATEWAY_INTERFACE",
        "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI", "REQUEST_URI",
    }
)  # fmt: skip


# The process's own HTTP_* variables, read once: granian copied them at the worker's start, and looking
# each header up in os.environ (which encodes the key on every lookup) cost more than the filter itself.
PROCESS_HEADERS = {key: value for key, value in os.environ.items() if key.startswith("HTTP_")}


def request_only(environ: dict[str, Any], process_env: Any = PROCESS_HEADERS) -> dict[str, Any]:
    """`environ` without the entries copied from the process environment (the web process: nothing of
    the process may reach `request.META`)."""
    return {
        key: value
        for key, value in environ.items()
        if "." in key or key in REQUEST_KEYS or (key.startswith("HTTP_") and process_env.get(key) != value)
    }


def without_process_headers(environ: dict[str, Any]) -> dict[str, Any]:
    """`environ` without the `HTTP_*` entries that are the process's own, the rest kept (the model
    server: it shows nothing of the environ, it only must not take a variable for a header). The same
    rule as `request_only`'s for headers; the same `environ` when the process has no such variable."""
    if not PROCESS_HEADERS:
        return environ
    return {key: value for key, value in environ.items() if PROCESS_HEADERS.get(key) != value}

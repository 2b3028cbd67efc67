"""The web process's application sees what the request carries, not the process environment."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

from mlops_portal.environ import REQUEST_KEYS, request_only
from mlops_portal.wsgi import FILE_BLOCK, _request_only_app
from tests.services import Process, free_port, launcher, running, wait_until


def test_process_variables_are_dropped_and_request_keys_kept() -> None:
    process = {"SECRET_KEY": "s3cret", "DATABASE_URL": "postgres://u:pw@db/x", "HTTP_PROXY": "http://evil:3128",
               "HTTP_X_SAME": "1", "REQUEST_METHOD": "DELETE"}  # fmt: skip
    environ = {
        **process,
        "REQUEST_METHOD": "GET", "PATH_INFO": "/health", "QUERY_STRING": "a=1", "CONTENT_LENGTH": "0",
        "SERVER_NAME": "h", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "h",
        "HTTP_AUTHORIZATION": "Bearer t", "HTTP_X_SAME": "2", "wsgi.input": object(), "wsgi.url_scheme": "http",
        "LANG": "C.UTF-8",
    }  # fmt: skip
    kept = request_only(environ, process)
    assert "SECRET_KEY" not in kept and "DATABASE_URL" not in kept and "LANG" not in kept
    assert "HTTP_PROXY" not in kept  # the process's variable, not a header the client sent (httpoxy)
    assert kept["HTTP_X_SAME"] == "2"  # a header the client sent, whatever the process has of that name
    assert kept["REQUEST_METHOD"] == "GET" and kept["HTTP_AUTHORIZATION"] == "Bearer t"
    assert kept["wsgi.input"] is environ["wsgi.input"]
    assert set(kept) == {k for k in environ if k in REQUEST_KEYS or k.startswith(("HTTP_", "wsgi."))} - {"HTTP_PROXY"}


def test_under_granian_no_process_variable_reaches_the_application(tmp_path: Path) -> None:
    """granian copies the whole process environment into each request's environ; the filter takes it out."""
    port = free_port()
    options = launcher().web_server_options("127.0.0.1", port, 1)
    options[-1] = "tests.mlops_portal.wsgi_echo:application"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PORTAL_CANARY_SECRET": "canary-value",
           "HTTP_X_CANARY": "from-the-process", "PORTAL_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    granian = Path(sys.executable).parent / "granian"
    server = Process("granian", [str(granian), *options], env)

    def get(headers: dict[str, str]) -> dict[str, str] | None:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/some/path?q=1", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (http, built above)
                return json.loads(response.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    with running(server):
        seen = wait_until(lambda: get({"X-Sent": "yes"}), timeout=60, message="granian to answer")
        assert seen["PATH_INFO"] == "/some/path" and seen["QUERY_STRING"] == "q=1"
        assert seen["HTTP_X_SENT"] == "yes" and seen["REQUEST_METHOD"] == "GET"
        leaked = {key for key, value in seen.items() if os.environ.get(key) == value or value.startswith("canary")}
        assert not leaked, f"process variables reached the application: {sorted(leaked)}"
        assert "PORTAL_CANARY_SECRET" not in seen and "HTTP_X_CANARY" not in seen and "PATH" not in seen
        # A header of the same name as a process variable, sent by the client, does arrive.
        assert get({"X-Canary": "from-the-client"})["HTTP_X_CANARY"] == "from-the-client"  # type: ignore[index]
        # A file response arrives whole.
        data = os.urandom(5 * 1024 * 1024 + 3)
        (tmp_path / "file.bin").write_bytes(data)
        url = f"http://127.0.0.1:{port}/file?path={tmp_path / 'file.bin'}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == data


def test_files_are_handed_to_the_server_in_large_blocks_and_closed(tmp_path: Path) -> None:
    """Without a server file wrapper, Django would give granian 4 KiB pieces (a seventh of the speed)."""
    target = tmp_path / "big.bin"
    target.write_bytes(os.urandom(3 * FILE_BLOCK + 5))
    handle = target.open("rb")
    app = _request_only_app(lambda environ, start_response: environ["wsgi.file_wrapper"](handle, 4096))
    body = app({"REQUEST_METHOD": "GET", "wsgi.input": None}, lambda *a: None)
    pieces = list(body)
    assert [len(p) for p in pieces] == [FILE_BLOCK] * 3 + [5]
    body.close()  # type: ignore[attr-defined]
    assert handle.closed
    # A server's own wrapper (gunicorn's sendfile) is kept.
    own = object()
    seen = _request_only_app(lambda environ, start_response: [environ["wsgi.file_wrapper"]])
    assert list(seen({"wsgi.file_wrapper": own}, lambda *a: None)) == [own]

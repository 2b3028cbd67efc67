"""The WSGI lane for log-metric and log-parameter (experiments/mlflow_api/lane.py) answers as Django
would, byte for byte, and leaves every other request, and every error, to Django."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import resolve

from experiments import services
from experiments.mlflow_api import lane, tracking
from experiments.models import LatestMetric, LifecycleStage, Metric, Param
from mlops_portal.environ import PROCESS_HEADERS
from mlops_portal.wsgi import _request_only_app
from monitoring.metrics import REQUEST_DURATION
from tests.conftest import bearer
from tests.services import drop_connection

pytestmark = pytest.mark.django_db(transaction=True)

METRIC = "/api/2.0/mlflow/runs/log-metric"
PARAM = "/api/2.0/mlflow/runs/log-parameter"


class Spy:
    """Django's application, counting the requests that reach it. A new handler reads the settings as
    they are now (middleware reads them once, when the handler is built)."""

    def __init__(self) -> None:
        self.calls = 0
        self.django = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        return self.django(environ, start_response)


def call(app: Any, path: str, body: Any, headers: dict[str, str], method: str = "POST", **extra: str) -> Any:
    """(status, headers, body) of one request through `app`, as granian would hand it over."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:5000", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        **headers, **extra,
    }  # fmt: skip
    seen: list[Any] = []
    out = app(environ, lambda status, response_headers, exc_info=None: seen.append((status, response_headers)))
    content = b"".join(out)
    getattr(out, "close", lambda: None)()
    return seen[0][0], seen[0][1], content


@pytest.fixture
def run(editor: Any) -> Any:
    experiment = services.create_experiment("lane", owner=editor)
    return services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])


def both(path: str, body: Any, headers: dict[str, str], **extra: str) -> tuple[Any, Any, int]:
    """The lane's answer, Django's answer to the same request, and how many times the lane handed over."""
    spy = Spy()
    through_lane = call(_request_only_app(lane.Lane(spy)), path, body, headers, **extra)
    through_django = call(_request_only_app(WSGIHandler()), path, body, headers, **extra)
    return through_lane, through_django, spy.calls


def point(run: Any, step: int, value: Any = 0.5, **more: Any) -> dict[str, Any]:
    return {"run_id": run.pk, "key": "loss", "value": value, "timestamp": 1700000000000, "step": step, **more}


def test_the_lanes_paths_are_the_views_it_stands_in_for() -> None:
    assert resolve(METRIC).func is tracking.log_metric and lane.WRITES[METRIC] is tracking.write_metric
    assert resolve(PARAM).func is tracking.log_param and lane.WRITES[PARAM] is tracking.write_param
    assert set(lane.WRITES) == {METRIC, PARAM}


def test_a_logged_metric_and_param_are_answered_by_the_lane_exactly_as_django_answers(editor: Any, run: Any) -> None:
    headers = bearer(editor)
    got, expected, handed_over = both(METRIC, point(run, 1), headers)
    assert handed_over == 0
    assert got == expected == ("200 OK", expected[1], b"{}")
    assert dict(got[1])["X-Frame-Options"] == "DENY" and dict(got[1])["Content-Length"] == "2"
    # Both stored the same point once (the write is idempotent); the latest value moved.
    assert list(Metric.objects.filter(run=run).values_list("step", "value")) == [(1, 0.5)]
    assert LatestMetric.objects.get(run=run, key="loss").step == 1

    got, expected, handed_over = both(PARAM, {"run_id": run.pk, "key": "lr", "value": "0.01"}, headers)
    assert handed_over == 0 and got == expected and got[0] == "200 OK"
    assert list(Param.objects.filter(run=run).values_list("key", "value")) == [("lr", "0.01")]


def test_non_finite_values_take_the_lane_and_are_kept(editor: Any, run: Any) -> None:
    for step, value in enumerate(["NaN", "Infinity", "-Infinity"]):
        got, expected, handed_over = both(METRIC, point(run, step, value), bearer(editor))
        assert handed_over == 0 and got == expected and got[0] == "200 OK"
    stored = sorted(Metric.objects.filter(run=run).values_list("step", "value", "is_nan"))
    assert stored == [(0, 0.0, True), (1, float("inf"), False), (2, float("-inf"), False)]


@override_settings(SECURE_HSTS_SECONDS=3600, SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
def test_over_https_the_lane_sends_the_same_security_headers(editor: Any, run: Any) -> None:
    got, expected, handed_over = both(METRIC, point(run, 1), bearer(editor), **{"wsgi.url_scheme": "https"})
    assert handed_over == 0 and got == expected
    assert dict(got[1])["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    got, expected, _ = both(METRIC, point(run, 2), bearer(editor))
    assert got == expected and "Strict-Transport-Security" not in dict(got[1])  # plain HTTP: none


def test_every_error_and_every_other_request_is_djangos(editor: Any, viewer: Any, run: Any) -> None:
    """Each case reaches Django once (the lane hands it over before writing) and gets Django's answer."""
    token = bearer(editor)
    deleted = services.create_run(run.experiment, user_id="erin", start_time=None, run_name="d", tags=[])
    services.set_run_lifecycle(deleted, LifecycleStage.DELETED, actor=editor)
    services.log_params(run, [("fixed", "1")])
    big = json.dumps(point(run, 9, note="x" * (lane.MAX_BODY + 1))).encode()
    cases: list[tuple[str, str, Any, dict[str, str], dict[str, str], int]] = [
        ("unknown token", METRIC, point(run, 1), {"HTTP_AUTHORIZATION": "Bearer mlp_nope"}, {}, 401),
        ("no credentials", METRIC, point(run, 1), {}, {}, 401),
        ("unsupported scheme", METRIC, point(run, 1), {"HTTP_AUTHORIZATION": "Digest x"}, {}, 401),
        ("a viewer", METRIC, point(run, 1), bearer(viewer), {}, 403),
        ("no such run", METRIC, {**point(run, 1), "run_id": "f" * 32}, token, {}, 404),
        ("a deleted run", METRIC, point(deleted, 1), token, {}, 400),
        ("no run id", METRIC, {"key": "loss", "value": 1, "timestamp": 1}, token, {}, 400),
        ("a bad value", METRIC, point(run, 1, "high"), token, {}, 400),
        ("a bad key", METRIC, {**point(run, 1), "key": "../x"}, token, {}, 400),
        ("a changed param", PARAM, {"run_id": run.pk, "key": "fixed", "value": "2"}, token, {}, 400),
        ("a param too long", PARAM, {"run_id": run.pk, "key": "k", "value": "v" * 6001}, token, {}, 400),
        ("malformed JSON", METRIC, b'{"run_id": ', token, {}, 400),
        ("not an object", METRIC, b"[1, 2]", token, {}, 400),
        ("over the lane's size", METRIC, big, token, {}, 200),
        ("a host not allowed", METRIC, point(run, 1), token, {"HTTP_HOST": "evil.example"}, 400),
        ("a NUL in the run id", METRIC, {**point(run, 1), "run_id": run.pk + "\x00x"}, token, {}, 400),
        ("a NUL in a param", PARAM, {"run_id": run.pk, "key": "k", "value": "a\x00b"}, token, {}, 400),
        ("GET", METRIC, b"", token, {"REQUEST_METHOD": "GET"}, 400),
    ]
    for name, path, body, headers, extra, status in cases:
        stored = Metric.objects.count()
        spy = Spy()
        got = call(_request_only_app(lane.Lane(spy)), path, body, headers, **extra)
        assert spy.calls == 1, name
        assert got[0].startswith(str(status)), (name, got)
        # Refused: nothing written, by the lane or by Django (which the lane handed the request to).
        assert Metric.objects.count() == stored + (status == 200), name
        expected = call(_request_only_app(WSGIHandler()), path, body, headers, **extra)
        assert got == expected, name
    assert not Metric.objects.filter(run=deleted).exists()
    assert Param.objects.get(run=run, key="fixed").value == "1"


def test_basic_auth_takes_the_lane_and_http_where_https_is_required_takes_djangos_path(editor: Any, run: Any) -> None:
    import base64

    editor.set_password("pw-for-basic-auth-1")
    editor.save()
    basic = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"erin:pw-for-basic-auth-1").decode()}
    got, expected, handed_over = both(METRIC, point(run, 1), basic)
    assert handed_over == 0 and got == expected and got[0] == "200 OK"  # the middleware's own credentials check
    with override_settings(SECURE_SSL_REDIRECT=True):
        got, expected, handed_over = both(METRIC, point(run, 2), bearer(editor))
    assert handed_over == 1 and got == expected and got[0].startswith("301")


def test_a_process_variable_never_passes_for_the_authorization_header(editor: Any, run: Any, monkeypatch: Any) -> None:
    secret = bearer(editor)["HTTP_AUTHORIZATION"]
    monkeypatch.setitem(PROCESS_HEADERS, "HTTP_AUTHORIZATION", secret)  # as read at the worker's start
    spy = Spy()
    got = call(_request_only_app(lane.Lane(spy)), METRIC, point(run, 1), {"HTTP_AUTHORIZATION": secret})
    assert spy.calls == 1 and got[0].startswith("401")  # the process's value is dropped, as for any header
    assert not Metric.objects.filter(run=run).exists()


def test_the_lane_counts_the_request_as_the_middleware_does(editor: Any, run: Any) -> None:
    def count() -> float:
        for metric in REQUEST_DURATION.collect():
            for sample in metric.samples:
                wanted = {"method": "POST", "route": "/api/2.0/mlflow/runs/log-metric", "status": "200"}
                if sample.name.endswith("_count") and wanted.items() <= sample.labels.items():
                    return float(sample.value)
        return 0.0

    before = count()
    spy = Spy()
    assert call(_request_only_app(lane.Lane(spy)), METRIC, point(run, 1), bearer(editor))[0] == "200 OK"
    assert spy.calls == 0 and count() == before + 1
    assert call(_request_only_app(WSGIHandler()), METRIC, point(run, 2), bearer(editor))[0] == "200 OK"
    assert count() == before + 2  # the same series as Django's middleware


@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates a PostgreSQL backend")
def test_through_the_lane_one_statement_and_a_dropped_connection_is_replaced(
    editor: Any, run: Any, monkeypatch: Any
) -> None:
    app, headers = _request_only_app(lane.Lane(Spy())), bearer(editor)
    assert call(app, METRIC, point(run, 1), headers)[0] == "200 OK"
    connection.ensure_connection()  # a connection kept from an earlier request, and kept after the next
    connection.close_at = None
    checks: list[int] = []
    real_is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real_is_usable())
    connection.health_check_done = False  # as at the start of a new request
    with CaptureQueriesContext(connection) as queries:
        assert call(app, METRIC, point(run, 2), headers)[0] == "200 OK"
    assert checks == []  # no SELECT 1 first
    assert len(queries.captured_queries) == 1, [q["sql"][:80] for q in queries.captured_queries]
    monkeypatch.undo()
    connection.ensure_connection()
    connection.close_at = None  # not obsolete: the lane's start keeps it, and its statement finds it dropped
    drop_connection()
    spy = Spy()
    got = call(_request_only_app(lane.Lane(spy)), METRIC, point(run, 3), headers)
    assert got[0] == "200 OK", got
    assert spy.calls == 1  # the lane's statement failed on the dropped connection; Django reconnected and wrote
    assert list(Metric.objects.filter(run=run).order_by("step").values_list("step", flat=True)) == [1, 2, 3]
    connection.close()


def test_forwarded_headers_are_read_as_django_reads_them(editor: Any, run: Any) -> None:
    proto = {"HTTP_X_FORWARDED_PROTO": "https"}
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), SECURE_HSTS_SECONDS=60):
        got, expected, handed_over = both(METRIC, point(run, 1), bearer(editor), **proto)
    assert handed_over == 0 and got == expected and dict(got[1])["Strict-Transport-Security"] == "max-age=60"
    forwarded = {"HTTP_X_FORWARDED_HOST": "evil.example"}
    with override_settings(USE_X_FORWARDED_HOST=True):
        got, expected, handed_over = both(METRIC, point(run, 2), bearer(editor), **forwarded)
    assert handed_over == 1 and got == expected and got[0].startswith("400")  # Django judges the host


def test_a_database_error_in_the_token_lookup_is_djangos_to_answer(editor: Any, run: Any, monkeypatch: Any) -> None:
    from django.db import OperationalError

    def broken(_request: Any) -> Any:
        raise OperationalError("the database went away")

    monkeypatch.setattr(lane, "authenticate_header", broken)  # the lane's lookup only; Django's still works
    spy = Spy()
    got = call(_request_only_app(lane.Lane(spy)), METRIC, point(run, 1), bearer(editor))
    assert spy.calls == 1 and got[0] == "200 OK"
    assert Metric.objects.filter(run=run).count() == 1


def test_a_nul_character_is_a_400_that_names_the_field(editor: Any, run: Any) -> None:
    from django.test import Client

    client, headers = Client(), bearer(editor)
    response = client.get("/api/2.0/mlflow/runs/get", {"run_id": "ab\x00c"}, **headers)
    assert response.status_code == 400 and "'run_id'" in response.json()["message"]
    body = json.dumps({"run_id": run.pk, "tags": [{"key": "k", "value": "x\x00"}]})
    response = client.post("/api/2.0/mlflow/runs/log-batch", body, content_type="application/json", **headers)
    assert response.status_code == 400 and "'tags[0].value'" in response.json()["message"], response.content


@pytest.mark.skipif(connection.vendor != "postgresql", reason="libpq: PostgreSQL")
def test_the_lanes_write_goes_through_libpq_and_reuses_its_prepared_statement(
    editor: Any, run: Any, monkeypatch: Any
) -> None:
    from mlops_portal import rawsql

    calls: list[str] = []
    real = rawsql._fetch_one_libpq
    monkeypatch.setattr(rawsql, "_fetch_one_libpq", lambda *args: calls.append("libpq") or real(*args))
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)  # a connection kept between requests
    app, headers = _request_only_app(lane.Lane(Spy())), bearer(editor)
    for step in range(3):
        assert call(app, METRIC, point(run, step), headers)[0] == "200 OK"
    assert calls == ["libpq"] * 3
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_portal\\_%%'")
        assert cursor.fetchone()[0] == 1  # prepared on the first call, reused by the next two
    assert Metric.objects.filter(run=run).count() == 3
    connection.close()

"""Alert rules evaluated on beat: for-duration, one alert per rule, auto-resolve, acknowledge and resolve
by hand, events for pipelines, and notifications by e-mail and by a signed webhook under the egress policy."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from mlops_portal import events
from monitoring import alerts, egress, rollups, services
from monitoring.models import Alert, AlertRule, AlertStatus
from tests.conftest import bearer


@pytest.fixture
def rule(deployment: Any, editor: Any) -> AlertRule:
    return services.create_alert_rule(
        deployment, owner=editor, name="errors", metric="error_rate", comparator=">", threshold=0.1,
        window_minutes=5, for_minutes=2, min_requests=5, notify_emails=["oncall@example.com"],
    )  # fmt: skip


def traffic(predict: Any, at: Any, ok: int, errors: int) -> None:
    for i in range(ok + errors):
        predict(at - timedelta(seconds=i), status=500 if i < errors else 200)
    rollups.fill_rollups()


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """Notification tasks sent to the broker (a real worker runs them in the e2e tests)."""
    from monitoring.tasks import notify

    sent: list[list[Any]] = []
    monkeypatch.setattr(notify, "apply_async", lambda args, retry: sent.append(args))
    return sent


def test_an_alert_opens_after_its_for_duration_dedups_and_resolves_itself(
    rule: AlertRule, predict: Any, django_capture_on_commit_callbacks: Any, queued: list[list[Any]]
) -> None:
    now = timezone.now() - timedelta(minutes=30)  # the log never holds rows from the future
    traffic(predict, now, ok=10, errors=5)
    assert alerts.evaluate_rule(rule, now) == "pending"  # breaching, but not for 2 minutes yet
    assert alerts.evaluate_rule(rule, now + timedelta(minutes=1)) == "pending"
    opened: list[dict[str, Any]] = []
    events.subscribe("alert.opened", "test", lambda **payload: opened.append(payload))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert alerts.evaluate_rule(rule, now + timedelta(minutes=2)) == "opened"
    finally:
        events.unsubscribe("alert.opened", "test")
    alert = Alert.objects.get()
    assert (alert.status, alert.severity, alert.value) == ("open", "warning", pytest.approx(1 / 3))
    assert opened == [{"alert_id": alert.pk, "rule_id": rule.pk, "deployment_id": rule.deployment_id,
                       "severity": "warning"}]  # fmt: skip
    assert queued == [[alert.pk, "opened"]]
    assert alerts.notify(alert.pk, "opened")[0] == {"channel": "email", "event": "opened", "status": "sent",
                                                     "at": Alert.objects.get().notifications[0]["at"]}  # fmt: skip
    assert mail.outbox[-1].to == ["oncall@example.com"] and "errors opened" in mail.outbox[-1].subject
    assert alerts.evaluate_rule(rule, now + timedelta(minutes=3)) == "updated"
    assert Alert.objects.count() == 1  # deduplicated
    traffic(predict, now + timedelta(minutes=20), ok=20, errors=0)
    assert alerts.evaluate_rule(rule, now + timedelta(minutes=20)) == "resolved"
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_by is None


def test_no_data_neither_fires_nor_resolves(rule: AlertRule, predict: Any) -> None:
    assert alerts.evaluate_rule(rule, timezone.now()) == "n/a"
    assert not Alert.objects.exists()
    then = timezone.now() - timedelta(minutes=30)
    traffic(predict, then, ok=5, errors=5)
    AlertRule.objects.filter(pk=rule.pk).update(for_minutes=0)
    assert alerts.evaluate_rule(AlertRule.objects.get(pk=rule.pk), then) == "opened"
    # Later, no traffic in the window: not a recovery, the alert stays open.
    assert alerts.evaluate_rule(AlertRule.objects.get(pk=rule.pk), timezone.now()) == "n/a"
    assert Alert.objects.get().status == AlertStatus.OPEN


@pytest.mark.parametrize(
    ("metric", "value", "comparator", "threshold", "expected"),
    [
        ("p95_latency_ms", 43.75, ">", 20, "opened"),  # 8 requests in (1, 2] ms, 2 in (25, 50] ms
        ("p99_latency_ms", 48.75, ">", 50, "ok"),
        ("mean_latency_ms", 9.6, ">", 50, "ok"),
        ("request_rate", 10 / 300, "<", 1, "opened"),
        ("error_rate", 0.0, ">", 0, "ok"),
    ],
)
def test_latency_and_rate_metrics_come_from_the_rollups(
    deployment: Any,
    editor: Any,
    predict: Any,
    metric: str,
    value: float,
    comparator: str,
    threshold: float,
    expected: str,
) -> None:
    now = timezone.now()
    for i in range(10):
        predict(now - timedelta(seconds=i), latency_ms=2.0 if i < 8 else 40.0)
    rollups.fill_rollups()
    rule = services.create_alert_rule(deployment, owner=editor, name=metric, metric=metric, comparator=comparator,
                                      threshold=threshold, window_minutes=5, min_requests=5)  # fmt: skip
    assert alerts.metric_value(rule, now) == pytest.approx(value)
    assert alerts.evaluate_rule(rule, now) == expected


def test_acknowledge_then_resolve_by_hand_over_the_api(rule: AlertRule, predict: Any, editor: Any, viewer: Any) -> None:
    now = timezone.now()
    traffic(predict, now, ok=5, errors=5)
    AlertRule.objects.filter(pk=rule.pk).update(for_minutes=0)
    rule.refresh_from_db()
    alerts.evaluate_rule(rule, now)
    alert = Alert.objects.get()
    api = Client(**bearer(editor))
    assert Client(**bearer(viewer)).post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 403
    acked = api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "erin")
    assert api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 400
    assert api.post(f"/api/v1/alerts/{alert.pk}/resolve/").json()["status"] == "resolved"
    assert api.get("/api/v1/alerts/", {"status": "resolved"}).json()["results"][0]["id"] == alert.pk
    assert api.get("/api/v1/alerts/", {"status": "bogus"}).status_code == 400


def test_rules_are_created_over_the_api_and_bad_ones_name_the_field(deployment: Any, editor: Any, viewer: Any) -> None:
    body = {"deployment": "churn-prod", "name": "slow", "metric": "p95_latency_ms", "threshold": 250}
    api = Client(**bearer(editor))
    created = api.post("/api/v1/alert-rules/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert (created.json()["comparator"], created.json()["window_minutes"]) == (">", 5)
    secret = created.json()["webhook_secret"]  # shown once, to its creator
    assert len(secret) == 64 and "webhook_secret" not in api.get(f"/api/v1/alert-rules/{created.json()['id']}/").json()
    hooked = api.patch(f"/api/v1/alert-rules/{created.json()['id']}/", {"notify_emails": ["a@example.com"]},
                       content_type="application/json")  # fmt: skip
    assert hooked.json()["notify_emails"] == ["a@example.com"]
    assert Client(**bearer(viewer)).get(f"/api/v1/alert-rules/{created.json()['id']}/").json()["notify_emails"] == []
    for extra, field in (({"name": "x", "metric": "vibes"}, "metric"), ({"name": "y", "webhook_url": "http://127.0.0.1/"},
                         "webhook_url"), ({"name": "z", "notify_emails": ["nope"]}, "notify_emails"),
                         ({"name": "slow"}, "name"), ({"name": "w", "deployment": "ghost"}, "deployment"),
                         ({"name": "v", "webhook_url": "http://h:99999/"}, "webhook_url"),
                         ({"name": "u", "webhook_url": "http://100.100.100.200/"}, "webhook_url")):  # fmt: skip
        response = api.post("/api/v1/alert-rules/", {**body, **extra}, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["field"] == field, (extra, response.content)
    assert (
        Client(**bearer(viewer)).post("/api/v1/alert-rules/", body, content_type="application/json").status_code == 403
    )
    patched = api.patch(f"/api/v1/alert-rules/{created.json()['id']}/", {"enabled": False},
                        content_type="application/json")  # fmt: skip
    assert patched.json()["enabled"] is False
    other = api.post("/api/v1/alert-rules/", {**body, "name": "other"}, content_type="application/json").json()
    clash = api.patch(f"/api/v1/alert-rules/{other['id']}/", {"name": "slow"}, content_type="application/json")
    assert clash.status_code == 400 and clash.json()["error"]["field"] == "name"


def test_the_alerts_page_lists_firing_alerts_with_actions(rule: AlertRule, predict: Any, editor_client: Client) -> None:
    now = timezone.now()
    traffic(predict, now, ok=5, errors=5)
    AlertRule.objects.filter(pk=rule.pk).update(for_minutes=0)
    alerts.evaluate_rule(AlertRule.objects.get(pk=rule.pk), now)
    alert = Alert.objects.get()
    page = editor_client.get("/monitoring/alerts/").content.decode()
    assert f'id="alert-{alert.pk}"' in page and "Acknowledge" in page and "1 firing" in editor_client.get(
        "/monitoring/").content.decode()  # fmt: skip
    editor_client.post(f"/monitoring/alerts/{alert.pk}/resolve")
    assert Alert.objects.get().status == "resolved"


# Webhooks ------------------------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    answer = 200
    redirect_to = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        if Receiver.redirect_to:
            self.send_response(307)
            self.send_header("Location", Receiver.redirect_to)
        else:
            self.send_response(Receiver.answer)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received, Receiver.answer, Receiver.redirect_to = [], 200, ""
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()


def firing(deployment: Any, editor: Any, predict: Any, url: str) -> Alert:
    rule = AlertRule.objects.create(deployment=deployment, name="hook", metric="error_rate", threshold=0.1,
                                    min_requests=1, webhook_url=url, webhook_secret="s3cret", owner=editor)  # fmt: skip
    traffic(predict, timezone.now(), ok=1, errors=1)
    alerts.evaluate_rule(rule, timezone.now())
    return Alert.objects.get(rule=rule)


def test_the_egress_policy_refuses_loopback_private_and_metadata_addresses() -> None:
    for url in ("http://127.0.0.1/x", "http://localhost/x", "http://10.0.0.5/", "http://169.254.169.254/latest",
                "http://[::1]/", "ftp://example.com/", "http://user:pw@example.com/"):  # fmt: skip
        with pytest.raises(egress.EgressDenied):
            egress.resolve(url)


def test_a_signed_webhook_reaches_an_allowed_host(
    deployment: Any, editor: Any, predict: Any, receiver: str, settings: Any
) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    alert = firing(deployment, editor, predict, receiver)
    outcomes = alerts.notify(alert.pk, "opened")
    assert outcomes == [{"channel": "webhook", "event": "opened", "status": "sent", "detail": "200",
                         "at": outcomes[0]["at"]}]  # fmt: skip
    headers, body = Receiver.received[0]
    expected = hmac.new(b"s3cret", headers["X-Portal-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Portal-Signature"] == f"sha256={expected}"
    assert json.loads(body)["event"] == "alert.opened" and json.loads(body)["deployment"] == "churn-prod"
    assert alerts.notify(alert.pk, "opened") == []  # a retried task does not send twice


def test_a_webhook_refused_by_the_policy_or_redirected_to_loopback_is_not_sent(
    deployment: Any, editor: Any, predict: Any, receiver: str, settings: Any
) -> None:
    alert = firing(deployment, editor, predict, receiver)
    assert alerts.notify(alert.pk, "opened")[0]["status"] == "refused" and Receiver.received == []
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    Receiver.redirect_to = receiver.replace("127.0.0.1", "localhost")  # checked again after the redirect
    outcome = alerts.notify(alert.pk, "resolved")[0]
    assert outcome["status"] == "refused" and "loopback" in outcome["detail"] and len(Receiver.received) == 1


def test_a_webhook_answering_5xx_is_retried(
    deployment: Any, editor: Any, predict: Any, receiver: str, settings: Any
) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    Receiver.answer = 503
    alert = firing(deployment, editor, predict, receiver)
    with pytest.raises(alerts.WebhookRetry):
        alerts.notify(alert.pk, "opened")


def test_listing_rules_costs_the_same_queries_for_one_rule_or_many(deployment: Any, editor: Any, viewer: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deployments import services as deployments
    from registry import services as registry

    client = Client(**bearer(viewer))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/alert-rules/").status_code == 200
        return len(queries)

    AlertRule.objects.create(deployment=deployment, name="r0", metric="error_rate", threshold=0.1, owner=editor)
    count()  # the first call also looks the token up (then cached)
    one = count()
    for n in range(1, 6):
        AlertRule.objects.create(deployment=deployment, name=f"r{n}", metric="error_rate", threshold=0.1, owner=editor)
    assert count() == one
    page = Client()
    page.force_login(viewer)
    with CaptureQueriesContext(connection) as queries:
        assert page.get("/monitoring/alerts/").status_code == 200
    before = len(queries)
    other = registry.create_registered_model("other", owner=editor)
    second = deployments.create_deployment("churn-b", other, "1", owner=editor)
    AlertRule.objects.create(deployment=second, name="r", metric="error_rate", threshold=0.1, owner=editor)
    with CaptureQueriesContext(connection) as queries:
        response = page.get("/monitoring/alerts/")
    assert response.status_code == 200 and "churn-b" in response.content.decode()  # the new rule is listed
    assert len(queries) == before

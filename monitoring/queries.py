"""Read the rollups for charts and the overview: ranges bucketed in SQL, percentiles from the histogram.

A range is cut into at most about 720 slots of whole minutes (1 h: 1 min, 24 h: 2 min, 7 d: 15 min,
30 d: 1 h), and the database sums each slot's rollup rows (`epoch_minute / width`, integer division on
both SQLite and PostgreSQL), so thirty days of per-minute rows come back as 720 sums per series.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import F, Sum

from deployments.models import Deployment, DeploymentEvent
from monitoring.models import BUCKET_FIELDS, LATENCY_BOUNDS_MS, MinuteRollup
from monitoring.rollups import epoch_minute

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
MAX_SLOTS = 720
SUMMED = ("requests", "errors", "client_errors", "latency_sum_ms", "labelled", "correct", "valued",
          "abs_error_sum", "sq_error_sum", *BUCKET_FIELDS)  # fmt: skip
MARKED_EVENTS = (DeploymentEvent.Kind.ROLLOUT_STARTED, DeploymentEvent.Kind.PROMOTED, DeploymentEvent.Kind.ROLLED_BACK)


NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


def slot_width(span: timedelta) -> int:
    """Minutes per slot, a round number, so the range has at most MAX_SLOTS of them."""
    minutes = max(1, int(span.total_seconds() // 60))
    needed = -(-minutes // MAX_SLOTS)
    return next((w for w in NICE_WIDTHS if w >= needed), needed)


def quantile(q: float, buckets: list[int]) -> float | None:
    """The q-quantile (ms) of a latency histogram, interpolated inside its bucket (as Prometheus'
    histogram_quantile does); the open last bucket answers its lower bound."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for count, upper in zip(buckets, [*LATENCY_BOUNDS_MS, None], strict=True):
        if count and seen + count >= rank:
            if upper is None:
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = float(upper) if upper is not None else lower
    return lower


@dataclass
class Slot:
    """The sums of one slot of a series."""

    start: datetime
    values: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> float:
        return self.values.get(name, 0) or 0

    @property
    def buckets(self) -> list[int]:
        return [int(self.get(name)) for name in BUCKET_FIELDS]

    @property
    def error_rate(self) -> float | None:
        return self.get("errors") / self.get("requests") if self.get("requests") else None

    @property
    def accuracy(self) -> float | None:
        return self.get("correct") / self.get("labelled") if self.get("labelled") else None

    @property
    def mae(self) -> float | None:
        return self.get("abs_error_sum") / self.get("valued") if self.get("valued") else None

    @property
    def mean_latency(self) -> float | None:
        return self.get("latency_sum_ms") / self.get("requests") if self.get("requests") else None


@dataclass
class Series:
    """A deployment's range: slots of all its traffic, and slots per (model version, arm)."""

    start: datetime
    end: datetime
    width: int
    total: list[Slot]
    by_arm: dict[tuple[int, str], list[Slot]]
    events: list[DeploymentEvent]

    @property
    def slot_seconds(self) -> int:
        return self.width * 60


def _slot_start(slot: int, width: int) -> datetime:
    return datetime.fromtimestamp(slot * width * 60, tz=UTC)


def series(deployment: Deployment, start: datetime, end: datetime) -> Series:
    """One query of sums per slot, model version and arm (all traffic is their sum), and one of events."""
    width = slot_width(end - start)
    rows = MinuteRollup.objects.filter(
        deployment=deployment, epoch_minute__gte=epoch_minute(start), epoch_minute__lt=epoch_minute(end) + 1
    ).annotate(slot=F("epoch_minute") / width)
    sums = {name: Sum(name) for name in SUMMED}
    by_arm: dict[tuple[int, str], list[Slot]] = defaultdict(list)
    totals: dict[int, dict[str, float]] = {}
    for row in rows.values("slot", "model_version", "arm").annotate(**sums).order_by("model_version", "arm", "slot"):
        by_arm[(row["model_version"], row["arm"])].append(Slot(_slot_start(row["slot"], width), row))
        total = totals.setdefault(row["slot"], dict.fromkeys(SUMMED, 0))
        for name in SUMMED:
            total[name] += row[name] or 0
    total_slots = [Slot(_slot_start(slot, width), values) for slot, values in sorted(totals.items())]
    events = list(
        deployment.events.filter(kind__in=MARKED_EVENTS, time__gte=start, time__lte=end).order_by("time", "id")
    )
    return Series(start, end, width, total_slots, dict(by_arm), events)


@dataclass
class DriftCell:
    """The largest PSI of one feature within one slot of drift windows."""

    window_end: datetime
    feature: str
    psi: float | None
    severity: str
    n: int


def drift_cells(deployment: Deployment, start: datetime, end: datetime) -> list[DriftCell]:
    """Drift windows in the range merged in SQL into at most MAX_SLOTS columns: the worst PSI of each."""
    from django.db.models import Max, Min

    from datasets.diff import severity
    from monitoring.models import DriftResult

    width = slot_width(end - start)
    rows = (
        DriftResult.objects.filter(deployment=deployment, window_end__gt=start, window_end__lte=end)
        .annotate(slot=F("window_epoch_minute") / width)
        .values("slot", "feature")
        .annotate(psi=Max("psi"), n=Min("n"), last=Max("window_end"))
        .order_by("slot", "feature")
    )
    return [DriftCell(row["last"], row["feature"], row["psi"], severity(row["psi"]), row["n"]) for row in rows]


@dataclass
class Summary:
    """A deployment's recent health, for the overview."""

    requests: int
    errors: int
    p95_ms: float | None
    accuracy: float | None
    labelled: int
    status: str  # "healthy", "degraded", "no traffic"
    reasons: list[str]

    @property
    def error_pct(self) -> float | None:
        return 100 * self.errors / self.requests if self.requests else None


def summaries(
    deployments: list[Deployment], now: datetime, window: timedelta = timedelta(hours=1)
) -> dict[int, Summary]:
    """Last-hour traffic and last-day accuracy of each deployment, in two queries."""
    ids = [d.pk for d in deployments]
    recent = (
        MinuteRollup.objects.filter(deployment_id__in=ids, epoch_minute__gte=epoch_minute(now - window))
        .values("deployment_id")
        .annotate(requests=Sum("requests"), errors=Sum("errors"), **{name: Sum(name) for name in BUCKET_FIELDS})
    )
    traffic = {row["deployment_id"]: row for row in recent}
    day = (
        MinuteRollup.objects.filter(deployment_id__in=ids, epoch_minute__gte=epoch_minute(now - timedelta(days=1)))
        .values("deployment_id")
        .annotate(labelled=Sum("labelled"), correct=Sum("correct"))
    )
    accuracy = {row["deployment_id"]: row for row in day}
    out = {}
    for deployment in deployments:
        row: dict[str, Any] = traffic.get(deployment.pk) or {}
        labels: dict[str, Any] = accuracy.get(deployment.pk) or {}
        requests, errors = int(row.get("requests") or 0), int(row.get("errors") or 0)
        p95 = quantile(0.95, [int(row.get(name) or 0) for name in BUCKET_FIELDS])
        labelled = int(labels.get("labelled") or 0)
        acc = (labels.get("correct") or 0) / labelled if labelled else None
        reasons = []
        if requests and errors / requests > deployment.max_error_rate:
            reasons.append(f"error rate {errors / requests:.1%} above {deployment.max_error_rate:.1%}")
        if p95 is not None and deployment.latency_budget_ms is not None and p95 > deployment.latency_budget_ms:
            reasons.append(f"p95 {p95:.1f} ms above the {deployment.latency_budget_ms:g} ms budget")
        if acc is not None and deployment.min_accuracy is not None and acc < deployment.min_accuracy:
            reasons.append(f"accuracy {acc:.1%} below {deployment.min_accuracy:.1%}")
        status = "no traffic" if not requests else ("degraded" if reasons else "healthy")
        out[deployment.pk] = Summary(requests, errors, p95, acc, labelled, status, reasons)
    return out

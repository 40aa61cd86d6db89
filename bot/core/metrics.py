"""What PoracleNG's `/metrics` (the Prometheus text format) says about being stuck, read with prometheus-client's
parser: the delivery backlog and the webhooks received so far."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# The delivery job channel's length (capacity 200 by default), set once per reload interval (60 s). The
# per-platform *_queue_depth gauges count sends in flight (at most 10 each), not a backlog.
QUEUE = "poracle_delivery_queue_depth"
# A counter per webhook type; no series exists before the first webhook after a start (missing = 0).
WEBHOOKS = "poracle_processor_webhooks_received"


class MetricsError(Exception):
    """The text cannot be read as PoracleNG's metrics; the message says why, in a few words."""


@dataclass(frozen=True, slots=True)
class PoracleMetrics:
    delivery_queue: float
    webhooks_received: float  # summed over the webhook types


def count(value: float) -> str:
    """A count as people write it: 1234567, not 1.23457e+06."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def parse_metrics(text: str) -> PoracleMetrics:
    """The two figures stuck detection uses; MetricsError when the text is not Prometheus text or lacks the
    delivery queue (then it is not PoracleNG: every NG exports that gauge from start-up)."""
    queue: float | None = None
    webhooks = 0.0
    try:
        for family in text_string_to_metric_families(text):
            if family.name == QUEUE:
                queue = next((s.value for s in family.samples if s.name == QUEUE), queue)
            elif family.name == WEBHOOKS:
                webhooks += sum(s.value for s in family.samples if s.name == WEBHOOKS + "_total")
    except ValueError as exc:  # the parser's one error for text it cannot read
        raise MetricsError(f"not Prometheus text ({str(exc)[:80]})") from None
    if queue is None:
        raise MetricsError(f"no {QUEUE} (is this PoracleNG?)")
    if not (math.isfinite(queue) and math.isfinite(webhooks)):
        raise MetricsError("not a number where a count belongs")
    return PoracleMetrics(float(queue), float(webhooks))  # the parser gives an int for "350"

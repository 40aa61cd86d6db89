"""Reading PoracleNG's /metrics text: the delivery backlog and the webhooks received, nothing else trusted."""

from __future__ import annotations

import re

import pytest

from bot.core.metrics import MetricsError, PoracleMetrics, parse_metrics
from tests.support.poracle_http import PoracleNgLike


def test_the_backlog_and_the_webhooks_of_every_type_summed() -> None:
    text = PoracleNgLike(queue=37, webhooks={"pokemon": 1200, "raid": 34.0, "weather": 5}).metrics_text()
    assert parse_metrics(text) == PoracleMetrics(delivery_queue=37, webhooks_received=1239)


def test_no_webhooks_series_yet_counts_as_none_received() -> None:
    """PoracleNG's counter has no series until the first webhook after its start."""
    assert parse_metrics(PoracleNgLike(queue=0).metrics_text()) == PoracleMetrics(0, 0)


def test_the_per_platform_gauges_are_not_the_backlog() -> None:
    """poracle_delivery_discord_queue_depth counts sends in flight (10 in the text); the backlog is 3."""
    assert parse_metrics(PoracleNgLike(queue=3).metrics_text()).delivery_queue == 3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<html><body>Not Found</body></html>", "not Prometheus text"),
        ('poracle_delivery_queue_depth{a="1} 3\n', "not Prometheus text"),
        ("go_goroutines 87\n", "no poracle_delivery_queue_depth (is this PoracleNG?)"),
        ("", "no poracle_delivery_queue_depth"),
        ("poracle_delivery_queue_depth NaN\n", "not a number where a count belongs"),
    ],
)
def test_text_that_is_not_poraclengs_metrics_says_why(text: str, words: str) -> None:
    with pytest.raises(MetricsError, match=re.escape(words)):
        parse_metrics(text)

"""Prometheus metrics this process counts itself (database-backed gauges: gateway.api.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Not registered globally: each app's /metrics registry adds them (see gateway.api.metrics).
WEBHOOK_ATTEMPTS = Counter(
    "crc_gateway_webhook_attempts",
    "Webhook delivery attempts made by this process, by result.",
    ["result"],
    registry=None,
)
WEBHOOK_SECONDS = Histogram(
    "crc_gateway_webhook_attempt_seconds",
    "How long webhook delivery attempts made by this process took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=None,
)
PROCESS_METRICS = (WEBHOOK_ATTEMPTS, WEBHOOK_SECONDS)

"""Prometheus metrics of one bot process (served by the webhook app and ``crowdpin run --metrics-port``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter("crowdpin_updates_total", "Updates handled", ["type"], registry=self.registry)
        self.answers = Counter("crowdpin_answers_total", "Answers recorded", registry=self.registry)
        self.errors = Counter("crowdpin_update_errors_total", "Updates that raised", registry=self.registry)
        self.latency = Histogram(
            "crowdpin_update_seconds",
            "Time to handle one update",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.open_leases = Gauge("crowdpin_open_leases", "Leases not yet answered", registry=self.registry)
        self.sent = Counter("crowdpin_messages_sent_total", "Bot API calls that send or edit", registry=self.registry)
        self.http_429 = Counter("crowdpin_telegram_429_total", "429 Too Many Requests received", registry=self.registry)

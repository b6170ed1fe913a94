"""Prometheus metrics of one worker, served on --metrics-port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Totals:
    rows_read: int = 0
    rows_sent: int = 0
    rows_bad: int = 0
    bytes_read: int = 0


class Metrics:
    """Counters and gauges, made when they are first served: most runs serve none, and
    prometheus_client takes a while to import."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.registry: Any = None
        self._counters: dict[str, Any] = {}
        self._checkpoint_age: Any = None
        self._queue_depth: Any = None
        self._last = Totals()

    def serve(self, port: int) -> None:
        if not port:
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        job = self.job_id

        def counter(name: str, help_text: str) -> Any:
            return Counter(name, help_text, ["job"], registry=self.registry).labels(job)

        def gauge(name: str, help_text: str) -> Any:
            return Gauge(name, help_text, ["job"], registry=self.registry).labels(job)

        self._counters = {
            "rows_read": counter("csvkafka_rows_read", "Data rows read from the source"),
            "rows_sent": counter("csvkafka_rows_sent", "Rows acknowledged by Kafka"),
            "rows_bad": counter("csvkafka_rows_bad", "Rows dead-lettered or skipped"),
            "bytes_read": counter("csvkafka_bytes_read", "Bytes of the (decompressed) source read"),
        }
        self._checkpoint_age = gauge("csvkafka_checkpoint_age_seconds", "Seconds since the last checkpoint")
        self._queue_depth = gauge("csvkafka_producer_queue_depth", "Messages waiting in the producer queue")
        start_http_server(port, registry=self.registry)

    def observe(self, totals: Totals, *, checkpoint_age: float, queue_depth: int) -> None:
        """Counters move by what changed since the last call (a resumed run starts from its checkpoint)."""
        if self.registry is None:
            return
        for name, child in self._counters.items():
            child.inc(max(0, getattr(totals, name) - getattr(self._last, name)))
        self._last = totals
        self._checkpoint_age.set(checkpoint_age)
        self._queue_depth.set(queue_depth)

"""Prometheus metrics of one worker, served on --metrics-port."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


@dataclass
class Totals:
    rows_read: int = 0
    rows_sent: int = 0
    rows_bad: int = 0
    bytes_read: int = 0


class Metrics:
    def __init__(self, job_id: str) -> None:
        self.registry = CollectorRegistry()

        def counter(name: str, help_text: str) -> Counter:
            return Counter(name, help_text, ["job"], registry=self.registry)

        def gauge(name: str, help_text: str) -> Gauge:
            return Gauge(name, help_text, ["job"], registry=self.registry)

        self._counters = {
            "rows_read": counter("csvkafka_rows_read", "Data rows read from the source").labels(job_id),
            "rows_sent": counter("csvkafka_rows_sent", "Rows acknowledged by Kafka").labels(job_id),
            "rows_bad": counter("csvkafka_rows_bad", "Rows dead-lettered or skipped").labels(job_id),
            "bytes_read": counter("csvkafka_bytes_read", "Bytes of the (decompressed) source read").labels(job_id),
        }
        self._checkpoint_age = gauge("csvkafka_checkpoint_age_seconds", "Seconds since the last checkpoint"
                                     ).labels(job_id)
        self._queue_depth = gauge("csvkafka_producer_queue_depth", "Messages waiting in the producer queue"
                                  ).labels(job_id)
        self._last = Totals()

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)

    def observe(self, totals: Totals, *, checkpoint_age: float, queue_depth: int) -> None:
        """Counters move by what changed since the last call (a resumed run starts from its checkpoint)."""
        for name, child in self._counters.items():
            child.inc(max(0, getattr(totals, name) - getattr(self._last, name)))
        self._last = totals
        self._checkpoint_age.set(checkpoint_age)
        self._queue_depth.set(queue_depth)

"""Prometheus metrics of one worker, served on --metrics-port."""

from __future__ import annotations

import threading
import time
from collections import Counter as Tallies
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csvkafka_worker.retry import Service


@dataclass
class Totals:
    rows_read: int = 0
    rows_sent: int = 0
    rows_bad: int = 0
    bytes_read: int = 0


class Metrics:
    """Counters and gauges, made when they are first served: most runs serve none, and
    prometheus_client takes a while to import. Retries and throttles are tallied whether served or
    not (the finish line reports them)."""

    def __init__(self, job_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.registry: Any = None
        self._clock = clock
        self._counters: dict[str, Any] = {}
        self._retries: Any = None
        self._throttled: Any = None
        self._queue_depth: Any = None
        self._last = Totals()
        self._checkpointed_at = clock()
        self._lock = threading.Lock()
        self.retries: Tallies[str] = Tallies()
        self.throttles: Tallies[str] = Tallies()

    def register(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

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
        by_service = ["job", "service"]
        self._retries = Counter("csvkafka_retries", "Calls retried after a transient failure or throttling",
                                by_service, registry=self.registry)
        self._throttled = Counter("csvkafka_throttled", "Calls a service (s3, dynamodb, kafka) throttled",
                                  by_service, registry=self.registry)
        for service in Service:
            # Present at 0 from the start, so that rate() and increase() see the first throttle.
            self._retries.labels(job, service.value).inc(self.retries[service.value])
            self._throttled.labels(job, service.value).inc(self.throttles[service.value])
        # Computed when scraped, so it keeps growing while the worker is stuck (a dead network, a
        # throttled table), not only when the import loop moves.
        gauge("csvkafka_checkpoint_age_seconds", "Seconds since the last checkpoint").set_function(
            lambda: self._clock() - self._checkpointed_at)
        self._queue_depth = gauge("csvkafka_producer_queue_depth", "Messages waiting in the producer queue")

    def serve(self, port: int) -> None:
        if not port:
            return
        from prometheus_client import start_http_server

        self.register()
        start_http_server(port, registry=self.registry)

    def retried(self, service: Service) -> None:
        """A call to `service` failed transiently (or was throttled) and is tried again."""
        self._count(self.retries, self._retries, service)

    def throttled(self, service: Service) -> None:
        """`service` throttled a call (Kafka: a broker's quota, which librdkafka waits out itself)."""
        self._count(self.throttles, self._throttled, service)

    def _count(self, tallies: Tallies[str], counter: Any, service: Service) -> None:
        with self._lock:
            tallies[service.value] += 1
        if self.registry is not None:
            counter.labels(self.job_id, service.value).inc()

    def checkpointed(self) -> None:
        self._checkpointed_at = self._clock()

    def next_object(self) -> None:
        """The totals observed next are a new object's, counted from zero (many objects, one worker)."""
        self._last = Totals()

    def observe(self, totals: Totals, *, queue_depth: int) -> None:
        """Counters move by what changed since the last call (a resumed run starts from its checkpoint)."""
        if self.registry is None:
            return
        for name, child in self._counters.items():
            child.inc(max(0, getattr(totals, name) - getattr(self._last, name)))
        self._last = totals
        self._queue_depth.set(queue_depth)

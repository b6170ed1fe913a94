"""Prometheus metrics of one worker, served on --metrics-port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    def __init__(self, job_id: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["job"]
        self.rows_read = Counter("csvkafka_rows_read", "Data rows read from the source", labels, registry=self.registry)
        self.rows_sent = Counter("csvkafka_rows_sent", "Rows acknowledged by Kafka", labels, registry=self.registry)
        self.rows_bad = Counter("csvkafka_rows_bad", "Rows dead-lettered or skipped", labels, registry=self.registry)
        self.bytes_read = Counter("csvkafka_bytes_read", "Bytes of the (decompressed) source read", labels,
                                  registry=self.registry)
        self.checkpoint_age = Gauge("csvkafka_checkpoint_age_seconds", "Seconds since the last checkpoint", labels,
                                    registry=self.registry)
        self.queue_depth = Gauge("csvkafka_producer_queue_depth", "Messages waiting in the producer queue", labels,
                                 registry=self.registry)
        self.job = job_id

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)

    def add(self, *, rows_read: int = 0, rows_sent: int = 0, rows_bad: int = 0, bytes_read: int = 0) -> None:
        self.rows_read.labels(self.job).inc(rows_read)
        self.rows_sent.labels(self.job).inc(rows_sent)
        self.rows_bad.labels(self.job).inc(rows_bad)
        self.bytes_read.labels(self.job).inc(bytes_read)

    def gauges(self, *, checkpoint_age: float, queue_depth: int) -> None:
        self.checkpoint_age.labels(self.job).set(checkpoint_age)
        self.queue_depth.labels(self.job).set(queue_depth)

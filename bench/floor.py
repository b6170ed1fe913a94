"""The cost of the Kafka calls alone, from Python: what any design that calls `produce()` per row pays.

Reads a local file, splits it into lines in memory (as kcat does), then produces every line with
the worker's producer settings. The variants add, one at a time, what the worker adds per row:

- `plain`: `produce(topic, value)`, nothing else
- `callback`: plus a per-message delivery callback (the worker's watermark counts these)
- `headers`: plus the two `csvkafka.*` headers (a list of two tuples built per row)
- `full`: callback and headers, as the worker sends by default
- `batch`: `produce_batch()` with one dict per row and no callback
- `batch-callback`: `produce_batch()` with one delivery callback for the whole batch

    python -m bench.floor FILE --topic T --variant plain

Prints one JSON line: rows, seconds to split, to produce, to flush.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from csvkafka_worker.kafka_config import PRODUCER_DEFAULTS

VARIANTS = ("plain", "callback", "headers", "full", "batch", "batch-callback")


def produce_all(producer: Producer, topic: str, lines: list[bytes], variant: str) -> None:
    produce, poll = producer.produce, producer.poll
    acked = [0]

    def ack(_error: Any, _message: Any) -> None:
        acked[0] += 1

    if variant.startswith("batch"):
        produce_batches(producer, topic, lines, ack if variant == "batch-callback" else None)
        return
    source: tuple[str, str | bytes | None] = ("csvkafka.source", b"s3://bench/file.csv")
    with_headers = variant in ("headers", "full")
    callback = ack if variant in ("callback", "full") else None
    n, i = len(lines), 0
    while i < n:
        try:
            # One loop per variant, so that the loop itself costs what the worker's loop costs.
            if not with_headers and callback is None:
                for i in range(i, n):  # noqa: B020  (resumes at the row that met a full queue)
                    produce(topic, lines[i])
            elif not with_headers:
                for i in range(i, n):  # noqa: B020
                    produce(topic, lines[i], on_delivery=callback)
            else:
                step = 65_536  # headers are built a block at a time, as the worker does
                for first in range(i, n, step):
                    headers: list[list[tuple[str, str | bytes | None]]] = [
                        [source, ("csvkafka.row", b"%d" % (r + 1))] for r in range(first, min(n, first + step))]
                    for i in range(first, min(n, first + step)):
                        produce(topic, lines[i], on_delivery=callback, headers=headers[i - first])
                    poll(0)
            i = n
        except BufferError:
            poll(0.05)


def produce_batches(producer: Producer, topic: str, lines: list[bytes], ack: Any, step: int = 10_000) -> None:
    for first in range(0, len(lines), step):
        batch: list[dict[str, Any]] = [{"value": value} for value in lines[first:first + step]]
        while batch:
            try:
                queued = producer.produce_batch(topic, batch, on_delivery=ack) if ack else \
                    producer.produce_batch(topic, batch)
            except BufferError:
                queued = 0
            if queued < len(batch):
                batch = [message for message in batch if "_error" in message] if queued else batch
                for message in batch:
                    message.pop("_error", None)
                producer.poll(0.05)
            else:
                batch = []
        producer.poll(0)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("file", type=Path)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--variant", choices=VARIANTS, default="plain")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "10.88.0.1:9092"))
    args = parser.parse_args()

    started = time.perf_counter()
    lines = args.file.read_bytes().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    split = time.perf_counter()
    producer = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": args.bootstrap_servers})
    produce_all(producer, args.topic, lines, args.variant)
    produced = time.perf_counter()
    remaining = producer.flush(300)
    flushed = time.perf_counter()
    print(orjson.dumps({"rows": len(lines), "split_s": round(split - started, 3),
                        "produce_s": round(produced - split, 3), "flush_s": round(flushed - produced, 3),
                        "undelivered": remaining}).decode())
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main())

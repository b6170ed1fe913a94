"""The Python engine: the reference of the native core, and its fallback.

It splits with records.Scanner (the csv module, and the state machine for records that span
chunks), encodes with encode.RowEncoder, and produces one `produce()` per row, each acknowledged
by a delivery report served by `poll()`, which also gives the row's partition and offset.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Producer

from csvkafka_worker import records
from csvkafka_worker.encode import Encoded, RecordBlock, RowEncoder
from csvkafka_worker.engine import RECORD_OVERHEAD, Encoder, Headers, InFlight, Scanner, Sender, SendPlan
from csvkafka_worker.watermark import CHECKSUM_MODULUS, Counts, RowAcks


class PythonEngine:
    name = "python"

    def __init__(self, dialect: records.Dialect, encoding: str) -> None:
        self.dialect = dialect
        self.encoding = encoding

    def scanner(self, start: int, max_record: int, state: records.State = records.State.START_RECORD) -> Scanner:
        return records.Scanner(self.dialect, start=start, max_record=max_record, state=state, encoding=self.encoding)

    def transfer(self, data: bytes, length: int) -> str:
        return "".join(str(int(state)) for state in records.transfer(self.dialect, data, length))

    def encoder(self, header: tuple[str, ...], *, json: bool, key_column: str | None, max_value: int) -> Encoder:
        return RowEncoder(header, self.dialect, self.encoding, json=json, key_column=key_column, max_value=max_value)

    def producer_settings(self) -> tuple[dict[str, Any], Callable[[Producer], Sender]]:
        return {}, PythonSender


class PythonSender:
    """One produce() per row, each acknowledged by a delivery report served by poll()."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    def send(self, encoded: Encoded, block: RecordBlock, plan: SendPlan) -> InFlight:
        flight = PythonFlight(self.producer)
        rows = [j for j, i in enumerate(encoded.indices) if i < plan.stop]
        headers: list[Headers | None] = [None] * len(rows)
        source = ("csvkafka.source", plan.source)
        if plan.row_headers:
            shard = [("csvkafka.shard", plan.shard)] if plan.shard is not None else []
            headers = [[source, ("csvkafka.row", b"%d" % (plan.first_row + block.ordinal(encoded.indices[j]) - 1)),
                        *shard] for j in rows]
        keys = encoded.keys
        flight.messages = [(plan.topic, encoded.values[j], keys[j] if keys is not None else None, h)
                           for j, h in zip(rows, headers, strict=True)]
        flight.rows = len(rows)
        flight.acks.checksum = sum(map(zlib.crc32, (encoded.values[j] for j in rows))) % CHECKSUM_MODULUS
        for index, reason in plan.dead_letters:
            assert plan.dead_letter_topic is not None
            flight.messages.append((plan.dead_letter_topic, *_dead_letter(block, index, reason, source, plan)))
        flight.acks.outstanding = len(flight.messages)
        return flight


def _dead_letter(block: RecordBlock, index: int, reason: str, source: tuple[str, bytes], plan: SendPlan
                 ) -> tuple[bytes, None, Headers]:
    """A bad record as a dead letter: its bytes (cut to fit a message), where it came from, why."""
    record = block.record(index)
    headers: Headers = [source, ("csvkafka.row", b"%d" % (plan.first_row + block.ordinal(index) - 1)),
                        ("csvkafka.offset", b"%d" % (block.start + block.record_start(index))),
                        ("csvkafka.reason", reason.encode())]
    room = max(1, plan.max_message - records_overhead(headers))
    if len(record) > room:
        headers.append(("csvkafka.truncated-from", b"%d" % len(record)))
        record = record[:room]
    return record, None, headers




def records_overhead(headers: Headers) -> int:
    """What a message's headers and record overhead take of message.max.bytes, with 1 KiB to spare."""
    return RECORD_OVERHEAD + sum(len(k) + len(v or b"") for k, v in headers) + 1024


class PythonFlight:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.acks = RowAcks()
        self.messages: list[tuple[str, bytes, bytes | None, Headers | None]] = []
        self.rows = 0  # the first `rows` messages are rows of the main topic, the rest dead letters
        self._next = 0

    @property
    def outstanding(self) -> int:
        return self.acks.outstanding

    def failures(self) -> list[str]:
        return self.acks.errors

    def receipt(self) -> Counts:
        return self.acks.receipt()

    def produce(self, max_wait: float) -> bool:
        acks, offsets, rows = self.acks, self.acks.offsets, self.rows

        # RowAcks.ack inlined: this runs once per row, and an extra call per row shows in profiles.
        def ack(error: KafkaError | None, _message: Any) -> None:
            acks.outstanding -= 1
            if error is not None:
                acks.errors.append(str(error.str()))

        def ack_row(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                ack(error, message)
                return
            acks.outstanding -= 1
            partition, offset = message.partition(), message.offset()
            seen = offsets.get(partition)
            if seen is None:
                offsets[partition] = (offset, offset)
            elif offset > seen[1]:  # a partition's reports come in offset order: the usual case
                offsets[partition] = (seen[0], offset)
            elif offset < seen[0]:
                offsets[partition] = (offset, seen[1])

        produce, messages = self.producer.produce, self.messages
        full_since: float | None = None
        while self._next < len(messages):
            try:
                for i in range(self._next, len(messages)):
                    topic, value, key, headers = messages[i]
                    produce(topic, value, key, on_delivery=ack_row if i < rows else ack, headers=headers)
                    self._next = i + 1
            except BufferError:
                # The local queue is full: serve delivery reports until there is room again.
                full_since = full_since or time.monotonic()
                if time.monotonic() - full_since > max_wait:
                    return False
                self.producer.poll(0.05)
        self.messages = []
        return True

"""The delivery watermark: the longest prefix of the input whose every row Kafka acknowledged.

Rows are sent a block at a time and acknowledged out of order across blocks. A checkpoint may only
name a position inside the acknowledged prefix, never ahead of it, so that a resume never skips a
row. Pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

CHECKSUM_MODULUS = 2**64


@dataclass(frozen=True)
class Position:
    """After `row` data rows, the stream continues at byte `offset`."""

    row: int
    offset: int


Offsets = dict[int, tuple[int, int]]


@dataclass
class Counts:
    """What delivered rows count for. `checksum` is the sum, mod 2**64, of zlib.crc32 of every value
    sent to the main topic (dead letters excluded); `offsets` holds, per partition of the main topic,
    the first and last offset Kafka acknowledged for those values."""

    sent: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    checksum: int = 0
    offsets: Offsets = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.sent += other.sent
        self.dead_lettered += other.dead_lettered
        self.skipped += other.skipped
        self.checksum = (self.checksum + other.checksum) % CHECKSUM_MODULUS
        merge_offsets(self.offsets, other.offsets)

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "dead_lettered": self.dead_lettered, "skipped": self.skipped,
                "checksum": self.checksum, "offsets": offsets_to_json(self.offsets)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Counts:
        """Reads `to_json`'s dict; keys it lacks (records written before they existed) count as zero."""
        return cls(sent=raw.get("sent", 0), dead_lettered=raw.get("dead_lettered", 0), skipped=raw.get("skipped", 0),
                   checksum=raw.get("checksum", 0), offsets=offsets_from_json(raw.get("offsets") or {}))


def merge_offsets(into: Offsets, other: Offsets) -> None:
    """Widens `into` by `other`: per partition, the lower first and the higher last offset."""
    for partition, (first, last) in other.items():
        seen = into.get(partition)
        into[partition] = (first, last) if seen is None else (min(seen[0], first), max(seen[1], last))


def offsets_to_json(offsets: Offsets) -> dict[str, list[int]]:
    """JSON-able offsets: partitions as strings, in order, each [first, last]."""
    return {str(partition): [first, last] for partition, (first, last) in sorted(offsets.items())}


def offsets_from_json(raw: dict[str, list[int]]) -> Offsets:
    return {int(partition): (int(first), int(last)) for partition, (first, last) in raw.items()}


class Acks(Protocol):
    """A block's acknowledgements, as its engine counts them."""

    def receipt(self) -> Counts:
        """The checksum of the values sent to the main topic and, per partition, the first and last
        offset Kafka acknowledged for them (all of them once `outstanding` is 0)."""
        ...

    @property
    def outstanding(self) -> int:
        """Messages not yet acknowledged (produced or still to produce)."""
        ...

    def failures(self) -> list[str]:
        """Why messages failed, if any did."""
        ...


@dataclass
class RowAcks:
    """Acknowledgements counted one delivery report at a time (the Python engine)."""

    outstanding: int = 0
    errors: list[str] = field(default_factory=list)
    checksum: int = 0
    offsets: Offsets = field(default_factory=dict)

    def ack(self, error: str | None = None, partition: int | None = None, offset: int | None = None) -> None:
        """One message's delivery report: a row of the main topic gives its partition and offset."""
        self.outstanding -= 1
        if error is not None:
            self.errors.append(error)
        elif partition is not None and offset is not None:
            merge_offsets(self.offsets, {partition: (offset, offset)})

    def failures(self) -> list[str]:
        return self.errors

    def receipt(self) -> Counts:
        return Counts(checksum=self.checksum, offsets=self.offsets)


@dataclass
class PendingBlock:
    """One block in flight: the position after it, what it counts for, and its acknowledgements."""

    end: Position
    counts: Counts
    acks: Acks


class DeliveryWatermark:
    def __init__(self, start: Position, counts: Counts | None = None) -> None:
        self._position = start
        self._in_flight: deque[PendingBlock] = deque()
        self.delivered = counts or Counts()

    @property
    def position(self) -> Position:
        """The furthest position all of whose rows are acknowledged (or accounted for)."""
        self._advance()
        return self._position

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def open_block(self, end: Position, counts: Counts, acks: Acks) -> PendingBlock:
        """Registers a block whose messages `acks` counts; blocks complete in the order opened."""
        block = PendingBlock(end=end, counts=counts, acks=acks)
        self._in_flight.append(block)
        return block

    def failures(self) -> list[str]:
        return [failure for block in self._in_flight for failure in block.acks.failures()]

    def _advance(self) -> None:
        while self._in_flight and self._in_flight[0].acks.outstanding == 0 and not self._in_flight[0].acks.failures():
            done = self._in_flight.popleft()
            self._position = done.end
            done.counts.add(done.acks.receipt())
            self.delivered.add(done.counts)

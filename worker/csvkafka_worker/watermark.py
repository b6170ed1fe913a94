"""The delivery watermark: the longest prefix of the input whose every row Kafka acknowledged.

Rows are sent a block at a time and acknowledged out of order across blocks. A checkpoint may only
name a position inside the acknowledged prefix, never ahead of it, so that a resume never skips a
row. Pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Position:
    """After `row` data rows, the stream continues at byte `offset`."""

    row: int
    offset: int


@dataclass
class Counts:
    sent: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    def add(self, other: Counts) -> None:
        self.sent += other.sent
        self.dead_lettered += other.dead_lettered
        self.skipped += other.skipped


class Acks(Protocol):
    """A block's acknowledgements, as its engine counts them."""

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

    def ack(self, error: str | None = None) -> None:
        self.outstanding -= 1
        if error is not None:
            self.errors.append(error)

    def failures(self) -> list[str]:
        return self.errors


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
            self.delivered.add(done.counts)

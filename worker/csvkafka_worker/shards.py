"""Splitting one object among N workers, each starting and ending on a record boundary.

A byte position is a record boundary when the csv state machine (records.py) is in START_RECORD
there, and its state depends on every byte before it, so no worker can find its boundary by
looking at its own bytes alone. Each shard therefore first runs the machine over its nominal byte
range from every one of the 9 states at once and publishes the resulting map of states (its
*transfer*, 9 digits, in its checkpoint item); the state at the start of shard i is then the
transfers of shards 0..i-1 applied in turn to START_RECORD, and from there the same machine finds
the first true record boundary. Exact for every dialect (quoted newlines, escapes, stray quotes);
costs one extra read of the object, done by all shards in parallel. Uncompressed objects only (a
compressed stream has no random access).

The pure parts live here; the reads and the waiting are in `ShardPlanner`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import reduce

from csvkafka_worker.checkpoint import Checkpoint, shard_job_id
from csvkafka_worker.errors import BadInput, Infrastructure, Reason
from csvkafka_worker.records import State

IDENTITY = "".join(str(int(s)) for s in State)


def nominal_bounds(data_start: int, size: int, count: int) -> list[int]:
    """count+1 byte positions cutting [data_start, size) into nearly equal parts."""
    span = max(0, size - data_start)
    return [data_start + span * i // count for i in range(count + 1)]


def compose(first: str, then: str) -> str:
    """The transfer of two ranges one after the other."""
    return "".join(then[int(state)] for state in first)


def state_after(transfers: list[str]) -> State:
    """The machine's state after ranges with these transfers, from the start of the data."""
    return State(int(reduce(compose, transfers, IDENTITY)[State.START_RECORD]))


def with_lookahead(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """Each chunk with the first byte of the next one (b"" for the last)."""
    previous: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        if previous is not None:
            yield previous, chunk[:1]
        previous = chunk
    if previous is not None:
        yield previous, b""


@dataclass(frozen=True)
class ShardRange:
    start: int
    end: int


# transfer(data, length) and first_boundary(chunks, state): the engine's state machine (records.py or
# the native core), with the lookahead convention of records.transfer.
Transfer = Callable[[bytes, int], str]
FirstBoundary = Callable[[Iterator[bytes], State, int], int]


class ShardPlanner:
    """Runs the machine over this shard's range, publishes its transfer, waits for the shards before
    it, and finds its record-aligned range."""

    def __init__(self, *, base_job_id: str, index: int, count: int, transfer: Transfer,
                 first_boundary: FirstBoundary, read: Callable[[int, int], Iterator[bytes]],
                 load: Callable[[str], Checkpoint | None], publish: Callable[[str], object],
                 heartbeat: Callable[[], object], nominal: tuple[int, int] | None = None, timeout: float = 900,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_job_id = base_job_id
        self._nominal = nominal
        self.index = index
        self.count = count
        self._transfer = transfer
        self._first_boundary = first_boundary
        self._read = read
        self._load = load
        self._publish = publish
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep

    def plan(self, data_start: int, size: int, own: Checkpoint) -> ShardRange:
        nominal = self.nominal(data_start, size)
        if own.plan_transfer is None:
            self.publish_own(data_start, size)
        transfers = self._wait_for_transfers(own.source_etag)
        at_start = state_after(transfers[: self.index])
        start = data_start if self.index == 0 else self._boundary_from(nominal.start, at_start, size)
        last = self.index == self.count - 1
        at_end = State(int(transfers[self.index][at_start]))
        end = size if last else self._boundary_from(nominal.end, at_end, size)
        return ShardRange(start, max(start, end))

    def nominal(self, data_start: int, size: int) -> ShardRange:
        """This shard's nominal byte range: the given one, or an equal part of the data; the first shard's
        starts where the data begins, the last one's ends at the end."""
        if self._nominal is None:
            bounds = nominal_bounds(data_start, size, self.count)
            return ShardRange(bounds[self.index], bounds[self.index + 1])
        start, end = (max(data_start, cut) for cut in self._nominal)
        return ShardRange(data_start if self.index == 0 else start, size if self.index == self.count - 1 else end)

    def publish_own(self, data_start: int, size: int) -> None:
        """Scans this shard's range and publishes its transfer, without waiting for the others."""
        nominal = self.nominal(data_start, size)
        self._publish(self.range_transfer(nominal.start, nominal.end, size))

    def range_transfer(self, start: int, end: int, size: int) -> str:
        """The transfer of bytes [start, end), reading one byte past `end` (see records.transfer)."""
        result = IDENTITY
        for chunk, lookahead in with_lookahead(self._read(start, min(end + 1, size))):
            length = min(len(chunk), end - start)
            if length <= 0:
                break
            result = compose(result, self._transfer(chunk + lookahead, length))
            start += length
        return result

    def _boundary_from(self, position: int, state: State, size: int) -> int:
        if state is State.START_RECORD:
            return position  # a record ends right there
        return position + self._first_boundary(self._read(position, size), state, size - position)

    def _wait_for_transfers(self, etag: str | None) -> list[str]:
        deadline = self._clock() + self._timeout
        while True:
            items = [self._load(shard_job_id(self.base_job_id, i, self.count)) for i in range(self.count)]
            found = [item.plan_transfer if item is not None and item.source_etag == etag else None for item in items]
            if all(t is not None for t in found[: self.index + 1]):
                return [t or IDENTITY for t in found]
            if self._clock() > deadline:
                missing = [i for i, t in enumerate(found[: self.index]) if t is None]
                raise Infrastructure(f"shards {missing} of job {self.base_job_id!r} did not publish their scans "
                                     f"within {self._timeout:.0f}s; all {self.count} shards must run at once "
                                     "(Job parallelism = completions)", reason=Reason.SHARDS_NOT_RUNNING)
            self._heartbeat()
            self._sleep(0.5)


def check_shardable(count: int, compressed: bool) -> None:
    if count > 1 and compressed:
        raise BadInput("a compressed object cannot be split among workers; set parallelism to 1 or store the object "
                       "uncompressed", reason=Reason.INVALID_CONFIGURATION)

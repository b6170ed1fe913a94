"""Splitting one object among N workers, each starting and ending on a record boundary.

A byte position is a record boundary when the byte before it is a newline outside quotes. Whether a
newline is inside quotes depends on the parity of all quotes before it, so no worker can find its
boundary by looking at its own bytes alone. Each shard therefore first counts the quotes in its
nominal byte range and publishes the count (in its checkpoint item); the parity at the start of
shard i is then the sum of the counts of shards 0..i-1, and from there a short forward scan finds
the first true record boundary. Exact, even with quoted newlines; costs one extra read of the
object, done by all shards in parallel. Uncompressed objects only (a compressed stream has no
random access), and RFC 4180 quoting (an escape character breaks the parity rule).

The pure parts live here; the reads and the waiting are in `ShardPlanner`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from csvkafka_worker.checkpoint import Checkpoint, shard_job_id
from csvkafka_worker.errors import BadInput, Infrastructure


def nominal_bounds(data_start: int, size: int, count: int) -> list[int]:
    """count+1 byte positions cutting [data_start, size) into nearly equal parts."""
    span = max(0, size - data_start)
    return [data_start + span * i // count for i in range(count + 1)]


def first_boundary(chunks: Iterator[bytes], parity: int, quote: bytes) -> int | None:
    """Bytes consumed up to the first newline at even quote parity (inclusive), given the parity at the
    first byte. None when the chunks end first (the boundary is the end of the object)."""
    consumed = 0
    for chunk in chunks:
        at = 0
        while True:
            newline = chunk.find(b"\n", at)
            if newline < 0:
                parity ^= chunk.count(quote, at) & 1
                break
            parity ^= chunk.count(quote, at, newline) & 1
            if parity == 0:
                return consumed + newline + 1
            at = newline + 1
        consumed += len(chunk)
    return None


@dataclass(frozen=True)
class ShardRange:
    start: int
    end: int


class ShardPlanner:
    """Counts this shard's quotes, publishes the count, waits for the shards before it, finds its range."""

    def __init__(self, *, base_job_id: str, index: int, count: int, quote: bytes,
                 read: Callable[[int, int], Iterator[bytes]], load: Callable[[str], Checkpoint | None],
                 publish: Callable[[int], None], heartbeat: Callable[[], None], timeout: float = 900,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_job_id = base_job_id
        self.index = index
        self.count = count
        self.quote = quote
        self._read = read
        self._load = load
        self._publish = publish
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep

    def plan(self, data_start: int, size: int, own: Checkpoint) -> ShardRange:
        bounds = nominal_bounds(data_start, size, self.count)
        if own.plan_quotes is None:
            quotes = sum(chunk.count(self.quote) for chunk in self._read(bounds[self.index], bounds[self.index + 1]))
            self._publish(quotes)
        counts = self._wait_for_counts(own.source_etag)
        before = sum(counts[: self.index])
        start = data_start if self.index == 0 else self._boundary_after(bounds[self.index], before, size)
        last = self.index == self.count - 1
        end = size if last else self._boundary_after(bounds[self.index + 1], before + counts[self.index], size)
        return ShardRange(start, max(start, end))

    def _boundary_after(self, nominal: int, quotes_before: int, size: int) -> int:
        # Scan from the byte before the nominal cut, so that a cut right after a newline stays there.
        at = nominal - 1
        first = b"".join(self._read(at, at + 1))
        parity = (quotes_before - (1 if first == self.quote else 0)) & 1
        found = first_boundary(self._read(at, size), parity, self.quote)
        return size if found is None else at + found

    def _wait_for_counts(self, etag: str | None) -> list[int]:
        deadline = self._clock() + self._timeout
        while True:
            items = [self._load(shard_job_id(self.base_job_id, i, self.count)) for i in range(self.count)]
            counts = [item.plan_quotes if item is not None and item.source_etag == etag else None for item in items]
            if all(c is not None for c in counts[: self.index + 1]):
                return [c or 0 for c in counts]
            if self._clock() > deadline:
                missing = [i for i, c in enumerate(counts[: self.index]) if c is None]
                raise Infrastructure(f"shards {missing} of job {self.base_job_id!r} did not publish their quote "
                                     f"counts within {self._timeout:.0f}s; all {self.count} shards must run at once "
                                     "(Job parallelism = completions)", reason="ShardsNotRunning")
            self._heartbeat()
            self._sleep(0.5)


def check_shardable(count: int, compressed: bool, escape: str | None) -> None:
    if count == 1:
        return
    if compressed:
        raise BadInput("a compressed object cannot be split among workers; set parallelism to 1 or store the object "
                       "uncompressed", reason="InvalidConfiguration")
    if escape is not None:
        raise BadInput("an object with an escape character cannot be split among workers; set parallelism to 1",
                       reason="InvalidConfiguration")

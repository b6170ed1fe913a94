"""A ceiling on rows and bytes per second, so that one import cannot take a shared cluster's whole capacity.

A token bucket per dimension: tokens come back at the limit's rate up to one second's worth (the
largest burst); `take` spends a block's rows and bytes and then waits off any debt, so a block larger
than a second's budget is sent and paid for afterwards, and the long-run rate is the limit. Pure
apart from the injected clock and sleep; a `stop` event ends a wait at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

BURST_SECONDS = 1.0


class Limit(Protocol):
    """A limit as the spec states it (spec.RateLimitSpec): None means no limit."""

    @property
    def rows_per_second(self) -> float | None: ...

    @property
    def bytes_per_second(self) -> float | None: ...


@dataclass(frozen=True)
class Rates:
    rows_per_second: float | None = None
    bytes_per_second: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.rows_per_second is None and self.bytes_per_second is None


def per_shard(limit: Limit | None, shard_count: int) -> Rates:
    """One shard's share of an import's limit: the import's limit split evenly among its shards."""
    if shard_count < 1:
        raise ValueError(f"shard_count must be at least 1, not {shard_count}")
    if limit is None:
        return Rates()

    def share(rate: float | None) -> float | None:
        return None if rate is None else rate / shard_count

    return Rates(share(limit.rows_per_second), share(limit.bytes_per_second))


class _Bucket:
    """Tokens for one dimension: refilled at `rate` up to a burst's worth; may go into debt."""

    def __init__(self, rate: float, now: float) -> None:
        if not rate > 0:
            raise ValueError(f"a rate limit must be positive, not {rate}")
        self.rate = rate
        self.capacity = rate * BURST_SECONDS
        self.tokens = self.capacity
        self.at = now

    def spend(self, amount: float, now: float) -> float:
        """Takes `amount` tokens; the seconds to wait until the bucket is out of debt."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= amount
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


class RateLimit:
    """`take(rows, bytes)` before (or after) sending a block: it returns once the block fits the
    limits, at once when they are None, and False if `stop` was set while it waited."""

    def __init__(self, rows_per_second: float | None, bytes_per_second: float | None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], object] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.clock = clock
        self.stop = stop
        self.sleep: Callable[[float], object] = sleep or (stop.wait if stop is not None else time.sleep)
        now = clock()
        self._rows = _Bucket(rows_per_second, now) if rows_per_second is not None else None
        self._bytes = _Bucket(bytes_per_second, now) if bytes_per_second is not None else None
        self.waited = 0.0  # seconds spent waiting, in all

    def take(self, rows: int, size: int) -> bool:
        if self._rows is None and self._bytes is None:
            return True
        now = self.clock()
        wait = max(self._rows.spend(rows, now) if self._rows is not None else 0.0,
                   self._bytes.spend(size, now) if self._bytes is not None else 0.0)
        if wait <= 0:
            return True
        if self.stop is not None and self.stop.is_set():
            return False
        self.sleep(wait)
        self.waited += self.clock() - now
        return self.stop is None or not self.stop.is_set()

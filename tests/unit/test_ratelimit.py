"""The rate limit: long-run rates, both limits at once, blocks larger than a second's budget, stops."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvkafka_worker.ratelimit import RateLimit, Rates, per_shard


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def limited(rows: float | None, size: float | None, clock: FakeClock) -> RateLimit:
    return RateLimit(rows, size, clock=clock, sleep=clock.sleep)


def send(limit: RateLimit, clock: FakeClock, blocks: int, rows: int, size: int, work: float = 0.0) -> float:
    """Sends `blocks` blocks (each taking `work` seconds to send); the elapsed fake time."""
    start = clock.now
    for _ in range(blocks):
        assert limit.take(rows, size)
        clock.now += work
    return clock.now - start


@given(rate=st.floats(10, 1e6), share=st.floats(0.05, 5), work=st.floats(0, 0.01))
def test_the_long_run_row_rate_is_within_one_percent_of_the_limit(rate: float, share: float, work: float) -> None:
    clock = FakeClock()
    limit = limited(rate, None, clock)
    rows = max(1, int(rate * share))  # blocks of 0.05 s to 5 s of budget
    blocks = max(200, int(rate * 200 / rows))  # at least 200 s of budget in all
    elapsed = send(limit, clock, blocks, rows, 0, work)
    achieved = blocks * rows / elapsed
    assert achieved <= rate * 1.01
    # Slower only when the work itself is slower than the limit.
    assert achieved >= min(rate, rows / work if work else rate) * 0.99


def test_the_tighter_of_two_limits_sets_the_pace() -> None:
    clock = FakeClock()
    limit = limited(1000, 1_000_000, clock)  # rows allow 1000/s, bytes allow 10_000 rows/s at 100 B
    elapsed = send(limit, clock, 2000, 100, 10_000)
    assert 200_000 / elapsed == pytest.approx(1000, rel=0.01)
    clock = FakeClock()
    limit = limited(1000, 1_000_000, clock)  # bytes allow 100 rows/s at 10 kB
    elapsed = send(limit, clock, 2000, 10, 100_000)
    assert 200_000_000 / elapsed == pytest.approx(1_000_000, rel=0.01)


def test_a_block_larger_than_a_seconds_budget_is_paid_for_by_a_wait() -> None:
    clock = FakeClock()
    limit = limited(None, 1000, clock)
    assert limit.take(1, 10_000)  # the full bucket (1 s) pays 1000, 9 s of debt remain
    assert clock.slept == [pytest.approx(9.0)]
    assert limit.take(1, 10_000)  # empty bucket: 10 s more
    assert clock.slept[-1] == pytest.approx(10.0)
    elapsed = send(limit, clock, 100, 1, 50_000)
    assert 5_000_000 / elapsed == pytest.approx(1000, rel=0.01)


def test_a_burst_is_at_most_one_second_after_an_idle_time() -> None:
    clock = FakeClock()
    limit = limited(100, None, clock)
    clock.now += 3600  # idle for an hour: the bucket still holds one second's worth
    assert limit.take(100, 0)
    assert clock.slept == []
    assert limit.take(100, 0)
    assert clock.slept == [pytest.approx(1.0)]


def test_no_limit_never_waits() -> None:
    clock = FakeClock()
    limit = limited(None, None, clock)
    assert send(limit, clock, 1000, 10**9, 10**12) == 0
    assert clock.slept == [] and limit.waited == 0


def test_a_stop_ends_a_wait_at_once() -> None:
    stop = threading.Event()
    limit = RateLimit(1, None, stop=stop)
    assert limit.take(1, 0)  # within the burst
    waiter = threading.Timer(0.1, stop.set)
    waiter.start()
    assert not limit.take(3600, 0)  # an hour's debt, ended by the stop
    assert limit.waited < 5
    assert not limit.take(1, 0)  # stopped: no more waiting


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimit(0, None)


@pytest.mark.parametrize(("limit", "shards", "expected"), [
    (None, 4, Rates()),
    (Rates(1000, None), 4, Rates(250, None)),
    (Rates(None, 3e6), 3, Rates(None, 1e6)),
    (Rates(10, 100), 1, Rates(10, 100)),
])
def test_each_shard_gets_an_even_share(limit: Rates | None, shards: int, expected: Rates) -> None:
    assert per_shard(limit, shards) == expected
    assert per_shard(limit, shards).unlimited is (limit is None)


def test_per_shard_takes_the_spec_model() -> None:
    from csvkafka_worker.spec import RateLimitSpec

    spec = RateLimitSpec.model_validate({"rowsPerSecond": 900})
    assert per_shard(spec, 3) == Rates(300, None)
    with pytest.raises(ValueError, match="at least 1"):
        per_shard(spec, 0)

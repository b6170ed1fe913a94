"""Shard planning: every shard starts and ends on a true record boundary, for every dialect (quoted
newlines, escapes, stray quotes), on both engines, wherever the nominal cuts fall."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvkafka_worker import records
from csvkafka_worker.checkpoint import Checkpoint, shard_job_id
from csvkafka_worker.engine import Engine, first_boundary
from csvkafka_worker.errors import BadInput, Infrastructure, Reason
from csvkafka_worker.records import Dialect, State
from csvkafka_worker.shards import (
    IDENTITY,
    ShardPlanner,
    ShardRange,
    check_shardable,
    compose,
    nominal_bounds,
    state_after,
    with_lookahead,
)
from tests.unit.csv_engines import (
    DIALECTS,
    ENGINE_PARAMS,
    csv_bytes,
    csv_rows,
    make_engine,
    parse_alone,
    reference_record_ends,
    reference_states,
)

HEADER = b"id,text\n"
# Quoted newlines everywhere, so that nominal cuts land inside quoted fields.
BODY = b"".join(b'%d,"line\nbreak ""%d""\n\n"\n' % (i, i) if i % 2 else b"%d,plain\n" % i for i in range(200))
ESC = Dialect(escape=ord("\\"))
DATASETS = {
    "quoted-newlines": (Dialect(), HEADER + BODY),
    # Escaped quotes and line breaks, quoted and not; a doubled quote is two quotes here.
    "escapes": (ESC, HEADER + b"".join(
        b'%d,"say \\"hi\\",\nthere"\n%d,y\\\nz\\,\n%d,\\"not quoted\n%d,"a""b\n"\n' % (i, i, i, i) for i in range(60))),
    # Quotes inside unquoted fields are data; quoted fields hold quotes and line breaks.
    "stray-quotes": (Dialect(), b"id,size\n" + b"".join(b'%d,5" screen\n%d,"x\n""y"""\n%d,a"\n' % (i, i, i)
                                                         for i in range(80))),
    # CRLF terminators, CRLF inside quotes, another delimiter and quote.
    "crlf": (Dialect(ord(";"), ord("'")), b"id;text\r\n" + b"".join(
        b"%d;'a\r\nb;c'\r\n%d;plain\r\n\r\n" % (i, i) for i in range(80))),
}


class FakeShards:
    """Shards sharing a checkpoint table in memory, run one after another as if concurrently."""

    def __init__(self, data: bytes, count: int, engine: Engine, chunk: int = 7) -> None:
        self.data = data
        self.count = count
        self.engine = engine
        self.chunk = chunk  # tiny chunks: boundaries fall anywhere
        self.items: dict[str, Checkpoint] = {}
        self.published: list[int] = []
        self.now = 0.0
        self.heartbeats = 0
        self.while_asleep: Callable[[], object] = lambda: None  # what other shards do meanwhile

    def read(self, start: int, end: int) -> Iterator[bytes]:
        for at in range(start, min(end, len(self.data)), self.chunk):
            yield self.data[at:min(at + self.chunk, end)]

    def planner(self, index: int, timeout: float = 0) -> ShardPlanner:
        job = shard_job_id("job", index, self.count)

        def publish(transfer: str) -> None:
            self.published.append(index)
            self.items[job] = Checkpoint(job_id=job, plan_transfer=transfer, source_etag="e")

        def heartbeat() -> None:
            self.heartbeats += 1

        def sleep(seconds: float) -> None:
            self.now += seconds
            self.while_asleep()

        return ShardPlanner(
            base_job_id="job", index=index, count=self.count, transfer=self.engine.transfer,
            first_boundary=lambda chunks, state, remaining: first_boundary(self.engine, chunks, state, remaining,
                                                                           1 << 20),
            read=self.read, load=self.items.get, publish=publish, heartbeat=heartbeat, timeout=timeout,
            clock=lambda: self.now, sleep=sleep)

    def plan_all(self, data_start: int) -> list[ShardRange]:
        # In index order each shard finds the transfers it waits for already published.
        return [self.planner(i).plan(data_start, len(self.data), Checkpoint(job_id="x", source_etag="e"))
                for i in range(self.count)]


def check_partition(d: Dialect, data: bytes, data_start: int, ranges: list[ShardRange]) -> None:
    """The ranges cut [data_start, len) on record boundaries, each at the first one at or after its
    nominal cut, and hold together every record, in order."""
    ends = [data_start] + [data_start + e for e in reference_record_ends(d, data[data_start:])]
    bounds = nominal_bounds(data_start, len(data), len(ranges))
    assert [r.start for r in ranges] == [min(e for e in ends if e >= b) for b in bounds[:-1]]
    assert ranges[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    pieces = [data[r.start:r.end] for r in ranges]
    rows = [row for piece in pieces
            for a, b in itertools.pairwise([0, *reference_record_ends(d, piece)])
            if (row := parse_alone(piece[a:b], d))]
    body = data[data_start:].decode("utf-8", "surrogateescape")
    assert rows == [row for row in csv_rows(body, d) if row]


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("count", [2, 3, 7, 16])
def test_shards_partition_the_records_exactly(name: str, dataset: str, count: int) -> None:
    d, data = DATASETS[dataset]
    data_start = data.index(b"\n") + 1
    shards = FakeShards(data, count, make_engine(name, d))
    ranges = shards.plan_all(data_start)
    assert ranges[0].start == data_start
    check_partition(d, data, data_start, ranges)
    assert shards.published == list(range(count))


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_a_nominal_cut_between_cr_and_lf_moves_to_the_end_of_the_line(name: str) -> None:
    d, data = DATASETS["crlf"]
    data_start = data.index(b"\n") + 1
    counts = [c for c in range(2, 40)
              if any(data[p - 1:p + 1] == b"\r\n" for p in nominal_bounds(data_start, len(data), c)[1:-1])]
    assert counts, "no shard count puts a nominal cut between a \\r and its \\n"
    for count in counts[:5]:
        for chunk in (1, 7):
            ranges = FakeShards(data, count, make_engine(name, d), chunk).plan_all(data_start)
            check_partition(d, data, data_start, ranges)
            assert all(data[r.start - 1:r.start] == b"\n" for r in ranges)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=DIALECTS, data=st.data())
def test_generated_objects_split_on_record_boundaries(name: str, d: Dialect, data: st.DataObject) -> None:
    body = data.draw(csv_bytes(d, max_pieces=60, bad_bytes=True))
    ends = [0, *reference_record_ends(d, body)]
    data_start = data.draw(st.sampled_from(ends[:-1] or [0]))  # the data rows begin on a record boundary
    count = data.draw(st.integers(2, 6))
    chunk = data.draw(st.integers(1, 9))
    ranges = FakeShards(body, count, make_engine(name, d), chunk).plan_all(data_start)
    check_partition(d, body, data_start, ranges)


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_the_transfer_of_a_range_read_in_pieces_is_the_transfer_of_the_range(name: str) -> None:
    d, data = DATASETS["crlf"]
    engine = make_engine(name, d)
    start = data.index(b"\n") + 1
    for end in [p + 1 for p in range(start, len(data) - 1) if data[p:p + 2] == b"\r\n"][:20]:  # between \r and \n
        for chunk in (1, 2, 5):
            published = FakeShards(data, 2, engine, chunk).planner(0).range_transfer(start, end, len(data))
            assert published == engine.transfer(data[start:end + 1], end - start)
            # The \r's line ends after its \n, in the next range.
            assert state_after([published]) is reference_states(d, data[start:end + 1])[end - start]
            assert state_after([published]) in (State.EAT_CRNL, State.IN_QUOTED_FIELD)


def test_nominal_bounds_cover_the_data_exactly() -> None:
    assert nominal_bounds(8, 108, 4) == [8, 33, 58, 83, 108]
    assert nominal_bounds(8, 11, 4) == [8, 8, 9, 10, 11]
    assert nominal_bounds(20, 10, 2) == [20, 20, 20]


def test_transfers_compose_from_the_identity() -> None:
    d = Dialect()
    quote = "".join(str(int(s)) for s in records.transfer(d, b'"', 1))
    newline = "".join(str(int(s)) for s in records.transfer(d, b"\n", 1))
    assert IDENTITY == "012345678"
    assert compose(IDENTITY, quote) == quote == compose(quote, IDENTITY)
    assert state_after([]) is State.START_RECORD
    assert state_after([quote]) is State.IN_QUOTED_FIELD
    assert state_after([quote, newline]) is State.IN_QUOTED_FIELD  # a line break inside quotes
    assert state_after([quote, quote, newline]) is State.START_RECORD  # "" closes and ends the record
    assert state_after([newline, quote, newline, quote]) is State.QUOTE_IN_QUOTED_FIELD


def test_each_chunk_comes_with_the_first_byte_of_the_next() -> None:
    assert list(with_lookahead(iter([b"ab", b"", b"cd", b"e"]))) == [(b"ab", b"c"), (b"cd", b"e"), (b"e", b"")]
    assert list(with_lookahead(iter([]))) == []


@pytest.mark.parametrize("name", ENGINE_PARAMS)
def test_first_boundary_from_a_state(name: str) -> None:
    engine = make_engine(name)
    assert first_boundary(engine, iter([b'a\n"b\nc"\nd\n']), State.START_FIELD, 11, 1 << 20) == 2
    # Inside quotes: the first newline is data.
    assert first_boundary(engine, iter([b'x\n', b'"\nd\n']), State.IN_QUOTED_FIELD, 6, 1 << 20) == 4
    # Between \r and \n: the \n ends the line.
    assert first_boundary(engine, iter([b"\n", b"a\n"]), State.EAT_CRNL, 3, 1 << 20) == 1
    # No record ends before the data does: the rest is the last record.
    assert first_boundary(engine, iter([b"no newline"]), State.IN_FIELD, 10, 1 << 20) == 10
    assert first_boundary(engine, iter([]), State.IN_QUOTED_FIELD, 0, 1 << 20) == 0
    with pytest.raises(records.RecordTooLarge) as raised:
        first_boundary(engine, iter([b"x" * 10, b"y" * 10]), State.IN_QUOTED_FIELD, 20, 8)
    assert raised.value.offset == 0


def test_a_shard_waiting_for_missing_transfers_says_which() -> None:
    shards = FakeShards(DATASETS["quoted-newlines"][1], 3, make_engine("python"))
    planner = shards.planner(2, timeout=5)
    with pytest.raises(Infrastructure, match=r"shards \[0, 1\] of job 'job' did not publish") as raised:
        planner.plan(len(HEADER), len(shards.data), Checkpoint(job_id="x", source_etag="e"))
    assert raised.value.reason is Reason.SHARDS_NOT_RUNNING
    assert shards.published == [2]
    assert shards.heartbeats == 11 and shards.now == 5.5  # polled every 0.5 s until the timeout


def test_a_transfer_of_another_version_of_the_object_is_not_used() -> None:
    shards = FakeShards(DATASETS["quoted-newlines"][1], 2, make_engine("python"))
    shards.planner(0).plan(len(HEADER), len(shards.data), Checkpoint(job_id="x", source_etag="e"))
    stale = shards.items[shard_job_id("job", 0, 2)]
    shards.items[stale.job_id] = stale.advanced(source_etag="old")
    with pytest.raises(Infrastructure, match=r"shards \[0\]"):
        shards.planner(1).plan(len(HEADER), len(shards.data), Checkpoint(job_id="x", source_etag="e"))


def test_a_shard_waits_for_the_shards_before_it_and_does_not_publish_twice() -> None:
    data = DATASETS["quoted-newlines"][1]
    expected = FakeShards(data, 2, make_engine("python")).plan_all(len(HEADER))
    shards = FakeShards(data, 2, make_engine("python"))
    fresh = Checkpoint(job_id="x", source_etag="e")

    def shard_0_runs_after_2_seconds() -> None:
        if shards.now >= 2 and 0 not in shards.published:
            assert shards.planner(0).plan(len(HEADER), len(data), fresh) == expected[0]

    shards.while_asleep = shard_0_runs_after_2_seconds
    assert shards.planner(1, timeout=60).plan(len(HEADER), len(data), fresh) == expected[1]
    assert shards.published == [1, 0] and shards.heartbeats == 4
    # A restarted shard that published already does not publish again.
    own = shards.items[shard_job_id("job", 1, 2)]
    assert shards.planner(1).plan(len(HEADER), len(data), own) == expected[1]
    assert shards.published == [1, 0]


def test_compressed_objects_are_not_split() -> None:
    check_shardable(1, True)
    check_shardable(4, False)
    with pytest.raises(BadInput, match="compressed object cannot be split") as raised:
        check_shardable(2, True)
    assert raised.value.reason is Reason.INVALID_CONFIGURATION

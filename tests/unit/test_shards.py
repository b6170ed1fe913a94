"""Shard planning: every shard starts and ends on a true record boundary, even inside quoted newlines."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator

import pytest

from csvkafka_worker.checkpoint import Checkpoint, shard_job_id
from csvkafka_worker.errors import BadInput
from csvkafka_worker.records import split_records
from csvkafka_worker.shards import ShardPlanner, check_shardable, first_boundary, nominal_bounds

HEADER = b"id,text\n"
# Quoted newlines everywhere, so that nominal cuts land inside quoted fields.
BODY = b"".join(b'%d,"line\nbreak ""%d""\n\n"\n' % (i, i) if i % 2 else b"%d,plain\n" % i for i in range(200))
DATA = HEADER + BODY


def test_nominal_bounds_cover_the_data_exactly() -> None:
    assert nominal_bounds(8, 108, 4) == [8, 33, 58, 83, 108]


def test_first_boundary_honours_parity() -> None:
    assert first_boundary(iter([b'a\n"b\nc"\nd\n']), 0, b'"') == 2
    assert first_boundary(iter([b'x\n"\nd\n']), 1, b'"') == 4  # starts inside quotes: the first newline is data
    assert first_boundary(iter([b'no newline']), 0, b'"') is None


class FakeShards:
    """Shards sharing a checkpoint table in memory, run one after another as if concurrently."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.items: dict[str, Checkpoint] = {}

    def read(self, start: int, end: int) -> Iterator[bytes]:
        for at in range(start, min(end, len(DATA)), 7):  # tiny chunks: boundaries fall anywhere
            yield DATA[at:min(at + 7, end)]

    def planner(self, index: int) -> ShardPlanner:
        job = shard_job_id("job", index, self.count)

        def publish(quotes: int) -> None:
            self.items[job] = Checkpoint(job_id=job, plan_quotes=quotes, source_etag="e")

        return ShardPlanner(base_job_id="job", index=index, count=self.count, quote=b'"', read=self.read,
                            load=self.items.get, publish=publish, heartbeat=lambda: None, timeout=0)


@pytest.mark.parametrize("count", [2, 3, 7, 16])
def test_shards_partition_the_records_exactly(count: int) -> None:
    shards = FakeShards(count)
    # In index order each shard finds the counts it waits for already published.
    ranges = [shards.planner(i).plan(len(HEADER), len(DATA), Checkpoint(job_id="x", source_etag="e"))
              for i in range(count)]
    assert ranges[0].start == len(HEADER) and ranges[-1].end == len(DATA)
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    rows = [r for span in ranges for r in split_records(DATA[span.start:span.end]) if r]
    expected = [row for row in csv.reader(io.StringIO(BODY.decode(), newline="")) if row]
    assert [next(csv.reader(io.StringIO(r.decode(), newline=""))) for r in rows] == expected


def test_a_shard_waiting_for_missing_counts_says_which() -> None:
    shards = FakeShards(3)
    planner = shards.planner(2)
    with pytest.raises(Exception, match=r"shards \[0, 1\] of job 'job' did not publish"):
        planner.plan(len(HEADER), len(DATA), Checkpoint(job_id="x", source_etag="e"))


def test_compressed_or_escaped_objects_are_not_split() -> None:
    check_shardable(1, True, "\\")
    with pytest.raises(BadInput, match="compressed object cannot be split"):
        check_shardable(2, True, None)
    with pytest.raises(BadInput, match="escape character"):
        check_shardable(2, False, "\\")

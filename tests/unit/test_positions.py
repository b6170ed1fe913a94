"""The exactly-once positions record and mark: what a restarted worker resumes from, and where it reads."""

from __future__ import annotations

import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csvkafka_worker.positions import Mark, PositionRecord, partition_for
from csvkafka_worker.watermark import Counts, Position

counts = st.builds(Counts, sent=st.integers(0, 2**53), dead_lettered=st.integers(0, 2**40),
                   skipped=st.integers(0, 2**40), checksum=st.integers(0, 2**64 - 1),
                   offsets=st.dictionaries(st.integers(0, 1000),
                                           st.tuples(st.integers(0, 2**62), st.integers(0, 2**62))))


@given(st.builds(PositionRecord, st.builds(Position, st.integers(0, 2**53), st.integers(0, 2**62)), counts,
                 st.none() | st.text(max_size=40)))
def test_a_position_record_round_trips_with_all_its_counts(record: PositionRecord) -> None:
    value = record.encode()
    assert PositionRecord.decode(value) == record
    raw = orjson.loads(value)
    # Flat: what a worker of before the receipt fields reads is still where it looks.
    assert {k: raw[k] for k in ("row", "offset", "sent", "dead_lettered", "skipped", "run_id")} == {
        "row": record.position.row, "offset": record.position.offset, "sent": record.counts.sent,
        "dead_lettered": record.counts.dead_lettered, "skipped": record.counts.skipped, "run_id": record.run_id}
    assert raw["checksum"] == record.counts.checksum


def test_a_record_of_before_the_receipt_fields_reads_with_zero_checksum_and_no_offsets() -> None:
    value = b'{"row": 12, "offset": 345, "sent": 10, "dead_lettered": 1, "skipped": 1, "run_id": "r"}'
    assert PositionRecord.decode(value) == PositionRecord(Position(12, 345), Counts(10, 1, 1, 0, {}), "r")
    assert PositionRecord.decode(b'{"row": 12, "offset": 345}') == PositionRecord(Position(12, 345), Counts(), None)


@given(st.integers(0, 2**31), st.integers(0, 2**62))
def test_a_mark_round_trips_through_its_checkpoint_text(partition: int, offset: int) -> None:
    assert Mark.decode(Mark(partition, offset).encode()) == Mark(partition, offset)


@pytest.mark.parametrize("text", [None, "", "7", "a:b", ":", "3:"])
def test_no_mark_or_an_unreadable_one_means_none(text: str | None) -> None:
    assert Mark.decode(text) is None


@given(st.text(min_size=1), st.integers(1, 1000))
def test_a_jobs_partition_is_librdkafkas_default_one_for_its_key(job_id: str, partitions: int) -> None:
    """CRC-32 of the key modulo the partition count: librdkafka's default partitioner (consistent_random)
    for a keyed record, so records written by key alone land where a start without a mark looks."""
    partition = partition_for(job_id, partitions)
    assert partition == zlib.crc32(job_id.encode()) % partitions
    assert 0 <= partition < partitions


def test_a_one_partition_topic_puts_every_job_in_partition_zero() -> None:
    assert {partition_for(f"job-{i}", 1) for i in range(100)} == {0}
    assert len({partition_for(f"job-{i}", 32) for i in range(1000)}) == 32

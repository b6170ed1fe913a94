"""The exactly-once positions record: what a restarted worker resumes from."""

from __future__ import annotations

import orjson
import pytest

from csvkafka_worker.positions import PositionRecord
from csvkafka_worker.watermark import Counts, Position


@pytest.mark.parametrize("record", [
    PositionRecord(Position(0, 0), Counts(), None),
    PositionRecord(Position(1_000_000, 2**40 + 7), Counts(sent=999_000, dead_lettered=600, skipped=400), "run-7f3a"),
])
def test_a_position_record_round_trips(record: PositionRecord) -> None:
    value = record.encode()
    assert PositionRecord.decode(value) == record
    assert orjson.loads(value) == {"row": record.position.row, "offset": record.position.offset,
                                   "sent": record.counts.sent, "dead_lettered": record.counts.dead_lettered,
                                   "skipped": record.counts.skipped, "run_id": record.run_id}


def test_a_record_without_counts_or_run_reads_as_zero_counts() -> None:
    assert PositionRecord.decode(b'{"row": 12, "offset": 345}') == PositionRecord(Position(12, 345), Counts(), None)

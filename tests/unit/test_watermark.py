"""The delivery watermark never moves past a row Kafka has not acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from hypothesis import given
from hypothesis import strategies as st

from csvkafka_worker.watermark import Counts, DeliveryWatermark, Position, RowAcks


@dataclass
class CountedAcks:
    """Acknowledgements counted elsewhere, as the native core counts them (no per-row callback)."""

    outstanding: int = 0
    failed: list[str] = field(default_factory=list)
    checksum: int = 0
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def failures(self) -> list[str]:
        return self.failed

    def receipt(self) -> Counts:
        return Counts(checksum=self.checksum, offsets=self.offsets)


def test_position_advances_only_over_the_fully_acknowledged_prefix() -> None:
    wm = DeliveryWatermark(Position(0, 10))
    first, second = RowAcks(outstanding=100), RowAcks(outstanding=100)
    wm.open_block(Position(100, 1000), Counts(sent=100), first)
    wm.open_block(Position(200, 2000), Counts(sent=100), second)
    assert wm.in_flight == 2
    for _ in range(100):
        second.ack()
    assert wm.position == Position(0, 10)
    for _ in range(99):
        first.ack()
    assert wm.position == Position(0, 10) and wm.delivered.sent == 0
    first.ack()
    assert wm.position == Position(200, 2000)
    assert wm.delivered.sent == 200 and wm.in_flight == 0


def test_blocks_complete_in_the_order_opened() -> None:
    wm = DeliveryWatermark(Position(5, 50), Counts(sent=5))
    first, second, third = CountedAcks(3), CountedAcks(0), CountedAcks(2)
    wm.open_block(Position(8, 80), Counts(sent=3), first)
    wm.open_block(Position(8, 90), Counts(skipped=1), second)  # nothing to send: only skipped rows
    wm.open_block(Position(10, 100), Counts(sent=2), third)
    assert wm.position == Position(5, 50)
    first.outstanding = 0
    assert wm.position == Position(8, 90) and wm.in_flight == 1
    assert (wm.delivered.sent, wm.delivered.skipped) == (8, 1)
    third.outstanding = 0
    assert wm.position == Position(10, 100) and wm.delivered.sent == 10


def test_a_failed_delivery_holds_the_watermark_and_is_reported() -> None:
    wm = DeliveryWatermark(Position(0, 0), Counts(sent=5))
    acks = RowAcks(outstanding=2)
    wm.open_block(Position(10, 100), Counts(sent=10), acks)
    acks.ack()
    acks.ack("Local: Message timed out")
    assert acks.outstanding == 0
    assert wm.position == Position(0, 0)
    assert wm.failures() == ["Local: Message timed out"]
    assert wm.delivered.sent == 5 and wm.in_flight == 1


def test_failures_of_every_block_in_flight_are_reported() -> None:
    wm = DeliveryWatermark(Position(0, 0))
    wm.open_block(Position(1, 10), Counts(sent=1), CountedAcks(0, ["Broker: Message size too large"]))
    wm.open_block(Position(2, 20), Counts(sent=1), CountedAcks(1, ["Local: Purged in queue", "and 3 more"]))
    assert wm.failures() == ["Broker: Message size too large", "Local: Purged in queue", "and 3 more"]
    assert wm.position == Position(0, 0)


def test_dead_lettered_and_skipped_rows_count_once_delivered() -> None:
    wm = DeliveryWatermark(Position(0, 0))
    acks = RowAcks(outstanding=2)
    wm.open_block(Position(3, 30), Counts(sent=1, dead_lettered=1, skipped=1), acks)
    acks.ack()
    assert wm.delivered == Counts()
    acks.ack()
    assert wm.position == Position(3, 30)
    assert (wm.delivered.sent, wm.delivered.dead_lettered, wm.delivered.skipped) == (1, 1, 1)
    assert wm.position == Position(3, 30) and wm.delivered.sent == 1  # counted once


def test_counts_add_up() -> None:
    total = Counts(1, 2, 3)
    total.add(Counts(10, 20, 30))
    assert total == Counts(sent=11, dead_lettered=22, skipped=33)


def test_checksums_add_mod_2_64_and_offsets_widen_per_partition() -> None:
    total = Counts(sent=2, checksum=2**64 - 5, offsets={0: (10, 20), 1: (5, 5)})
    total.add(Counts(sent=3, checksum=7, offsets={0: (21, 30), 2: (0, 4)}))
    total.add(Counts(offsets={0: (3, 8)}))
    assert total == Counts(sent=5, checksum=2, offsets={0: (3, 30), 1: (5, 5), 2: (0, 4)})


def test_counts_round_trip_through_json() -> None:
    counts = Counts(sent=7, dead_lettered=1, skipped=2, checksum=2**64 - 1, offsets={3: (100, 106), 0: (0, 0)})
    raw = counts.to_json()
    assert raw == {"sent": 7, "dead_lettered": 1, "skipped": 2, "checksum": 2**64 - 1,
                   "offsets": {"0": [0, 0], "3": [100, 106]}}
    assert Counts.from_json(orjson.loads(orjson.dumps(raw))) == counts


def test_counts_written_before_checksums_decode_with_zero_and_no_offsets() -> None:
    assert Counts.from_json({"sent": 4, "dead_lettered": 1}) == Counts(sent=4, dead_lettered=1)
    assert Counts.from_json({}) == Counts()


def _counts() -> st.SearchStrategy[Counts]:
    offsets = st.dictionaries(st.integers(0, 63), st.tuples(st.integers(0, 2**40), st.integers(0, 2**20))
                              .map(lambda pair: (pair[0], pair[0] + pair[1])), max_size=4)
    return st.builds(Counts, sent=st.integers(0, 2**40), dead_lettered=st.integers(0, 2**30),
                     skipped=st.integers(0, 2**30), checksum=st.integers(0, 2**64 - 1), offsets=offsets)


@given(st.lists(_counts(), max_size=6))
def test_merging_counts_matches_a_sum_over_rows(parts: list[Counts]) -> None:
    total = Counts()
    for part in parts:
        total.add(Counts.from_json(orjson.loads(orjson.dumps(part.to_json()))))
    assert total.checksum == sum(part.checksum for part in parts) % 2**64
    assert total.sent == sum(part.sent for part in parts)
    partitions = {p for part in parts for p in part.offsets}
    assert total.offsets == {p: (min(part.offsets[p][0] for part in parts if p in part.offsets),
                                 max(part.offsets[p][1] for part in parts if p in part.offsets))
                             for p in partitions}


def test_a_blocks_checksum_and_offsets_count_once_all_of_it_is_acknowledged() -> None:
    wm = DeliveryWatermark(Position(0, 0), Counts(sent=1, checksum=5, offsets={0: (0, 0)}))
    first, second = RowAcks(outstanding=3, checksum=100), CountedAcks(1, checksum=2**64 - 1, offsets={1: (9, 9)})
    wm.open_block(Position(2, 20), Counts(sent=2, dead_lettered=1), first)
    wm.open_block(Position(3, 30), Counts(sent=1), second)
    first.ack(partition=0, offset=4)
    first.ack(partition=2, offset=7)
    second.outstanding = 0
    assert wm.position == Position(0, 0) and wm.delivered == Counts(sent=1, checksum=5, offsets={0: (0, 0)})
    first.ack()  # the dead letter: no offset of the main topic
    assert wm.position == Position(3, 30)
    assert wm.delivered == Counts(sent=4, dead_lettered=1, checksum=104, offsets={0: (0, 4), 1: (9, 9), 2: (7, 7)})


def test_row_acks_keep_the_first_and_last_offset_of_each_partition() -> None:
    acks = RowAcks(outstanding=6)
    for partition, offset in [(0, 11), (1, 3), (0, 10), (0, 12), (1, 2)]:
        acks.ack(partition=partition, offset=offset)
    acks.ack("Local: Message timed out", partition=0, offset=-1)
    assert acks.receipt().offsets == {0: (10, 12), 1: (2, 3)}
    assert acks.failures() == ["Local: Message timed out"]


def test_a_failed_block_adds_no_checksum() -> None:
    wm = DeliveryWatermark(Position(0, 0))
    wm.open_block(Position(1, 10), Counts(sent=1), CountedAcks(0, ["Broker: Message size too large"], checksum=9))
    assert wm.position == Position(0, 0) and wm.delivered == Counts()

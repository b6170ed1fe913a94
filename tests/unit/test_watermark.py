"""The delivery watermark never moves past a row Kafka has not acknowledged."""

from __future__ import annotations

from csvkafka_worker.watermark import Counts, DeliveryWatermark, Position


def test_position_advances_only_over_the_fully_acknowledged_prefix() -> None:
    wm = DeliveryWatermark(Position(0, 10))
    first = wm.open_block(Position(100, 1000), Counts(sent=100))
    first.outstanding = 100
    second = wm.open_block(Position(200, 2000), Counts(sent=100))
    second.outstanding = 100
    for _ in range(100):
        second.ack()
    assert wm.position == Position(0, 10)
    for _ in range(99):
        first.ack()
    assert wm.position == Position(0, 10)
    first.ack()
    assert wm.position == Position(200, 2000)
    assert wm.delivered.sent == 200 and wm.in_flight == 0


def test_a_failed_delivery_holds_the_watermark_and_is_reported() -> None:
    wm = DeliveryWatermark(Position(0, 0), Counts(sent=5))
    block = wm.open_block(Position(10, 100), Counts(sent=10))
    block.outstanding = 2
    block.ack()
    block.ack("Local: Message timed out")
    assert wm.position == Position(0, 0)
    assert wm.failures() == ["Local: Message timed out"]
    assert wm.delivered.sent == 5


def test_dead_lettered_and_skipped_rows_count_once_delivered() -> None:
    wm = DeliveryWatermark(Position(0, 0))
    block = wm.open_block(Position(3, 30), Counts(sent=1, dead_lettered=1, skipped=1))
    block.outstanding = 2
    block.ack()
    block.ack()
    assert wm.position == Position(3, 30)
    assert (wm.delivered.sent, wm.delivered.dead_lettered, wm.delivered.skipped) == (1, 1, 1)

"""The DynamoDB item keeps the seed's attributes and reads a seed-format item written by hand."""

from __future__ import annotations

from csvkafka_worker.checkpoint import Checkpoint, State, from_item, shard_job_id, to_item


def test_seed_format_item_reads_with_no_byte_offset() -> None:
    item = {"job_id": {"S": "csv-job-1"}, "last_line": {"N": "50000"}, "total_sent": {"N": "50000"},
            "timestamp": {"N": "1705420800"}}
    cp = from_item(item)
    assert (cp.job_id, cp.last_line, cp.total_sent, cp.byte_offset) == ("csv-job-1", 50000, 50000, None)
    assert cp.state is State.RUNNING


def test_round_trip_keeps_every_field() -> None:
    cp = Checkpoint(job_id="j", last_line=7, total_sent=5, timestamp=3, byte_offset=120, rows_dead_lettered=1,
                    rows_skipped=1, bytes_total=999, source_uri="s3://b/k", source_etag="e", state=State.COMPLETED,
                    message="m", reason="BadInput", rows_per_second=12.5, started_at=1, run_id="r", owner="o",
                    lease_expires=4.25)
    item = to_item(cp)
    assert {k: item[k] for k in ("job_id", "last_line", "total_sent", "timestamp")} == {
        "job_id": {"S": "j"}, "last_line": {"N": "7"}, "total_sent": {"N": "5"}, "timestamp": {"N": "3"}}
    assert from_item(item) == cp


def test_shards_have_their_own_keys() -> None:
    assert shard_job_id("job", 0, 1) == "job"
    assert {shard_job_id("job", i, 3) for i in range(3)} == {"job#0/3", "job#1/3", "job#2/3"}


def test_the_value_checksum_keeps_all_64_bits_and_offsets_stay_json() -> None:
    cp = Checkpoint(job_id="j", total_sent=3, value_checksum=2**64 - 1, partition_offsets='{"0": [0, 1], "2": [5, 5]}')
    item = to_item(cp)
    assert item["value_checksum"] == {"N": "18446744073709551615"}
    assert item["partition_offsets"] == {"S": '{"0": [0, 1], "2": [5, 5]}'}
    assert from_item(item) == cp
    assert from_item({"job_id": {"S": "j"}}).value_checksum is None  # an item written before it existed

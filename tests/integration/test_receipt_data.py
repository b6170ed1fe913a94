"""Receipt data against a real broker: what each engine reports once Kafka acknowledged its blocks (the
sum of crc32 of the values sent to the main topic, and per partition the first and last offset) equals
what a consumer reads back, and both engines report the same for the same CSV."""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from csvkafka_worker.checkpoint import from_item
from csvkafka_worker.engine import Engine, SendPlan
from csvkafka_worker.watermark import Counts, DeliveryWatermark, Position, offsets_from_json
from tests.support import run_worker, worker_args
from tests.unit.csv_engines import NATIVE, NATIVE_MISSING, make_engine

pytestmark = pytest.mark.integration

HEADER = ("id", "name", "comment", "amount")
PARTITIONS = 3
DEAD_LETTER_OFFSET = 5000
WORDS = ["plain", "Smith, John", 'said "hello"', "line one\nline two", "crlf\r\ninside", "élève € 🚀", "", " x "]


def quote(field: str) -> str:
    return '"' + field.replace('"', '""') + '"' if any(c in field for c in ',"\r\n') or not field else field


def generated_csv(seed: int, rows: int) -> bytes:
    """Rows of quoted fields, newlines inside quotes, multibyte text; about one in 50 has a field too many
    (a bad row, dead-lettered)."""
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        fields = [str(i), rng.choice(WORDS), rng.choice(WORDS) * rng.randint(1, 3), str(rng.randint(-99, 99))]
        if rng.randint(0, 49) == 0:
            fields.append("extra")
        lines.append(",".join(map(quote, fields)))
    return ("\n".join(lines) + "\n").encode()


def pieces(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    at = 0
    while at < len(data):
        size = rng.randint(1, 16 * 1024)
        yield data[at:at + size]
        at += size


@pytest.fixture
def topics(bootstrap_servers: str) -> Iterator[Any]:
    """Makes pairs of (main topic of PARTITIONS partitions, dead-letter topic holding DEAD_LETTER_OFFSET
    records already); deletes them at the end."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    made: list[str] = []

    def make() -> tuple[str, str]:
        main, dead = f"receipt-{uuid.uuid4().hex[:10]}", f"receipt-dlt-{uuid.uuid4().hex[:10]}"
        futures = admin.create_topics([NewTopic(main, num_partitions=PARTITIONS, replication_factor=1),
                                       NewTopic(dead, num_partitions=1, replication_factor=1)])
        for future in futures.values():
            future.result(30)
        made.extend([main, dead])
        # Dead letters then get offsets above every row's: counted as rows, they would show.
        producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 20})
        for i in range(DEAD_LETTER_OFFSET):
            producer.produce(dead, b"%d" % i)
            producer.poll(0)
        assert producer.flush(30) == 0
        return main, dead

    yield make
    if made:
        for future in admin.delete_topics(made).values():
            future.result(30)


def import_csv(engine: Engine, bootstrap: str, data: bytes, topic: str, dead_letter_topic: str, *, json: bool,
               key_column: str | None, seed: int, transactional: bool = False) -> tuple[Counts, int]:
    """Sends `data` through the engine as the worker does, block by block under a delivery watermark (in
    one transaction if `transactional`); what the watermark counts once every block is acknowledged, and
    the bad rows dead-lettered."""
    settings, bind = engine.producer_settings()
    transaction = {"transactional.id": uuid.uuid4().hex} if transactional else {}
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **transaction, **settings})
    sender = bind(producer)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    encoder = engine.encoder(HEADER, json=json, key_column=key_column, max_value=900_000)
    scanner = engine.scanner(0, 1 << 20)
    watermark = DeliveryWatermark(Position(0, 0))
    row = bad_rows = 0
    blocks = (scanner.feed(chunk) for chunk in pieces(data, seed))
    for block in [*blocks, scanner.finish()]:
        if block is None:
            continue
        encoded = encoder.encode(block)
        plan = SendPlan(topic=topic, source=b"s3://bucket/receipt.csv", row_headers=True, shard=None,
                        first_row=row + 1, stop=block.count,
                        dead_letters=tuple((bad.index, "a field too many") for bad in encoded.bad),
                        dead_letter_topic=dead_letter_topic, max_message=1_000_000)
        flight = sender.send(encoded, block, plan)
        while not flight.produce(0.002):
            producer.poll(0.005)
        row += block.ordinal(block.count - 1)
        bad_rows += len(encoded.bad)
        counts = Counts(sent=encoded.sendable_before(block.count), dead_lettered=len(encoded.bad))
        watermark.open_block(Position(row, block.start + block.record_end(block.count - 1)), counts, flight)
        producer.poll(0)
    assert producer.flush(60) == 0
    if transactional:
        producer.commit_transaction(30)
    assert watermark.failures() == []
    assert watermark.position == Position(row, len(data)) and watermark.in_flight == 0
    return watermark.delivered, bad_rows


def read_back(bootstrap: str, topic: str) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record of `topic`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    records: list[tuple[int, int, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == -191, message.error()  # _PARTITION_EOF
                at_end.add(message.partition())
                continue
            at_end.discard(message.partition())
            records.append((message.partition(), message.offset(), message.value() or b""))
        assert len(at_end) == PARTITIONS, f"the end of {topic} was not reached"
    finally:
        consumer.close()
    return records


def reference(records: list[tuple[int, int, bytes]]) -> tuple[int, dict[int, tuple[int, int]]]:
    checksum = sum(zlib.crc32(value) for _, _, value in records) % 2**64
    offsets: dict[int, tuple[int, int]] = {}
    for partition in {p for p, _, _ in records}:
        seen = [offset for p, offset, _ in records if p == partition]
        offsets[partition] = (min(seen), max(seen))
    return checksum, offsets


@pytest.mark.parametrize(("json", "key_column", "transactional"),
                         [(True, "id", False), (False, "id", False), (True, None, False), (True, None, True)],
                         ids=["json-keyed", "line-keyed", "json-unkeyed", "json-unkeyed-exactly-once"])
def test_the_reported_checksum_and_offsets_are_what_kafka_holds(engine: str, json: bool, key_column: str | None,
                                                                 transactional: bool, topics: Any,
                                                                 bootstrap_servers: str) -> None:
    data = generated_csv(seed=7, rows=3000)
    topic, dead_letter_topic = topics()
    counts, bad_rows = import_csv(make_engine(engine), bootstrap_servers, data, topic, dead_letter_topic, json=json,
                                  key_column=key_column, seed=11, transactional=transactional)
    records = read_back(bootstrap_servers, topic)
    assert bad_rows > 0 and counts.dead_lettered == bad_rows
    assert counts.sent == len(records) == 3000 - bad_rows
    assert (counts.checksum, counts.offsets) == reference(records)
    assert len(counts.offsets) > 1  # the rows were spread over partitions


def test_both_engines_report_the_same_checksum_and_offsets(topics: Any, bootstrap_servers: str) -> None:
    """Keyed rows land on the same partitions whichever engine sends them: the receipts are equal."""
    data = generated_csv(seed=3, rows=2000)
    reports = []
    for name, seed in (("python", 5), ("native", 6)):  # blocks cut differently too
        topic, dead_letter_topic = topics()
        counts, _ = import_csv(make_engine(name), bootstrap_servers, data, topic, dead_letter_topic, json=True,
                               key_column="id", seed=seed)
        reports.append(counts)
    python, native = reports
    assert native == python
    assert python.checksum != 0 and sum(last - first + 1 for first, last in python.offsets.values()) == python.sent


@pytest.mark.skipif(NATIVE is None, reason=NATIVE_MISSING)
@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_an_imports_checkpoint_holds_the_checksum_and_offsets_of_its_topic(
        delivery: str, topics: Any, s3: Any, s3_bucket: str, checkpoint_table: str, dynamodb: Any,
        bootstrap_servers: str) -> None:
    """The worker, on each engine: its final checkpoint item names what its topic holds, the same either way."""
    s3.put_object(Bucket=s3_bucket, Key="receipt.csv", Body=(",".join(HEADER) + "\n").encode()
                  + generated_csv(seed=9, rows=2000))
    saved = {}
    for engine in ("python", "native"):
        topic, dead_letter_topic = topics()
        job_id = f"receipt-{engine}"
        result = run_worker(worker_args(
            source=f"s3://{s3_bucket}/receipt.csv", bootstrap=bootstrap_servers, topic=topic, table=checkpoint_table,
            job_id=job_id, extra=["--engine", engine, "--key-column", "id", "--delivery", delivery, "--on-bad-row",
                                  "dead-letter", "--dead-letter-topic", dead_letter_topic, "--max-bad-rows", "2000"]))
        assert result.returncode == 0, result.stderr
        cp = from_item(dynamodb.get_item(TableName=checkpoint_table, Key={"job_id": {"S": job_id}},
                                         ConsistentRead=True)["Item"])
        records = read_back(bootstrap_servers, topic)
        assert cp.rows_dead_lettered > 0 and cp.total_sent == len(records) == 2000 - cp.rows_dead_lettered
        assert cp.partition_offsets is not None
        assert (cp.value_checksum, offsets_from_json(orjson.loads(cp.partition_offsets))) == reference(records)
        saved[engine] = (cp.value_checksum, cp.partition_offsets)
    assert saved["python"] == saved["native"]

"""Exactly-once positions: a compacted Kafka topic keyed by job id, written inside each transaction.

The last committed value for a job is where its committed records end, so a restarted worker
resumes exactly there, whatever DynamoDB says (DynamoDB mirrors it after each commit for people
and the operator, and may lag by one commit after a crash).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from csvkafka_worker.errors import Infrastructure, Reason
from csvkafka_worker.kafka_config import client_base
from csvkafka_worker.spec import SinkSpec
from csvkafka_worker.watermark import Counts, Position

DEFAULT_TOPIC = "csvkafka-positions"


@dataclass(frozen=True)
class PositionRecord:
    """Where a job's committed records end, and what they count for: the value of its key in the
    positions topic (a JSON object), written in the same transaction as those records."""

    position: Position
    counts: Counts
    run_id: str | None

    def encode(self) -> bytes:
        return orjson.dumps({"row": self.position.row, "offset": self.position.offset, "sent": self.counts.sent,
                             "dead_lettered": self.counts.dead_lettered, "skipped": self.counts.skipped,
                             "run_id": self.run_id})

    @classmethod
    def decode(cls, value: bytes) -> PositionRecord:
        raw = orjson.loads(value)
        return cls(Position(raw["row"], raw["offset"]),
                   Counts(sent=raw.get("sent", 0), dead_lettered=raw.get("dead_lettered", 0),
                          skipped=raw.get("skipped", 0)), raw.get("run_id"))


def ensure_topic(sink: SinkSpec, topic: str, client_id: str, timeout: float) -> None:
    admin = AdminClient(client_base(sink, client_id))
    if topic in admin.list_topics(timeout=timeout).topics:
        return
    new = NewTopic(topic, num_partitions=1, replication_factor=-1,
                   config={"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"})
    try:
        admin.create_topics([new])[topic].result(timeout)
    except KafkaException as error:
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise Infrastructure(f"cannot create the positions topic {topic!r} for exactly-once delivery "
                                 f"({error}); create it (compacted, 1 partition) or grant CreateTopic",
                                 reason=Reason.KAFKA_UNREACHABLE) from error


def read_committed_position(sink: SinkSpec, topic: str, job_id: str, client_id: str,
                            timeout: float) -> PositionRecord | None:
    consumer = Consumer({**client_base(sink, client_id), "group.id": f"csvkafka-reader-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    try:
        partition = TopicPartition(topic, 0, OFFSET_BEGINNING)
        _, high = consumer.get_watermark_offsets(partition, timeout=timeout)
        consumer.assign([partition])
        found: PositionRecord | None = None
        key = job_id.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                raise Infrastructure(f"reading positions topic {topic}: {error.str()}", reason=Reason.KAFKA_UNREACHABLE)
            value = message.value()
            if message.key() == key and value is not None:
                found = PositionRecord.decode(value)
            if (message.offset() or 0) >= high - 1:
                break
        else:
            raise Infrastructure(f"reading positions topic {topic} did not finish in {timeout}s",
                                 reason=Reason.KAFKA_UNREACHABLE)
    finally:
        consumer.close()
    return found

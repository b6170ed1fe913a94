"""The local stack as the benchmark sees it: environment, S3 uploads, topics, tables, record counts.

Every name is unique per benchmark run, so runs never see each other's data on the shared stack,
and everything created is deleted again unless the caller keeps it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parents[1]


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def stack_env() -> dict[str, str]:
    """`dev/stack env` as a dict, starting the stack first if Kafka or moto is down."""
    stack = str(REPO / "dev" / "stack")
    status = subprocess.run([stack, "status"], capture_output=True, text=True, check=False).stdout
    running = {words[0] for words in map(str.split, status.splitlines()) if words[1:2] == ["running"]}
    if not {"kafka", "moto"} <= running:
        subprocess.run([stack, "up"], check=True, stdout=sys.stderr)
    out = subprocess.run([stack, "env"], capture_output=True, text=True, check=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


class Stack:
    def __init__(self, env: dict[str, str], partitions: int) -> None:
        import boto3

        os.environ.update(env)
        self.env = {**os.environ}
        self.bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.partitions = partitions
        self.s3: Any = boto3.client("s3")
        self.dynamodb: Any = boto3.client("dynamodb")
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        self.bucket = unique("bucket")
        self.table = unique("checkpoints")
        self.s3.create_bucket(Bucket=self.bucket)
        self.dynamodb.create_table(
            TableName=self.table, KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        self._keys: list[str] = []

    # -- S3 --------------------------------------------------------------------------------------

    def upload(self, path: Path) -> tuple[str, str]:
        """Uploads `path` (multipart above 64 MiB); returns its s3:// URI and ETag."""
        from boto3.s3.transfer import TransferConfig

        key = path.name
        if key not in self._keys:
            config = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024,
                                    max_concurrency=4)
            self.s3.upload_file(str(path), self.bucket, key, Config=config)
            self._keys.append(key)
        etag = str(self.s3.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')
        return f"s3://{self.bucket}/{key}", etag

    def delete_object(self, uri: str) -> None:
        key = uri.removeprefix(f"s3://{self.bucket}/")
        self.s3.delete_object(Bucket=self.bucket, Key=key)
        if key in self._keys:
            self._keys.remove(key)

    # -- Kafka -----------------------------------------------------------------------------------

    def create_topic(self, prefix: str) -> str:
        """A new topic, returned once every partition has a leader (so offsets can be asked at once)."""
        name = unique(prefix)
        self.admin.create_topics([NewTopic(name, num_partitions=self.partitions, replication_factor=1)])[name] \
            .result(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self.admin.list_topics(name, timeout=10).topics.get(name)
            if found is not None and found.error is None and len(found.partitions) == self.partitions \
                    and all(p.leader >= 0 and p.error is None for p in found.partitions.values()):
                return name
            time.sleep(0.1)
        raise TimeoutError(f"topic {name} has no leader for every partition after 30 s")

    def delete_topic(self, name: str) -> None:
        self.admin.delete_topics([name])[name].result(60)

    def _partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    def high_watermark(self, consumer: Consumer, topic: str) -> int:
        """Sum of the partitions' high watermarks: records appended, committed or not (0 while the
        broker cannot say, e.g. during a leader change)."""
        try:
            return sum(consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                       for tp in self._partitions(topic))
        except KafkaException:
            return 0

    def watermark_consumer(self) -> Consumer:
        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("watch")})

    def count_records(self, topic: str, *, transactional: bool) -> int:
        """Records a `read_committed` consumer sees in `topic`.

        Without transactions the offsets say it exactly. With them, each commit also appends a
        control marker per partition that takes an offset but is no record, so the records are read.
        """
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("count"),
                             "isolation.level": "read_committed", "enable.partition.eof": True,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024})
        try:
            if not transactional:
                total = 0
                for tp in self._partitions(topic):
                    low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                    total += high - low
                return total
            return _consume_count(consumer, self._partitions(topic))
        finally:
            consumer.close()

    # -- DynamoDB --------------------------------------------------------------------------------

    def put_checkpoint(self, item: dict[str, dict[str, str]]) -> None:
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def close(self, *, keep: bool) -> None:
        if keep:
            return
        for key in list(self._keys):
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        self.s3.delete_bucket(Bucket=self.bucket)
        self.dynamodb.delete_table(TableName=self.table)


def _consume_count(consumer: Consumer, partitions: list[TopicPartition]) -> int:
    for tp in partitions:
        tp.offset = 0
    consumer.assign(partitions)
    open_partitions = {tp.partition for tp in partitions}
    total = 0
    quiet_since = time.monotonic()
    while open_partitions:
        batch = consumer.consume(num_messages=10_000, timeout=1.0)
        if not batch and time.monotonic() - quiet_since > 30:
            raise TimeoutError(f"counting stalled with partitions {sorted(open_partitions)} not at their end")
        for message in batch:
            error = message.error()
            if error is None:
                total += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(message.partition() or 0)
            else:
                raise RuntimeError(f"counting records: {error.str()}")
        if batch:
            quiet_since = time.monotonic()
    return total

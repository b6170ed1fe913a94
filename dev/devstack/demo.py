"""The demo: a generated CSV in S3 imported into a Kafka topic, then counted.

It runs through the operator when the CsvKafkaImport CRD is installed (`kubectl apply -f
examples/import.yaml`, `kubectl wait`), else (or with --direct) with the worker itself (`csvkafka run`).
"""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from devstack.layout import REPO

BUCKET = "csvkafka-demo"
KEY = "exports/data.csv"
TOPIC = "csv-import"
TABLE = "csv-kafka-checkpoint"
ROWS = 100_000


def sample_csv(rows: int) -> bytes:
    lines = [b"order_id,customer,city,amount,note\n"]
    cities = [b"Berlin", b'"Washington, D.C."', b"S\xc3\xa3o Paulo", b"Tokyo"]
    for i in range(1, rows + 1):
        note = b'"gift, wrapped"' if i % 7 == 0 else (b'"two\nlines"' if i % 1000 == 0 else b"")
        lines.append(b"%d,customer-%d,%s,%d.%02d,%s\n" % (i, i % 977, cities[i % 4], i % 500, i % 100, note))
    return b"".join(lines)


def prepare() -> None:
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample_csv(ROWS))
    print(f"uploaded s3://{BUCKET}/{KEY} ({ROWS:,} rows)")
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    admin.delete_topics([TOPIC])  # the demo always starts from an empty topic
    admin.poll(3)
    for _ in range(20):
        try:
            admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(30)
            break
        except Exception as error:  # the deletion may still be in progress
            if "already exists" not in str(error).lower() and "marked for deletion" not in str(error).lower():
                raise
            admin.poll(1)
    try:
        dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=TABLE, Key={"job_id": item["job_id"]})


class DemoFailed(RuntimeError):
    pass


def run(argv: list[str]) -> None:
    print("$ " + " ".join(argv), flush=True)
    if subprocess.run(argv, check=False).returncode != 0:
        raise DemoFailed(f"`{' '.join(argv)}` failed; `kubectl describe csvimport csv-import` and "
                         "`kubectl logs -l csvkafka.io/import=csv-import` say why")


def operator_installed() -> bool:
    probe = subprocess.run(["kubectl", "get", "crd", "csvimports.csvkafka.io"], capture_output=True, check=False)
    return probe.returncode == 0


def import_through_operator() -> None:
    example = REPO / "examples" / "import.yaml"
    subprocess.run(["kubectl", "delete", "-f", str(example), "--ignore-not-found", "--wait"], check=True,
                   capture_output=True)
    run(["kubectl", "apply", "-f", str(example)])
    run(["kubectl", "wait", "--for=condition=Succeeded", "-f", str(example), "--timeout=300s"])
    run(["kubectl", "get", "csvimports"])


def import_with_worker() -> None:
    run(["csvkafka", "run", "--source", f"s3://{BUCKET}/{KEY}", "--bootstrap-servers",
         os.environ["KAFKA_BOOTSTRAP_SERVERS"], "--topic", TOPIC, "--checkpoint-table", TABLE, "--job-id",
         "demo", "--progress", "log"])


def topic_record_count() -> int:
    consumer = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "csvkafka-demo"})
    metadata = consumer.list_topics(TOPIC, timeout=10)
    total = 0
    for partition in metadata.topics[TOPIC].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
        total += high - low
    consumer.close()
    return total


def main(argv: list[str]) -> int:
    prepare()
    try:
        if "--direct" not in argv and operator_installed():
            import_through_operator()
        else:
            import_with_worker()
    except DemoFailed as failed:
        print(f"dev/demo: {failed}", file=sys.stderr)
        return 1
    count = topic_record_count()
    print(f"topic {TOPIC}: {count:,} records (expected {ROWS:,})")
    return 0 if count == ROWS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Receipts against the stack: the manifest put into S3 (moto), denied writes behind the IAM gate, and a
receipt produced to and read back from a real Kafka topic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from confluent_kafka import Producer

from csvkafka_worker.errors import BadInput
from csvkafka_worker.receipts import Manifest, Receipt, produce_receipt, write_manifest
from csvkafka_worker.retry import Backoff, Retrier, Service
from tests.iam import REGION, Installation, installed
from tests.support import consume_all

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
RECEIPTS = (Receipt("orders", "initial", "s3://exports/a.csv", "e1", 0, 120, 10, 1, 0, 0xABCDEF, {0: (0, 9)}, AT),
            Receipt("orders", "initial", "s3://exports/b.csv.gz", "e2", 0, 77, 5, 0, 2, 0x12, {0: (10, 14)}, AT))
MANIFEST = Manifest("orders", "orders", "initial", AT, RECEIPTS)


def retrier() -> Retrier:
    return Retrier(Service.S3, Backoff(budget=10))


def test_the_manifest_is_a_readable_json_object_in_s3(s3: Any, s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/manifests/orders/initial.json"
    write_manifest(s3, uri, MANIFEST, retrier())
    stored = s3.get_object(Bucket=s3_bucket, Key="manifests/orders/initial.json")
    assert stored["ContentType"] == "application/json"
    body = stored["Body"].read()
    assert Manifest.decode(body) == MANIFEST
    write_manifest(s3, uri, Manifest("orders", "orders", "initial", AT, RECEIPTS[:1]), retrier())  # overwritten
    assert len(Manifest.decode(s3.get_object(Bucket=s3_bucket, Key="manifests/orders/initial.json")["Body"]
                               .read()).receipts) == 1


def test_a_missing_bucket_is_bad_input_naming_it(s3: Any) -> None:
    with pytest.raises(BadInput, match=r"bucket 'no-such-bucket-csvkafka' does not exist; check receipts\.manifestUri"):
        write_manifest(s3, "s3://no-such-bucket-csvkafka/m.json", MANIFEST, retrier())


@pytest.fixture
def installation(stack_env: dict[str, str], s3: Any, s3_bucket: str, dynamodb: Any) -> Iterator[Installation]:
    yield from installed(stack_env, s3, s3_bucket, dynamodb)


def test_a_denied_write_names_the_bucket_key_and_the_grant(installation: Installation) -> None:
    only_read = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{installation.bucket}/*"]}]}
    env = installation.credentials("worker", only_read)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    with pytest.raises(BadInput) as denied:
        write_manifest(client, f"s3://{installation.bucket}/manifests/m.json", MANIFEST, retrier())
    assert str(denied.value) == (
        f"writing the manifest to bucket {installation.bucket!r}, key 'manifests/m.json' is denied; grant "
        f"s3:PutObject on arn:aws:s3:::{installation.bucket}/manifests/m.json to the worker's role (IRSA), "
        "or change receipts.manifestUri")


def test_a_receipt_is_produced_keyed_by_its_objects_uri(bootstrap_servers: str, kafka_topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for receipt in RECEIPTS:
        produce_receipt(producer, kafka_topic, receipt)
    assert producer.flush(30) == 0
    records = consume_all(bootstrap_servers, kafka_topic)
    assert [(r.key, Receipt.decode(r.value)) for r in records] == [(r.uri.encode(), r) for r in RECEIPTS]

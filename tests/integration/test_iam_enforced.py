"""Imports with IAM enforced: the worker and the operator hold exactly the permissions of the Terraform
roles (rendered from terraform/ for this test's bucket, table and key: tests/iam.py) and call AWS
through the stack's IAM gate, which refuses anything those permissions do not allow, as AWS would.

The checkpoint table is encrypted with a customer managed key, like the module's table, so every
checkpoint read and write also needs the key through DynamoDB.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
from botocore.exceptions import ClientError

from csvkafka_operator.checkpoints import Checkpoints
from csvkafka_worker.exit_codes import ExitCode
from devstack import iamgate
from tests.conftest import unique_name
from tests.iam import REGION, ROWS, Installation, installed, without
from tests.support import consume_all, last_error_line, run_worker, worker_args

pytestmark = pytest.mark.integration

# What a worker's import needs: its object, its checkpoint (the lease is an UpdateItem), the table's key.
IMPORT_ACTIONS = {"s3:GetObject", "dynamodb:UpdateItem", "dynamodb:PutItem", "kms:Decrypt", "kms:DescribeKey",
                  "kms:Encrypt", "kms:GenerateDataKey"}


@pytest.fixture
def installation(stack_env: dict[str, str], s3: Any, s3_bucket: str, dynamodb: Any) -> Iterator[Installation]:
    yield from installed(stack_env, s3, s3_bucket, dynamodb)


def client(service: Literal["s3", "dynamodb"], env: dict[str, str]) -> Any:
    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def import_as(installation: Installation, env: dict[str, str], topic: str, bootstrap: str, job_id: str,
              source: str | None = None) -> Any:
    return run_worker(worker_args(source=source or installation.source, bootstrap=bootstrap, topic=topic,
                                  table=installation.table, job_id=job_id), env=env)


def test_an_import_succeeds_with_exactly_the_terraform_policies(installation: Installation, kafka_topic: str,
                                                                bootstrap_servers: str, dynamodb: Any) -> None:
    worker = installation.credentials("worker")
    result = import_as(installation, worker, kafka_topic, bootstrap_servers, "orders")
    assert result.returncode == 0, result.stderr
    assert sorted(r.row for r in consume_all(bootstrap_servers, kafka_topic)) == list(range(1, ROWS + 1))
    item = dynamodb.get_item(TableName=installation.table, Key={"job_id": {"S": "orders"}}, ConsistentRead=True)
    assert item["Item"]["total_sent"] == {"N": str(ROWS)}

    judged = iamgate.decisions(installation.gate, worker["AWS_ACCESS_KEY_ID"])
    assert {d["decision"] for d in judged} == {"ALLOWED"}
    assert {d["action"] for d in judged} == IMPORT_ACTIONS
    assert {d["resource"] for d in judged if d["action"].startswith("kms:")} == {installation.key_arn}

    # The operator mirrors the checkpoint into the resource's status with its own role.
    operator = installation.credentials("operator")
    assert Checkpoints(client("dynamodb", operator)).read(installation.table, ["orders"])["orders"].total_sent == ROWS
    assert {d["action"] for d in iamgate.decisions(installation.gate, operator["AWS_ACCESS_KEY_ID"])} == {
        "dynamodb:BatchGetItem", "kms:Decrypt", "kms:DescribeKey"}


def test_shards_read_each_others_checkpoints_with_the_worker_role(installation: Installation, kafka_topic: str,
                                                                   bootstrap_servers: str) -> None:
    worker = installation.credentials("worker")
    args = worker_args(source=installation.source, bootstrap=bootstrap_servers, topic=kafka_topic,
                       table=installation.table, job_id="orders", extra=["--shard", "0/2"])
    shards = [subprocess.Popen(args, env={**os.environ, **worker, "JOB_COMPLETION_INDEX": str(index)},
                               stderr=subprocess.PIPE, text=True) for index in range(2)]
    outputs = [shard.communicate(timeout=180)[1] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], outputs
    assert sorted(int(r.json()["id"]) for r in consume_all(bootstrap_servers, kafka_topic)) == list(range(1, ROWS + 1))
    judged = iamgate.decisions(installation.gate, worker["AWS_ACCESS_KEY_ID"])
    assert {d["decision"] for d in judged} == {"ALLOWED"}
    assert {d["action"] for d in judged} == IMPORT_ACTIONS | {"dynamodb:GetItem"}


@pytest.mark.parametrize("action", sorted(IMPORT_ACTIONS))
def test_without_one_action_the_worker_stops_with_one_line_naming_it(
        action: str, installation: Installation, kafka_topic: str, bootstrap_servers: str) -> None:
    worker = installation.credentials("worker", without(installation.documents["worker"], action))
    result = import_as(installation, worker, kafka_topic, bootstrap_servers, unique_name("job"))
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    message = last_error_line(result.stderr)
    assert action in message, message
    assert "\n" not in message


def test_a_missing_object_is_reported_missing_only_to_a_role_that_may_list_the_bucket(
        installation: Installation, kafka_topic: str, bootstrap_servers: str) -> None:
    missing = f"s3://{installation.bucket}/exports/missing.csv"
    listing = import_as(installation, installation.credentials("worker"), kafka_topic, bootstrap_servers,
                        unique_name("job"), source=missing)
    assert listing.returncode == ExitCode.BAD_INPUT
    assert "does not exist" in last_error_line(listing.stderr)
    blind = installation.credentials("worker", without(installation.documents["worker"], "s3:ListBucket"))
    result = import_as(installation, blind, kafka_topic, bootstrap_servers, unique_name("job"), source=missing)
    assert result.returncode == ExitCode.BAD_INPUT
    assert "s3:GetObject" in last_error_line(result.stderr)


def test_the_operator_without_batch_get_item_is_refused_naming_it(installation: Installation) -> None:
    operator = installation.credentials("operator", without(installation.documents["operator"],
                                                             "dynamodb:BatchGetItem"))
    with pytest.raises(ClientError, match="dynamodb:BatchGetItem"):
        Checkpoints(client("dynamodb", operator)).read(installation.table, ["orders"])


def test_the_gate_answers_as_aws_does(installation: Installation) -> None:
    worker = installation.credentials("worker")
    s3 = client("s3", worker)
    assert s3.get_object(Bucket=installation.bucket, Key="exports/orders.csv", Range="bytes=0-6")["Body"].read() == (
        b"id,name")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=installation.bucket, Key="exports/new.csv", Body=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "not authorized to perform: s3:PutObject on resource: " \
           f"arn:aws:s3:::{installation.bucket}/exports/new.csv" in str(denied.value)
    with pytest.raises(ClientError, match="does not judge this call"):
        s3.get_object_acl(Bucket=installation.bucket, Key="exports/orders.csv")
    stranger = {**worker, "AWS_ACCESS_KEY_ID": "AKIANOBODYKNOWSTHIS"}
    with pytest.raises(ClientError) as unknown:
        client("dynamodb", stranger).get_item(TableName=installation.table, Key={"job_id": {"S": "x"}})
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as unknown:
        client("s3", stranger).head_object(Bucket=installation.bucket, Key="exports/orders.csv")
    assert unknown.value.response["Error"]["Code"] == "403"


def test_the_operator_restarts_and_resets_with_its_role(installation: Installation) -> None:
    operator = installation.credentials("operator")
    checkpoints = Checkpoints(client("dynamodb", operator))
    checkpoints.start_at_row(installation.table, "orders", 101, "restart from row 101")
    assert checkpoints.read(installation.table, ["orders"])["orders"].last_line == 100
    checkpoints.delete(installation.table, ["orders"])
    assert checkpoints.read(installation.table, ["orders"]) == {}
    judged = iamgate.decisions(installation.gate, operator["AWS_ACCESS_KEY_ID"])
    assert {d["decision"] for d in judged} == {"ALLOWED"}
    assert {d["action"] for d in judged} == {"dynamodb:PutItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem",
                                             "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"}

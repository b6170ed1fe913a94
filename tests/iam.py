"""What `terraform apply` would have made, in the stack's moto, for tests with IAM enforced: a bucket
with a CSV object, a checkpoint table under a customer managed key, the roles' policies rendered
from terraform/ for them, and credentials that the stack's IAM gate holds to those policies."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from devstack import iamgate
from devstack.terraform import render_for_stack
from tests.conftest import unique_name

ACCOUNT, REGION = "123456789012", "us-east-1"
ROWS = 500
CSV = b"id,name\n" + b"".join(b"%d,name-%d\n" % (i, i) for i in range(1, ROWS + 1))


@dataclass(frozen=True)
class Installation:
    gate: str
    bucket: str
    table: str
    key_arn: str
    documents: dict[str, dict[str, Any]]

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/exports/orders.csv"

    def credentials(self, role: str, policy: dict[str, Any] | None = None) -> dict[str, str]:
        """Environment of a process acting as `role` (worker, operator) with `policy`, its role's by default."""
        access_key = f"AKIA{uuid.uuid4().hex[:16].upper()}"
        principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/csvkafka-{role}/{access_key}"
        iamgate.register(self.gate, access_key, principal, [policy or self.documents[role]])
        return {"AWS_ENDPOINT_URL": self.gate, "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def installed(stack_env: dict[str, str], s3: Any, bucket: str, dynamodb: Any) -> Iterator[Installation]:
    """The body of a fixture: the installation, and its table removed afterwards."""
    key_arn = boto3.client("kms", endpoint_url=stack_env["AWS_ENDPOINT_URL"]).create_key(
        Description="csvkafka: checkpoint table")["KeyMetadata"]["Arn"]
    table = unique_name("checkpoints")
    dynamodb.create_table(TableName=table, KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST",
                          SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn})
    s3.put_object(Bucket=bucket, Key="exports/orders.csv", Body=CSV)
    yield Installation(stack_env["CSVKAFKA_IAM_GATE_URL"], bucket, table, key_arn,
                       render_for_stack(buckets=[bucket], table=table, key_arn=key_arn))
    dynamodb.delete_table(TableName=table)


def without(document: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy with one action taken out of every statement (a statement left with none goes)."""
    trimmed = copy.deepcopy(document)
    for statement in trimmed["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != action]
    trimmed["Statement"] = [s for s in trimmed["Statement"] if s["Action"]]
    assert trimmed != document, f"{action} is not in the policy"
    return trimmed

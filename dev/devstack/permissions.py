"""Which IAM permissions an AWS API call needs: the action, the resource's ARN, the context keys.

Only the services and operations the project calls are mapped (S3 objects and buckets, DynamoDB
items); any other call raises Unmapped, so the gate in front of the stack's AWS endpoint refuses it
with a line that says so instead of letting it through unjudged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from devstack.iam import Request


class Unmapped(Exception):
    pass


# S3 operations by (method, whether the path names an object); what IAM calls each.
S3_ACTIONS = {"HeadObject": "s3:GetObject", "GetObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "DeleteObject": "s3:DeleteObject", "HeadBucket": "s3:ListBucket", "ListObjects": "s3:ListBucket",
              "ListObjectsV2": "s3:ListBucket"}
_S3_OPERATIONS = {("HEAD", True): "HeadObject", ("GET", True): "GetObject", ("PUT", True): "PutObject",
                  ("DELETE", True): "DeleteObject", ("HEAD", False): "HeadBucket", ("GET", False): "ListObjectsV2"}

# DynamoDB item operations; a table under a customer managed key makes each also use the key, with
# the caller's permissions, through DynamoDB (kms:ViaService).
DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
KMS_FOR_READS = ("kms:Decrypt", "kms:DescribeKey")
KMS_FOR_WRITES = (*KMS_FOR_READS, "kms:Encrypt", "kms:GenerateDataKey")


def action_of(service: str, operation: str) -> str:
    """The IAM action of a botocore operation (`s3`, `HeadObject` → `s3:GetObject`)."""
    if service == "s3":
        if operation not in S3_ACTIONS:
            raise Unmapped(f"S3 operation {operation} is not mapped to an IAM action")
        return S3_ACTIONS[operation]
    if service == "dynamodb":
        return f"dynamodb:{operation}"
    raise Unmapped(f"service {service} is not mapped to IAM actions")


@dataclass(frozen=True)
class Call:
    """One HTTP request to the AWS endpoint, as far as IAM cares."""

    service: str
    region: str
    account: str
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def operation(self) -> str:
        if self.service == "dynamodb":
            return self.headers.get("x-amz-target", "").rpartition(".")[2]
        if self.service == "s3":
            bucket, _, key = unquote(self.path).lstrip("/").partition("/")
            if not bucket:
                raise Unmapped("S3 calls that name no bucket are not mapped")
            subresources = set(parse_qs(self.query, keep_blank_values=True)) - {"list-type", "prefix", "delimiter",
                                                                                  "max-keys", "continuation-token",
                                                                                  "start-after", "encoding-type"}
            if subresources - {"partNumber", "versionId", "x-id"}:
                raise Unmapped(f"S3 subresource {sorted(subresources)} is not mapped")
            operation = _S3_OPERATIONS.get((self.method, bool(key)))
            if operation is None:
                raise Unmapped(f"S3 {self.method} {'object' if key else 'bucket'} is not mapped")
            if operation == "ListObjectsV2" and "list-type" not in parse_qs(self.query):
                return "ListObjects"
            return operation
        raise Unmapped(f"service {self.service} is not mapped to IAM actions")


def required(call: Call, table_key: Callable[[str], str | None]) -> list[Request]:
    """Every permission `call` needs, in the order AWS checks them; `table_key` gives a table's
    customer managed key ARN (None when the table has none)."""
    if call.service == "s3":
        bucket, _, key = unquote(call.path).lstrip("/").partition("/")
        return s3_requests(call.operation, bucket, key)
    operation = call.operation
    return dynamodb_requests(operation, call.region, call.account, _tables(operation, _json(call.body)), table_key)


def s3_requests(operation: str, bucket: str, key: str = "") -> list[Request]:
    action = action_of("s3", operation)
    return [Request(action, f"arn:aws:s3:::{bucket}/{key}" if action != "s3:ListBucket" else f"arn:aws:s3:::{bucket}")]


def dynamodb_requests(operation: str, region: str, account: str, tables: list[str],
                      table_key: Callable[[str], str | None]) -> list[Request]:
    action = action_of("dynamodb", operation)
    if not tables:  # account-wide operations (ListTables, DescribeLimits): AWS's resource is "*"
        return [Request(action, "*")]
    needed = [Request(action, f"arn:aws:dynamodb:{region}:{account}:table/{t}") for t in tables]
    kms = KMS_FOR_WRITES if operation in DYNAMODB_WRITES else KMS_FOR_READS if operation in DYNAMODB_READS else ()
    via = {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}
    for table in tables:
        key_arn = table_key(table) if kms else None
        needed.extend(Request(k, key_arn, via) for k in kms if key_arn)
    return needed


def _json(body: bytes) -> dict[str, Any]:
    loaded = json.loads(body or b"{}")
    return loaded if isinstance(loaded, dict) else {}


def _tables(operation: str, body: Mapping[str, Any]) -> list[str]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return sorted(body.get("RequestItems", {}))
    if operation.startswith("Transact"):
        raise Unmapped(f"DynamoDB {operation} is not mapped (each item needs its own action)")
    return [str(body["TableName"])] if "TableName" in body else []

"""The stack's AWS endpoint is moto's HTTP server: ranged GETs, conditional writes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


def test_s3_ranged_get_returns_exactly_the_range(s3: Any, s3_bucket: str) -> None:
    body = bytes(range(256)) * 100
    s3.put_object(Bucket=s3_bucket, Key="data.bin", Body=body)
    part = s3.get_object(Bucket=s3_bucket, Key="data.bin", Range="bytes=1000-1999")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 1000-1999/{len(body)}"
    assert part["Body"].read() == body[1000:2000]


def test_dynamodb_conditional_write_is_refused(dynamodb: Any, checkpoint_table: str) -> None:
    item = {"job_id": {"S": "csv-job-1"}, "last_line": {"N": "50000"}, "owner": {"S": "pod-a"}}
    dynamodb.put_item(TableName=checkpoint_table, Item=item, ConditionExpression="attribute_not_exists(job_id)")
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(
            TableName=checkpoint_table, Key={"job_id": {"S": "csv-job-1"}},
            UpdateExpression="SET last_line = :n", ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":n": {"N": "60000"}, ":me": {"S": "pod-b"}},
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    stored = dynamodb.get_item(TableName=checkpoint_table, Key={"job_id": {"S": "csv-job-1"}})["Item"]
    assert stored["last_line"] == {"N": "50000"}

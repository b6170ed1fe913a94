"""The operator's reads and writes of checkpoint items (boto3 honours AWS_ENDPOINT_URL).

The item format is the worker's (csvkafka_worker.checkpoint); the operator reads it for status and
writes it only to carry out a restart or a reset, when no worker of the import runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from csvkafka_worker.checkpoint import Checkpoint, State, from_item, to_item

BATCH_GET_LIMIT = 100


class TableNotFound(Exception):
    def __init__(self, table: str) -> None:
        super().__init__(f"DynamoDB table {table!r} does not exist; create it (partition key job_id, type S) "
                         "or fix spec.checkpoint.table")


def _missing_table(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


class Checkpoints:
    def __init__(self, dynamodb: Any = None) -> None:
        if dynamodb is None:
            import boto3

            dynamodb = boto3.client("dynamodb")
        self._dynamodb = dynamodb

    def read(self, table: str, job_ids: Sequence[str]) -> dict[str, Checkpoint]:
        """The items that exist, by job id; none when the table is missing (the worker reports that)."""
        found: dict[str, Checkpoint] = {}
        try:
            for batch in _batches(list(job_ids), BATCH_GET_LIMIT):
                keys = [{"job_id": {"S": job_id}} for job_id in batch]
                while keys:
                    response = self._dynamodb.batch_get_item(
                        RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
                    for item in response.get("Responses", {}).get(table, []):
                        checkpoint = from_item(item)
                        found[checkpoint.job_id] = checkpoint
                    keys = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        except ClientError as error:
            if _missing_table(error):
                return {}
            raise
        return found

    def delete(self, table: str, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            try:
                self._dynamodb.delete_item(TableName=table, Key={"job_id": {"S": job_id}})
            except ClientError as error:
                if _missing_table(error):
                    return
                raise

    def start_at_row(self, table: str, job_id: str, row: int, why: str) -> None:
        """What `csvkafka checkpoint set --row row-1` does: the next run starts at data row `row`."""
        done = row - 1
        item = to_item(Checkpoint(job_id=job_id, last_line=done, total_sent=done, timestamp=int(time.time()),
                                  state=State.INTERRUPTED, message=why))
        try:
            self._dynamodb.put_item(TableName=table, Item=item)
        except ClientError as error:
            if _missing_table(error):
                raise TableNotFound(table) from error
            raise


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

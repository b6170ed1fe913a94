"""The operator's reads and writes of checkpoint items (boto3 honours AWS_ENDPOINT_URL).

The item format is the worker's (csvkafka_worker.checkpoint); the operator reads it for status and
writes it only to carry out a restart or a reset, when no worker of the import runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
        return {job_id: from_item(item) for job_id, item in self.raw(table, job_ids).items()}

    def raw(self, table: str, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The raw items that exist, by job id, read in batches; none when the table is missing."""
        found: dict[str, dict[str, Any]] = {}
        try:
            for batch in _batches(list(job_ids), BATCH_GET_LIMIT):
                keys = [{"job_id": {"S": job_id}} for job_id in batch]
                while keys:
                    response = self._dynamodb.batch_get_item(
                        RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
                    for item in response.get("Responses", {}).get(table, []):
                        found[item["job_id"]["S"]] = item
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


@dataclass
class _Batch:
    job_ids: dict[str, None] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    found: dict[str, Checkpoint] = field(default_factory=dict)
    error: BaseException | None = None


class SharedReads(Checkpoints):
    """Checkpoints whose reads of one table, asked for within `window` seconds of each other by different
    imports' passes, go out together: one BatchGetItem of up to 100 items instead of one per import."""

    def __init__(self, dynamodb: Any = None, window: float = 0.05) -> None:
        super().__init__(dynamodb)
        self.window = window
        self._guard = threading.Lock()
        self._open: dict[str, _Batch] = {}

    def read(self, table: str, job_ids: Sequence[str]) -> dict[str, Checkpoint]:
        with self._guard:
            batch = self._open.get(table)
            leader = batch is None or len(batch.job_ids) + len(job_ids) > BATCH_GET_LIMIT
            if leader:
                batch = self._open[table] = _Batch()
            assert batch is not None
            batch.job_ids.update(dict.fromkeys(job_ids))
        if leader:
            time.sleep(self.window)
            with self._guard:
                if self._open.get(table) is batch:
                    del self._open[table]
            try:
                batch.found = super().read(table, list(batch.job_ids))
            except BaseException as error:
                batch.error = error
                raise
            finally:
                batch.done.set()
        # The leader's read is bounded by the client's own timeouts and retries; this wait only backs them up.
        elif not batch.done.wait(timeout=120):
            raise TimeoutError(f"reading checkpoints from table {table} took longer than 120 s")
        if batch.error is not None:
            raise batch.error
        return {job_id: batch.found[job_id] for job_id in job_ids if job_id in batch.found}


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

"""Checkpoints in DynamoDB, guarded by a lease so that only one worker advances a job.

A worker claims the job's item with a conditional write (no owner, its own, or an expired lease)
and renews the lease with every checkpoint, each write conditional on still being the owner. A
second worker started while the first is alive sees the lease being renewed and stops with a
clear error; a worker restarted after a crash waits for the dead one's lease to expire and takes
over. A clean stop (end, SIGTERM, failure) releases the lease at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from csvkafka_worker import aws
from csvkafka_worker.checkpoint import Checkpoint, State, from_item, to_item
from csvkafka_worker.errors import BadInput, Infrastructure, LeaseHeld, Reason
from csvkafka_worker.retry import Retrier


def dynamodb_client(budget: float) -> Any:
    return aws.client("dynamodb", budget, connect=5, read=20)


class ConditionFailed(Exception):
    """A conditional write found the item not in the expected state."""


class LeaseLost(Infrastructure):
    """Another worker took the job over while this one was running."""


class CheckpointStore:
    def __init__(self, client: Any, table: str, job_id: str, *, owner: str, lease_seconds: float, retrier: Retrier,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._retrier = retrier
        self.table = table
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._sleep = sleep

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One DynamoDB call, retried within the budget on throttling and transient failures; any other
        failure becomes the worker's error (a failed condition: ConditionFailed, for the caller)."""
        try:
            return self._retrier.call(lambda: getattr(self._client, operation)(TableName=self.table, **kwargs),
                                      aws.transient, f"{operation} on table {self.table!r} (job {self.job_id!r})")
        except ClientError as error:
            code = aws.error_code(error)
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(code) from error
            if code == "ResourceNotFoundException":
                raise BadInput(f"DynamoDB table {self.table!r} does not exist; create it (partition key job_id, "
                               "type S) or fix checkpoint.table", reason=Reason.CHECKPOINT_TABLE_NOT_FOUND) from error
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                denied = error.response.get("Error", {}).get("Message") or code  # AWS's names the action
                raise BadInput(f"access to DynamoDB table {self.table!r} is denied: {denied}; grant the worker's "
                               "role that permission (terraform/irsa.tf)",
                               reason=Reason.CHECKPOINT_ACCESS_DENIED) from error
            raise Infrastructure(f"DynamoDB refused {operation} on table {self.table!r} (job {self.job_id!r}): "
                                 f"{error}", reason=Reason.DYNAMODB_UNAVAILABLE) from error

    def load(self) -> Checkpoint | None:
        return self.peek(self.job_id)

    def peek(self, job_id: str) -> Checkpoint | None:
        """Any job's checkpoint (the shards of one import read each other's)."""
        item = self._call("get_item", Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def claim(self) -> Checkpoint:
        """Takes the job's lease; waits out a dead worker's lease, refuses a live one's."""
        first_seen: Checkpoint | None = None
        give_up = self._clock() + 2 * self.lease_seconds + 5
        while True:
            now = self._clock()
            try:
                response = self._call(
                    "update_item", Key=self._key(),
                    UpdateExpression="SET #owner = :me, lease_expires = :until",
                    ConditionExpression="attribute_not_exists(job_id) OR attribute_not_exists(#owner) "
                                        "OR #owner = :me OR lease_expires < :now",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":me": {"S": self.owner}, ":until": {"N": str(now + self.lease_seconds)},
                                               ":now": {"N": str(now)}},
                    ReturnValues="ALL_NEW",
                )
                return from_item(response["Attributes"])
            except ConditionFailed:
                pass
            holder = self.load()
            if holder is None:
                continue
            if first_seen is None:
                first_seen = holder
            elif (holder.owner == first_seen.owner and holder.lease_expires != first_seen.lease_expires) \
                    or self._clock() > give_up:
                raise LeaseHeld(
                    f"job {self.job_id!r} is being imported by another live worker ({holder.owner}, lease renewed "
                    f"until {holder.lease_expires:.0f}); this worker stops. Wait for that one to finish, or stop it",
                    reason=Reason.ALREADY_RUNNING)
            self._sleep(min(1.0, max(0.1, (holder.lease_expires or now) - self._clock())))

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        """Writes a checkpoint and renews the lease; LeaseLost if another worker took the job."""
        stamped = checkpoint.advanced(owner=self.owner, lease_expires=self._clock() + self.lease_seconds,
                                      timestamp=int(self._clock()))
        self._conditional_put(stamped)
        return stamped

    def release(self, checkpoint: Checkpoint, state: State, message: str | None = None,
                reason: str | None = None) -> Checkpoint:
        final = checkpoint.advanced(owner=None, lease_expires=None, state=state, message=message, reason=reason,
                                    timestamp=int(self._clock()))
        self._conditional_put(final)
        return final

    def _conditional_put(self, checkpoint: Checkpoint) -> None:
        try:
            self._call("put_item", Item=to_item(checkpoint), ConditionExpression="#owner = :me",
                       ExpressionAttributeNames={"#owner": "owner"},
                       ExpressionAttributeValues={":me": {"S": self.owner}})
        except ConditionFailed as error:
            raise LeaseLost(f"another worker took over job {self.job_id!r}; this worker stops without "
                            "writing further", reason=Reason.ALREADY_RUNNING) from error

    def put_unguarded(self, checkpoint: Checkpoint) -> None:
        """For `csvkafka checkpoint set`: a person's decision overrides any lease."""
        self._call("put_item", Item=to_item(checkpoint))

    def put_new(self, checkpoint: Checkpoint, *, replace_unless: str) -> None:
        """Writes an item only if none exists or it was written by another rerun than `replace_unless`:
        of several workers racing to write it, one wins; the others get ConditionFailed."""
        self._call("put_item", Item=to_item(checkpoint),
                   ConditionExpression="attribute_not_exists(job_id) OR rerun_id <> :rerun",
                   ExpressionAttributeValues={":rerun": {"S": replace_unless}})

    def delete(self) -> None:
        self._call("delete_item", Key=self._key())

    def _key(self) -> dict[str, dict[str, str]]:
        return {"job_id": {"S": self.job_id}}

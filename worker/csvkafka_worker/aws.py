"""boto3 clients whose every call is bounded, and which failures of theirs are worth another attempt.

botocore retries nothing here (one attempt per call): the worker's own retries (retry.py) back off
within each service's budget and count throttling. Connect and read timeouts are at most half the
budget, so a service that accepts connections and never answers (a black-holed network) ends
through the budget as well; a streamed body read is bounded by the read timeout.
"""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from csvkafka_worker.retry import Transient

THROTTLING = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "Throttling",
    "ThrottledException", "TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "SlowDown",
})
# Server-side failures that a later attempt may not see.
PASSING = frozenset({"InternalError", "InternalServerError", "InternalFailure", "ServiceUnavailable",
                     "RequestTimeout", "RequestTimeoutException", "TransactionConflictException"})


def client(service: Literal["s3", "dynamodb"], budget: float, *, connect: float, read: float, **options: Any) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=max(1.0, min(connect, budget / 2)), read_timeout=max(1.0, min(read, budget / 2)),
                    **options)
    if service == "s3":
        return boto3.client("s3", config=config)
    return boto3.client("dynamodb", config=config)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def transient(error: Exception) -> Transient | None:
    if isinstance(error, ClientError):
        code = error_code(error)
        if code in THROTTLING:
            return Transient.THROTTLE
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return Transient.FAILURE if code in PASSING or status >= 500 else None
    # Connection refused or reset, timeouts, a body cut short.
    if isinstance(error, (BotoCoreError, OSError)):
        return Transient.FAILURE
    return None

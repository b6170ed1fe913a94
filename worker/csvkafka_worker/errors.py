"""The worker's failures, each with the exit code and the reason the operator reports.

Every message is one line that names the thing (object, row, setting) and says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from csvkafka_worker.exit_codes import ExitCode

T = TypeVar("T")


class Reason(StrEnum):
    """Why a worker stopped: in its last log line, in the checkpoint item and in the resource's status.

    The operator compares these by member; the values are Kubernetes-style reasons (CamelCase).
    """

    ALREADY_RUNNING = "AlreadyRunning"
    BAD_INPUT = "BadInput"
    CHECKPOINT_ACCESS_DENIED = "CheckpointAccessDenied"
    CHECKPOINT_TABLE_NOT_FOUND = "CheckpointTableNotFound"
    DYNAMODB_UNAVAILABLE = "DynamoDBUnavailable"
    FENCED = "Fenced"
    INTERNAL_ERROR = "InternalError"
    INTERRUPTED = "Interrupted"
    INVALID_CONFIGURATION = "InvalidConfiguration"
    KAFKA_AUTH_FAILED = "KafkaAuthFailed"
    KAFKA_UNREACHABLE = "KafkaUnreachable"
    S3_UNAVAILABLE = "S3Unavailable"
    SHARDS_NOT_RUNNING = "ShardsNotRunning"
    SOURCE_ACCESS_DENIED = "SourceAccessDenied"
    SOURCE_CHANGED = "SourceChanged"
    SOURCE_CORRUPT = "SourceCorrupt"
    SOURCE_NOT_FOUND = "SourceNotFound"
    TOPIC_NOT_FOUND = "TopicNotFound"


class WorkerError(Exception):
    exit_code = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, *, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


class BadInput(WorkerError):
    """Bad input or bad configuration: running again unchanged fails the same way."""

    exit_code = ExitCode.BAD_INPUT


class Infrastructure(WorkerError):
    """Kafka, S3 or DynamoDB failed after bounded retries: a later attempt may succeed."""

    exit_code = ExitCode.INFRASTRUCTURE


class LeaseHeld(Infrastructure):
    """Another live worker is advancing this job's checkpoint."""


class StoppedWhileWaiting(WorkerError):
    """SIGTERM arrived before this worker could claim its job: nothing was read or written."""


class ConfigError(BadInput):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.INVALID_CONFIGURATION)


def stopping_on_failure(body: Callable[[], T], stop: Callable[[WorkerError], object]) -> T:
    """Runs `body`; on a failure calls `stop` with it (an unexpected exception becomes InternalError, a bug
    to report) before it propagates."""
    try:
        return body()
    except WorkerError as error:
        stop(error)
        raise
    except Exception as error:
        failure = Infrastructure(f"unexpected error: {error!r}; this is a bug in csvkafka, please report it with the "
                                 "traceback above; the import resumes from its last checkpoint when the Job retries",
                                 reason=Reason.INTERNAL_ERROR)
        stop(failure)
        raise failure from error

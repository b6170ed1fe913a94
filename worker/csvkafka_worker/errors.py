"""The worker's failures, each with the exit code and the reason the operator reports.

Every message is one line that names the thing (object, row, setting) and says what to do.
"""

from __future__ import annotations

from csvkafka_worker.exit_codes import ExitCode


class WorkerError(Exception):
    exit_code = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, *, reason: str) -> None:
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
        super().__init__(message, reason="InvalidConfiguration")

"""The worker's exit codes: the operator's Job podFailurePolicy keys on them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # Bad input or bad configuration: the same run would fail the same way, so the Job fails fast.
    BAD_INPUT = 65
    # Broker, S3 or DynamoDB unreachable after bounded retries, or another worker holds the job:
    # a later attempt may succeed, so the Job retries.
    INFRASTRUCTURE = 75
    # Stopped by SIGTERM after a clean checkpoint. 0 by default (the import is resumable, nothing is
    # wrong); the operator asks for 143 so that Kubernetes never counts an interrupted pod as done.
    INTERRUPTED_IN_JOB = 143

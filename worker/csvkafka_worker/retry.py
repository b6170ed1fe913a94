"""Retrying a service within a time budget: exponential backoff with full jitter.

Each service (S3, DynamoDB, Kafka) has a budget in seconds (spec.retry): a streak of failures may
last that long. Retry n waits a random time in [0, min(cap, first * 2**n)) (full jitter, so that
many workers throttled together do not retry together); when the next wait would end past the
budget, the worker gives up with exit 75 and one line naming the service, the last error and what
to do, and the Job retries from the checkpoint. A success ends the streak.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Protocol, TypeVar

from csvkafka_worker.errors import Infrastructure, Reason

T = TypeVar("T")


class Service(StrEnum):
    S3 = "s3"
    DYNAMODB = "dynamodb"
    KAFKA = "kafka"

    @property
    def display(self) -> str:
        return {"s3": "S3", "dynamodb": "DynamoDB", "kafka": "Kafka"}[self.value]

    @property
    def reason(self) -> Reason:
        return {"s3": Reason.S3_UNAVAILABLE, "dynamodb": Reason.DYNAMODB_UNAVAILABLE,
                "kafka": Reason.KAFKA_UNREACHABLE}[self.value]

    @property
    def setting(self) -> str:
        """The spec field of its budget."""
        return f"retry.{self.value}Seconds"


class Transient(Enum):
    """A failure worth another attempt: the service throttled us, or failed in a way that may pass."""

    FAILURE = "failure"
    THROTTLE = "throttle"


# What to look at when a service kept failing, and when it kept throttling.
_ADVICE = {
    (Service.S3, Transient.FAILURE): "check the S3 endpoint and the network to it (VPC endpoint, NAT, security "
                                     "groups)",
    (Service.S3, Transient.THROTTLE): "S3 is throttling this prefix; spread the objects over more prefixes or "
                                      "lower parallelism",
    (Service.DYNAMODB, Transient.FAILURE): "check the DynamoDB endpoint and the network to it",
    (Service.DYNAMODB, Transient.THROTTLE): "raise the table's write capacity or switch it to on-demand",
    (Service.KAFKA, Transient.FAILURE): "check the brokers and the network to them",
    (Service.KAFKA, Transient.THROTTLE): "raise the client quota of the worker's principal on the brokers",
}


@dataclass(frozen=True)
class Backoff:
    budget: float
    first: float = 0.1
    cap: float = 10.0

    def wait(self, retry: int, elapsed: float, rand: float) -> float | None:
        """The wait before retry number `retry` (0 first), `elapsed` seconds into the streak, with
        `rand` in [0, 1); None when the retry would start past the budget."""
        wait = rand * min(self.cap, self.first * 2.0 ** min(retry, 64))
        return None if elapsed + wait > self.budget else wait


class Tally(Protocol):
    """Where throttles and retries are counted (the worker's metrics)."""

    def throttled(self, service: Service) -> None: ...

    def retried(self, service: Service) -> None: ...


class Retrier:
    """One service's retries: `call` runs an attempt again after transient failures; `streak` gives
    the same for callers that resume their own work between attempts (a body read cut short)."""

    def __init__(self, service: Service, backoff: Backoff, tally: Tally | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.service = service
        self.backoff = backoff
        self.tally = tally
        self.clock = clock
        self.sleep = sleep
        self.rand = rand

    def call(self, attempt: Callable[[], T], transient: Callable[[Exception], Transient | None], what: str) -> T:
        streak = self.streak(what)
        while True:
            try:
                return attempt()
            except Exception as error:
                kind = transient(error)
                if kind is None:
                    raise
                streak.failed(error, kind)

    def streak(self, what: str) -> Streak:
        return Streak(self, what)


class Streak:
    """Consecutive failures of one operation, timed from its start or its last success (a slow
    attempt counts); `failed` waits before the next attempt or gives up."""

    def __init__(self, retrier: Retrier, what: str) -> None:
        self._r = retrier
        self.what = what
        self._started = retrier.clock()
        self._retries = 0

    def failed(self, error: BaseException, kind: Transient) -> None:
        r = self._r
        if kind is Transient.THROTTLE and r.tally is not None:
            r.tally.throttled(r.service)
        elapsed = r.clock() - self._started
        wait = r.backoff.wait(self._retries, elapsed, r.rand())
        if wait is None:
            raise Infrastructure(give_up_message(r.service, self.what, kind, elapsed, self._retries + 1,
                                                 r.backoff.budget, error),
                                 reason=r.service.reason) from error
        if r.tally is not None:
            r.tally.retried(r.service)
        self._retries += 1
        r.sleep(wait)

    def succeeded(self) -> None:
        self._started = self._r.clock()
        self._retries = 0


def give_up_message(service: Service, what: str, kind: Transient, elapsed: float, attempts: int, budget: float,
                    error: BaseException) -> str:
    verb = "throttled" if kind is Transient.THROTTLE else "failed"
    last = " ".join(str(error).split()) or type(error).__name__
    return (f"{service.display} {verb} {what} {attempts} times in {elapsed:.0f}s, its retry budget of {budget:g}s is "
            f"spent (last error: {last}); {_ADVICE[service, kind]}, or raise {service.setting}; the import resumes "
            "from its last checkpoint when the Job retries")

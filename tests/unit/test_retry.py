"""Retry budgets: exponential backoff with full jitter, give-up with one line, throttles counted."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from csvkafka_worker import aws
from csvkafka_worker.errors import Infrastructure, Reason
from csvkafka_worker.exit_codes import ExitCode
from csvkafka_worker.metrics import Metrics
from csvkafka_worker.retry import Backoff, Retrier, Service, Transient


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} message"},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "HostId": "", "RequestId": "",
                                             "RetryAttempts": 0}}, "UpdateItem")


def test_waits_grow_exponentially_up_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(budget=1000, first=0.1, cap=10)
    assert [backoff.wait(n, 0, 0.999999) for n in range(9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10], rel=1e-5)
    assert backoff.wait(3, 0, 0.0) == 0.0
    assert backoff.wait(3, 0, 0.5) == pytest.approx(0.4)
    assert backoff.wait(10_000, 0, 0.5) == 5.0


def test_no_retry_starts_past_the_budget() -> None:
    backoff = Backoff(budget=5)
    assert backoff.wait(0, 4.9, 0.5) == pytest.approx(0.05)
    assert backoff.wait(0, 4.99, 0.5) is None
    assert backoff.wait(0, 6, 0.0) is None


def test_transient_failures_are_retried_until_success_and_counted() -> None:
    time_, metrics = FakeTime(), Metrics("j")
    retrier = Retrier(Service.DYNAMODB, Backoff(budget=30), metrics, clock=time_.clock, sleep=time_.sleep,
                      rand=lambda: 0.5)
    failures: list[Exception] = [client_error("ProvisionedThroughputExceededException"),
                                 client_error("ThrottlingException"), EndpointConnectionError(endpoint_url="x"),
                                 client_error("InternalServerError", 500)]

    def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert retrier.call(attempt, aws.transient, "put_item") == "done"
    assert time_.waits == pytest.approx([0.05, 0.1, 0.2, 0.4])
    assert (metrics.retries["dynamodb"], metrics.throttles["dynamodb"]) == (4, 2)


def test_a_failure_that_is_not_transient_is_not_retried() -> None:
    time_ = FakeTime()
    retrier = Retrier(Service.DYNAMODB, Backoff(budget=30), clock=time_.clock, sleep=time_.sleep)
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise client_error("ValidationException")

    with pytest.raises(ClientError):
        retrier.call(attempt, aws.transient, "put_item")
    assert calls == 1 and time_.waits == []


def test_a_spent_budget_ends_in_one_line_naming_service_last_error_and_fix() -> None:
    time_, metrics = FakeTime(), Metrics("j")
    retrier = Retrier(Service.DYNAMODB, Backoff(budget=20), metrics, clock=time_.clock, sleep=time_.sleep,
                      rand=lambda: 0.99)

    def attempt() -> None:
        raise client_error("ProvisionedThroughputExceededException")

    with pytest.raises(Infrastructure) as raised:
        retrier.call(attempt, aws.transient, "update_item on table 'cp'")
    error = raised.value
    assert (error.exit_code, error.reason) == (ExitCode.INFRASTRUCTURE, Reason.DYNAMODB_UNAVAILABLE)
    assert sum(time_.waits) <= 20
    # Every attempt was throttled; all but the last were retried.
    assert metrics.throttles["dynamodb"] == len(time_.waits) + 1 == metrics.retries["dynamodb"] + 1
    message = str(error)
    assert "\n" not in message
    assert message.startswith("DynamoDB throttled update_item on table 'cp' ")
    assert "its retry budget of 20s is spent (last error: An error occurred (ProvisionedThroughputExceededException)" \
        in message
    assert "raise the table's write capacity or switch it to on-demand, or raise retry.dynamodbSeconds" in message


def test_a_slow_attempt_counts_against_the_budget() -> None:
    # A black-holed endpoint: each attempt ends only by its read timeout.
    time_ = FakeTime()
    retrier = Retrier(Service.S3, Backoff(budget=10), clock=time_.clock, sleep=time_.sleep, rand=lambda: 0.5)

    def attempt() -> None:
        time_.now += 4
        raise ReadTimeoutError(endpoint_url="http://s3")

    with pytest.raises(Infrastructure, match=r"^S3 failed HEAD s3://b/k 3 times in 12s") as raised:
        retrier.call(attempt, aws.transient, "HEAD s3://b/k")
    assert raised.value.reason is Reason.S3_UNAVAILABLE
    # No attempt starts past the budget; the last one may end an attempt's timeout after it.
    assert time_.now <= 10 + 4


def test_a_success_ends_the_streak() -> None:
    time_ = FakeTime()
    retrier = Retrier(Service.S3, Backoff(budget=1), clock=time_.clock, sleep=time_.sleep, rand=lambda: 0.5)
    streak = retrier.streak("reading")
    for _ in range(50):
        streak.failed(OSError("reset"), Transient.FAILURE)
        time_.now += 10  # a long successful read between failures
        streak.succeeded()
    assert len(time_.waits) == 50


@pytest.mark.parametrize(("error", "kind"), [
    (client_error("ProvisionedThroughputExceededException"), Transient.THROTTLE),
    (client_error("RequestLimitExceeded"), Transient.THROTTLE),
    (client_error("SlowDown", 503), Transient.THROTTLE),
    (client_error("ServiceUnavailable", 503), Transient.FAILURE),
    (client_error("Whatever", 502), Transient.FAILURE),
    (ConnectionResetError(), Transient.FAILURE),
    (client_error("ConditionalCheckFailedException"), None),
    (client_error("AccessDeniedException"), None),
    (client_error("PreconditionFailed", 412), None),
    (ValueError("a bug"), None),
])
def test_which_aws_failures_are_worth_another_attempt(error: Exception, kind: Transient | None) -> None:
    assert aws.transient(error) is kind


def test_the_metrics_serve_throttles_by_service_and_a_checkpoint_age_that_grows_by_itself() -> None:
    from prometheus_client import generate_latest

    now = [100.0]
    metrics = Metrics("job-1", clock=lambda: now[0])
    metrics.throttled(Service.DYNAMODB)  # before the registry exists: still counted
    metrics.register()
    metrics.throttled(Service.DYNAMODB)
    metrics.retried(Service.S3)
    metrics.throttled(Service.KAFKA)

    def scrape() -> dict[str, float]:
        out: dict[str, float] = {}
        for line in generate_latest(metrics.registry).decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    first = scrape()
    assert first['csvkafka_throttled_total{job="job-1",service="dynamodb"}'] == 2
    assert first['csvkafka_throttled_total{job="job-1",service="kafka"}'] == 1
    assert first['csvkafka_throttled_total{job="job-1",service="s3"}'] == 0
    assert first['csvkafka_retries_total{job="job-1",service="s3"}'] == 1
    assert first['csvkafka_checkpoint_age_seconds{job="job-1"}'] == 0
    now[0] += 42  # nothing else happens: the worker is stuck
    assert scrape()['csvkafka_checkpoint_age_seconds{job="job-1"}'] == 42
    metrics.checkpointed()
    assert scrape()['csvkafka_checkpoint_age_seconds{job="job-1"}'] == 0



"""Producer overrides that would silently weaken delivery are refused, naming the property and the fix."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from csvkafka_worker.options import ConfigError, add_flags, parse
from csvkafka_worker.producer_guard import weakening
from csvkafka_worker.spec import SinkSpec

REFUSED = [
    ("enable.idempotence", "false", "turns off the idempotent producer"),
    ("enable.idempotence", "0", "turns off the idempotent producer"),
    ("enable.idempotence", "Off", "turns off the idempotent producer"),
    ("acks", "1", "not every in-sync replica"),
    ("acks", "0", "not every in-sync replica"),
    ("request.required.acks", "1", "not every in-sync replica"),
    ("transactional.id", "mine", "per-shard transactional id"),
    ("retries", "0", "turns off retries"),
    ("message.send.max.retries", "0", "turns off retries"),
    ("max.in.flight.requests.per.connection", "6", "more than the idempotent producer allows (5)"),
    ("max.in.flight", "1000000", "more than the idempotent producer allows (5)"),
    ("message.timeout.ms", "0", "waiting forever"),
    ("delivery.timeout.ms", "0", "waiting forever"),
    ("delivery.report.only.error", "true", "hides the acknowledgements"),
]
ACCEPTED = [
    ("enable.idempotence", "true"), ("acks", "all"), ("acks", "-1"), ("acks", "ALL"), ("retries", "5"),
    ("message.send.max.retries", "2147483647"), ("max.in.flight.requests.per.connection", "5"),
    ("max.in.flight", "1"), ("message.timeout.ms", "300000"), ("delivery.report.only.error", "false"),
    ("linger.ms", "0"), ("compression.type", "zstd"),
]


@pytest.mark.parametrize(("name", "value", "why"), REFUSED)
def test_an_override_that_weakens_delivery_is_refused(name: str, value: str, why: str) -> None:
    [problem] = weakening({name: value})
    assert problem.startswith(f"sink.producer {name}={value} ") and why in problem
    assert problem.endswith("; remove it")
    with pytest.raises(ValidationError, match=f"sink.producer {name}={value} "):
        SinkSpec(bootstrap_servers="b:9092", topic="t", producer={name: value})


@pytest.mark.parametrize(("name", "value"), ACCEPTED)
def test_an_override_that_keeps_delivery_is_accepted(name: str, value: str) -> None:
    assert weakening({name: value}) == []
    assert SinkSpec(bootstrap_servers="b:9092", topic="t", producer={name: value}).producer == {name: value}


def test_every_problem_is_named_at_once_and_the_flag_too() -> None:
    assert len(weakening({"acks": "1", "enable.idempotence": "false", "linger.ms": "5"})) == 2
    parser = argparse.ArgumentParser()
    add_flags(parser)
    argv = ["--source", "s3://data/a.csv", "--bootstrap-servers", "b:9092", "--topic", "t", "--checkpoint-table",
            "checkpoints", "--producer-property", "acks=1"]
    with pytest.raises(ConfigError, match=r"^--producer-property \(CSVKAFKA_PRODUCER_PROPERTY\): sink.producer "
                                          r"acks=1 lets Kafka acknowledge"):
        parse(parser.parse_args(argv), {})

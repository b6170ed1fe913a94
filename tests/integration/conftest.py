"""Fixtures of the integration tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.faults import Toxiproxy
from tests.conftest import unique_name


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test's workers once on each engine (CSVKAFKA_ENGINE is --engine's variable)."""
    monkeypatch.setenv("CSVKAFKA_ENGINE", request.param)
    return str(request.param)


@pytest.fixture(scope="session")
def ha_bootstrap(stack_env: dict[str, str]) -> str:
    """The three-broker cluster, reached through Toxiproxy (one proxy per broker)."""
    return stack_env["CSVKAFKA_KAFKA_HA_BOOTSTRAP"]


@pytest.fixture
def toxiproxy(stack_env: dict[str, str]) -> Iterator[Toxiproxy]:
    """The stack's fault proxy, with no fault in place before and after the test."""
    client = Toxiproxy(stack_env["CSVKAFKA_TOXIPROXY_URL"])
    client.reset()
    yield client
    client.reset()


@pytest.fixture
def ha_topic(ha_bootstrap: str) -> Iterator[str]:
    """A one-partition topic on the three-broker cluster with the cluster's defaults (RF 3, two in sync)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": ha_bootstrap})
    name = unique_name("topic")
    admin.create_topics([NewTopic(name, num_partitions=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)

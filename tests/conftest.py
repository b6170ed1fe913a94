"""Fixtures shared by every tier: the local stack (started when absent) and isolated resources.

Each test gets its own topic, bucket, table and namespace (unique names), so tests never see each
other's data and can run in any order against one long-running stack.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
STACK = REPO / "dev" / "stack"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _stack_env() -> dict[str, str]:
    out = subprocess.run([str(STACK), "env"], capture_output=True, text=True, check=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """Starts the stack when any part is down, then exports its environment into this process."""
    if subprocess.run([str(STACK), "status"], capture_output=True, check=False).returncode != 0:
        subprocess.run([str(STACK), "up"], check=True)
    env = _stack_env()
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def bootstrap_servers(stack_env: dict[str, str]) -> str:
    return stack_env["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture
def kafka_topic(bootstrap_servers: str) -> Iterator[str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    name = unique_name("topic")
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


@pytest.fixture(scope="session")
def s3(stack_env: dict[str, str]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=stack_env["AWS_ENDPOINT_URL"])


@pytest.fixture(scope="session")
def dynamodb(stack_env: dict[str, str]) -> Any:
    import boto3

    return boto3.client("dynamodb", endpoint_url=stack_env["AWS_ENDPOINT_URL"])


@pytest.fixture
def s3_bucket(s3: Any) -> Iterator[str]:
    name = unique_name("bucket")
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def checkpoint_table(dynamodb: Any) -> Iterator[str]:
    """A table with the checkpoint schema of DESIGN.md: partition key `job_id` (S), on demand."""
    name = unique_name("checkpoints")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture(scope="session")
def kube_client(stack_env: dict[str, str]) -> Any:
    from kubernetes import config

    return config.new_client_from_config(stack_env["KUBECONFIG"])


@pytest.fixture
def namespace(kube_client: Any) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube_client)
    name = unique_name("ns")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)

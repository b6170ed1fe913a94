"""A container's env and argv are resolved from its pod as kubelet resolves them."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dev"))

from devstack.pod_env import (
    ConfigError,
    command_line,
    expand,
    referenced_sources,
    resolve_env,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(**data: str) -> dict[str, Any]:
    return {"kind": "Secret", "data": {k: b64(v) for k, v in data.items()}}


def configmap(**data: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "data": data}


POD: dict[str, Any] = {
    "metadata": {
        "name": "worker-0-abcde",
        "namespace": "imports",
        "uid": "0f0e0d0c-0000-4000-8000-000000000001",
        "labels": {"app": "csvkafka"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
    },
    "spec": {"nodeName": "ip-10-0-2-20.ec2.internal", "serviceAccountName": "worker"},
    "status": {"podIP": "127.0.0.1", "hostIP": "127.0.0.1"},
}


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "main", "image": "csvkafka", **fields}


def test_plain_values_expand_only_variables_defined_before_them() -> None:
    c = container(env=[
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-$(C)-$$(A)"},
        {"name": "C", "value": "c"},
    ])
    assert resolve_env(POD, c, {}, {}) == {"A": "a", "B": "a-$(C)-$(A)", "C": "c"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(X)", "x"),
        ("$$(X)", "$(X)"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$(X", "$(X"),
        ("a$", "a$"),
        ("$X", "$X"),
        ("$$", "$"),
        ("$(X)$(X)", "xx"),
    ],
)
def test_expansion_follows_the_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"X": "x"}.get) == expected


def test_field_refs_cover_metadata_spec_status_labels_and_annotations() -> None:
    paths = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "APP": "metadata.labels['app']",
        "NO_LABEL": "metadata.labels['absent']",
        "INDEX": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "POD_IP": "status.podIP",
        "HOST_IP": "status.hostIP",
    }
    c = container(env=[{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()])
    assert resolve_env(POD, c, {}, {}) == {
        "NAME": "worker-0-abcde", "NS": "imports", "UID": "0f0e0d0c-0000-4000-8000-000000000001",
        "APP": "csvkafka", "NO_LABEL": "", "INDEX": "3", "NODE": "ip-10-0-2-20.ec2.internal",
        "SA": "worker", "POD_IP": "127.0.0.1", "HOST_IP": "127.0.0.1",
    }


def test_secret_and_configmap_keys_are_decoded() -> None:
    c = container(env=[
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "TOPIC", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "topic"}}},
    ])
    env = resolve_env(POD, c, {"creds": secret(password="s3cr=t\n")}, {"settings": configmap(topic="rows")})
    assert env == {"PASSWORD": "s3cr=t\n", "TOPIC": "rows"}


def test_env_from_applies_prefixes_and_env_overrides_it() -> None:
    c = container(
        envFrom=[
            {"configMapRef": {"name": "settings"}},
            {"secretRef": {"name": "creds"}, "prefix": "DB_"},
        ],
        env=[{"name": "TOPIC", "value": "override-$(DB_user)"}],
    )
    env = resolve_env(
        POD, c, {"creds": secret(user="alice")}, {"settings": configmap(TOPIC="rows", MODE="fast")}
    )
    assert env == {"TOPIC": "override-alice", "MODE": "fast", "DB_user": "alice"}


def test_configmap_binary_data_is_decoded() -> None:
    c = container(envFrom=[{"configMapRef": {"name": "bin"}}])
    cm = {"data": {"A": "1"}, "binaryData": {"B": b64("two")}}
    assert resolve_env(POD, c, {}, {"bin": cm}) == {"A": "1", "B": "two"}


def test_a_missing_secret_is_reported_with_kubelets_wording() -> None:
    c = container(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}])
    with pytest.raises(ConfigError, match=r'^secret "x" not found$'):
        resolve_env(POD, c, {"x": None}, {})


def test_a_missing_configmap_via_env_from_is_an_error() -> None:
    c = container(envFrom=[{"configMapRef": {"name": "settings"}}])
    with pytest.raises(ConfigError, match=r'^configmap "settings" not found$'):
        resolve_env(POD, c, {}, {"settings": None})


def test_a_missing_key_names_namespace_and_object() -> None:
    c = container(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}])
    with pytest.raises(ConfigError, match=r"^couldn't find key nope in Secret imports/creds$"):
        resolve_env(POD, c, {"creds": secret(password="p")}, {})


def test_optional_sources_and_keys_are_skipped_when_absent() -> None:
    c = container(
        envFrom=[{"secretRef": {"name": "gone", "optional": True}}],
        env=[
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": True}}},
            {"name": "C", "value": "kept"},
        ],
    )
    assert resolve_env(POD, c, {"gone": None}, {"cm": configmap(other="x")}) == {"C": "kept"}


def test_resource_field_refs_round_up_and_fall_back_to_node_allocatable() -> None:
    c = container(
        resources={"limits": {"cpu": "500m", "memory": "1Gi"}},
        env=[
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "REQ_CPU_M",
             "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        ],
    )
    assert resolve_env(POD, c, {}, {}) == {"CPU": "1", "MEM_MI": "1024", "REQ_CPU_M": "500"}
    unlimited = container(env=[{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}])
    assert resolve_env(POD, unlimited, {}, {}) == {"CPU": "8"}


def test_referenced_sources_lists_every_secret_and_configmap_once() -> None:
    c = container(
        envFrom=[{"secretRef": {"name": "s1"}}, {"configMapRef": {"name": "c1"}}],
        env=[
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c2", "key": "k"}}},
            {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    )
    refs = referenced_sources(c)
    assert refs.secrets == {"s1", "s2"}
    assert refs.configmaps == {"c1", "c2"}


def test_command_and_args_expand_against_the_container_env() -> None:
    c = container(command=["csvkafka", "run"], args=["--job-id=$(JOB)", "--literal=$$(JOB)", "$(NOPE)"])
    assert command_line(c, {"JOB": "j-1"}) == ["csvkafka", "run", "--job-id=j-1", "--literal=$(JOB)", "$(NOPE)"]


def test_an_unsupported_field_path_is_a_config_error() -> None:
    c = container(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}])
    with pytest.raises(ConfigError, match="unsupported fieldRef"):
        resolve_env(POD, c, {}, {})

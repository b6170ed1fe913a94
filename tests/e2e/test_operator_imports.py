"""The operator on the local stack: CsvKafkaImport resources applied with kubectl, run as Jobs of the
image built from the Dockerfile on real kubelets labelled like EKS nodes, with real Kafka and moto's
S3/DynamoDB.

Needs `dev/stack up` (the session fixture starts what is missing, the operator included).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import consume_all, evict_pod, new_topics

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dev"))

from devstack import kube
from devstack import nodes as stack_nodes
from devstack import operator as operator_service
from devstack.layout import REPO, Layout

pytestmark = pytest.mark.e2e

EXAMPLE = yaml.safe_load((REPO / "examples" / "import.yaml").read_text())
# Slows a worker down to a few ten thousand rows a second, so that a test can act mid-import.
THROTTLE = {"queue.buffering.max.messages": "1000", "linger.ms": "50"}


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=False)
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


def csv_rows(count: int) -> bytes:
    """A header and `count` rows of about 130 bytes, with quoted delimiters and newlines now and then.

    The worker's checkpoints advance by whole blocks of 8 MiB (some 65,000 of these rows), so an
    import that a test wants to see mid-way needs a few of them."""
    lines = [b"id,name,note,padding\n"]
    padding = b"x" * 100
    for i in range(1, count + 1):
        note = b'"a, b"' if i % 5 == 0 else (b'"two\nlines"' if i % 101 == 0 else b"plain")
        lines.append(b"%d,name-%d,%s,%s\n" % (i, i, note, padding))
    return b"".join(lines)


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = deep_merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


@pytest.fixture(scope="session")
def operator(stack_env: dict[str, str]) -> None:
    operator_service.up(Layout.from_env())


@pytest.fixture
def ns(operator: None, namespace: str, kube_client: Any) -> str:
    """A namespace that enforces the restricted Pod Security profile, its default ServiceAccount ready."""
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0,
               what="the default ServiceAccount")
    return namespace


@pytest.fixture
def upload(s3: Any, s3_bucket: str) -> Callable[[bytes, str], str]:
    def put(body: bytes, key: str = "data.csv") -> str:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
        return f"s3://{s3_bucket}/{key}"
    return put


@pytest.fixture
def make_import(ns: str, kafka_topic: str, checkpoint_table: str, bootstrap_servers: str
                ) -> Iterator[Callable[..., dict[str, Any]]]:
    """The local example with this test's object, topic, table and this stack's brokers, plus any changes."""
    def manifest(uri: str, name: str = "people", **changes: Any) -> dict[str, Any]:
        body = deep_merge(EXAMPLE, {"metadata": {"name": name, "namespace": ns}, "spec": {
            "source": {"uri": uri}, "sink": {"topic": kafka_topic, "bootstrapServers": bootstrap_servers},
            "checkpoint": {"table": checkpoint_table}}})
        return deep_merge(body, {"spec": changes})
    yield manifest
    # Before the namespace, topic and table go: no worker may outlive them.
    kubectl("delete", "csvimports", "--all", "-n", ns, "--timeout=60s", check=False)


@dataclass(frozen=True)
class Sink:
    """Where an import writes: a cluster's bootstrap servers and a topic of the test's own."""

    bootstrap: str
    topic: str

    def spec(self, **changes: Any) -> dict[str, Any]:
        return {"bootstrapServers": self.bootstrap, "topic": self.topic, **changes}


@pytest.fixture
def sink(stack_env: dict[str, str]) -> Iterator[Sink]:
    """The stack's three-broker cluster (RF 3, min.insync.replicas=2, like MSK; reached through
    Toxiproxy, which passes everything through), with a topic of the test's own."""
    bootstrap = stack_env["CSVKAFKA_KAFKA_HA_BOOTSTRAP"]
    with new_topics(bootstrap, 1) as [topic]:
        yield Sink(bootstrap, topic)


def apply(manifest: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=check)


def get(ns: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "csvimport", name, "-n", ns, "-o", "json").stdout))


def wait_for(ns: str, name: str, condition: str, timeout: int = 180) -> dict[str, Any]:
    kubectl("wait", f"--for=condition={condition}", f"csvimport/{name}", "-n", ns, f"--timeout={timeout}s")
    return dict(get(ns, name)["status"])


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def wait_until(ready: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ready()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def rows_in(bootstrap: str, topic: str) -> list[int]:
    return [record.row for record in consume_all(bootstrap, topic)]


def columns(ns: str) -> list[dict[str, str]]:
    """`kubectl get csvimports` as rows of named cells (cut at the header's offsets: cells may be empty)."""
    header, *lines = kubectl("get", "csvimports", "-n", ns).stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    return [{name: line[start:end].strip() for name, start, end in zip(names, starts, [*starts[1:], None],
                                                                         strict=True)} for line in lines]


# -- the happy path --------------------------------------------------------------------------------


def test_the_local_example_runs_to_succeeded(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], kafka_topic: str,
        bootstrap_servers: str) -> None:
    rows = 5000
    apply(make_import(upload(csv_rows(rows))))
    status = wait_for(ns, "people", "Succeeded")
    assert (status["phase"], status["recordsSent"], status["recordsRead"]) == ("Succeeded", rows, rows)
    assert condition(status, "Failed")["status"] == "False"
    assert sorted(rows_in(bootstrap_servers, kafka_topic)) == list(range(1, rows + 1))
    [after] = columns(ns)
    assert (after["PHASE"], after["PROGRESS"], after["SENT"]) == ("Succeeded", "100%", str(rows))
    assert int(after["ROWS/S"]) > 0


def test_kubectl_get_shows_progress_while_it_runs(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]]) -> None:
    apply(make_import(upload(csv_rows(250_000)), sink={"producer": THROTTLE}, checkpoint={"everySeconds": 1}))
    running = wait_until(lambda: next((c for c in columns(ns) if c["PHASE"] == "Running" and c["SENT"].isdigit()
                                       and int(c["SENT"]) > 0), None), what="a Running row with rows sent")
    assert running["PROGRESS"].endswith("%")
    wait_for(ns, "people", "Succeeded")


def test_applying_the_unchanged_resource_again_does_nothing(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]]) -> None:
    manifest = make_import(upload(csv_rows(1000)))
    apply(manifest)
    done = wait_for(ns, "people", "Succeeded")
    assert "unchanged" in apply(manifest).stdout
    time.sleep(5)  # more than two status refreshes
    again = get(ns, "people")
    assert again["status"]["completionTime"] == done["completionTime"]
    jobs = kubectl("get", "jobs", "-n", ns, "-l", "csvkafka.io/import=people", "-o", "name").stdout.split()
    assert jobs == [f"job.batch/{done['jobName']}"]


@pytest.mark.parametrize(("capacity", "node_label"), [
    ("spot", "eks.amazonaws.com/capacityType=SPOT"),
    ("fargate", "eks.amazonaws.com/compute-type=fargate"),
    ("on-demand", "eks.amazonaws.com/capacityType=ON_DEMAND"),
])
def test_capacity_puts_the_workers_on_matching_nodes(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], capacity: str,
        node_label: str) -> None:
    apply(make_import(upload(csv_rows(100)), capacity=capacity))
    wait_for(ns, "people", "Succeeded")
    node = kubectl("get", "pods", "-n", ns, "-l", "csvkafka.io/import=people",
                   "-o", "jsonpath={.items[0].spec.nodeName}").stdout
    matching = kubectl("get", "nodes", "-l", node_label, "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert node in matching
    # Its kubelet serves the container's log: the worker's JSON lines, from start to finish.
    logs = kubectl("logs", "-n", ns, "-l", "csvkafka.io/import=people", "--tail=-1").stdout.splitlines()
    # librdkafka may add lines of its own (`%N|…`); every line of the worker's is a JSON object.
    records = [json.loads(line) for line in logs if line.startswith("{")]
    assert records[0]["event"] == "start" and records[-1]["event"] == "finish"
    assert records[-1]["rows_sent"] == 100


# -- the lifecycle ---------------------------------------------------------------------------------


# A Spot import throttled to last a while, interrupted after its first checkpoint.
INTERRUPTED_ROWS = 400_000


def start_interruptible_import(ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]],
                               delivery: str, sink: Sink) -> str:
    """Starts the import and waits for its first checkpoint; returns its pod (`pod/…`)."""
    apply(make_import(upload(csv_rows(INTERRUPTED_ROWS)), capacity="spot", delivery=delivery,
                      sink=sink.spec(producer=THROTTLE), checkpoint={"everySeconds": 1}))
    wait_until(lambda: get(ns, "people").get("status", {}).get("recordsSent", 0) > 0, what="a first checkpoint")
    [pod] = kubectl("get", "pods", "-n", ns, "-l", "csvkafka.io/import=people", "-o", "name").stdout.split()
    return pod


def assert_finished_without_loss(ns: str, sink: Sink, delivery: str) -> None:
    """Succeeded, the interruption not counted as a failure, every row in the topic (once: exactly-once)."""
    status = wait_for(ns, "people", "Succeeded", timeout=300)
    assert status["recordsSent"] == INTERRUPTED_ROWS
    job = json.loads(kubectl("get", "job", status["jobName"], "-n", ns, "-o", "json").stdout)
    assert job["status"].get("failed", 0) == 0
    sent = rows_in(sink.bootstrap, sink.topic)
    assert set(sent) == set(range(1, INTERRUPTED_ROWS + 1))
    if delivery == "exactly-once":
        assert len(sent) == INTERRUPTED_ROWS


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_a_spot_interruption_neither_fails_the_job_nor_loses_a_row(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], sink: Sink,
        kube_client: Any, delivery: str) -> None:
    from kubernetes import client

    pod = start_interruptible_import(ns, upload, make_import, delivery, sink)
    evict_pod(client.CoreV1Api(kube_client), ns, pod.removeprefix("pod/"))
    assert get(ns, "people")["status"]["recordsRead"] < INTERRUPTED_ROWS
    assert_finished_without_loss(ns, sink, delivery)


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_a_lost_spot_node_s_worker_is_replaced_and_no_row_is_lost(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], sink: Sink,
        delivery: str) -> None:
    first = start_interruptible_import(ns, upload, make_import, delivery, sink)
    layout = Layout.from_env()
    # The instance is gone at once: kubelet, containerd and the worker SIGKILLed, nothing told.
    node = stack_nodes.lose(layout, "spot")
    try:
        wait_until(lambda: kubectl("get", "node", node.spec.name, "-o",
                                   "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout == "Unknown",
                   what=f"node {node.spec.name} NotReady", timeout=90)
        assert get(ns, "people")["status"]["recordsRead"] < INTERRUPTED_ROWS
        # EKS's cloud controller deletes the Node of a terminated instance; its pods are then collected
        # and the Job, which ignores their DisruptionTarget, makes a new one.
        kubectl("delete", "node", node.spec.name, "--timeout=60s")
        wait_until(lambda: kubectl("get", "-n", ns, first, check=False).returncode != 0,
                   what=f"{first} collected", timeout=120)
    finally:
        # The node group replaces the instance: a new node under the same name.
        stack_nodes.up(layout, kube.pki(layout))
    assert_finished_without_loss(ns, sink, delivery)


def test_an_oom_killed_worker_says_to_raise_the_memory_limit(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], sink: Sink) -> None:
    rows = 20_000
    uri = upload(csv_rows(rows))
    apply(make_import(uri, sink=sink.spec(), resources={"requests": {"memory": "24Mi"}, "limits": {"memory": "24Mi"}}))
    status = wait_until(lambda: (s := get(ns, "people").get("status", {})) and s.get("conditions")
                        and any(c.get("reason") == "OOMKilled" for c in s["conditions"]) and s,
                        what="an OOMKilled condition", timeout=180)
    [oom] = [c for c in status["conditions"] if c.get("reason") == "OOMKilled"]
    assert "ran out of memory; raise spec.resources.limits.memory" in oom["message"]
    # The fix: a limit that fits, and a new run from the checkpoint.
    apply(make_import(uri, sink=sink.spec(), resources={"requests": {"memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                      restart={"id": "more-memory"}))
    assert wait_for(ns, "people", "Succeeded", timeout=240)["recordsSent"] == rows
    assert sorted(rows_in(sink.bootstrap, sink.topic)) == list(range(1, rows + 1))


def test_suspend_then_resume_imports_every_row(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], kafka_topic: str,
        bootstrap_servers: str) -> None:
    rows = 400_000
    apply(make_import(upload(csv_rows(rows)), sink={"producer": THROTTLE}, checkpoint={"everySeconds": 1}))
    wait_until(lambda: get(ns, "people").get("status", {}).get("recordsSent", 0) > 0, what="a first checkpoint")
    kubectl("csvimport", "suspend", "people", "-n", ns)
    wait_until(lambda: get(ns, "people")["status"]["phase"] == "Suspended", what="phase Suspended")
    wait_until(lambda: not kubectl("get", "pods", "-n", ns, "-l", "csvkafka.io/import=people", "-o", "name"
                                   ).stdout.strip(), what="the worker pod to go")
    paused = get(ns, "people")["status"]
    assert 0 < paused["recordsRead"] < rows
    assert condition(paused, "Progressing")["reason"] == "Suspended"

    kubectl("csvimport", "resume", "people", "-n", ns)
    status = wait_for(ns, "people", "Succeeded", timeout=300)
    assert status["recordsSent"] == rows
    assert set(rows_in(bootstrap_servers, kafka_topic)) == set(range(1, rows + 1))


def test_restart_from_a_row_then_reset(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], kafka_topic: str,
        bootstrap_servers: str) -> None:
    rows = 2000
    apply(make_import(upload(csv_rows(rows))))
    first = wait_for(ns, "people", "Succeeded")

    restarted = kubectl("csvimport", "restart", "people", "--from-row", "1501", "-n", ns).stdout
    assert "starts at row 1501" in restarted
    second = wait_until(lambda: (s := get(ns, "people")["status"]).get("phase") == "Succeeded"
                        and s["jobName"] != first["jobName"] and s, what="the restarted run to succeed")
    assert rows_in(bootstrap_servers, kafka_topic) == [*range(1, rows + 1), *range(1501, rows + 1)]

    kubectl("csvimport", "reset", "people", "-n", ns)
    wait_until(lambda: (s := get(ns, "people")["status"]).get("phase") == "Succeeded"
               and s["jobName"] not in (first["jobName"], second["jobName"]), what="the reset run to succeed")
    assert rows_in(bootstrap_servers, kafka_topic) == [*range(1, rows + 1), *range(1501, rows + 1),
                                                       *range(1, rows + 1)]
    jobs = kubectl("get", "jobs", "-n", ns, "-l", "csvkafka.io/import=people", "-o", "name").stdout.split()
    assert len(jobs) == 1  # each new run replaced the previous run's Job


def test_shards_import_every_row_once(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], kafka_topic: str,
        bootstrap_servers: str) -> None:
    rows = 30_000
    apply(make_import(upload(csv_rows(rows)), parallelism=3, capacity="spot"))
    status = wait_for(ns, "people", "Succeeded", timeout=300)
    assert status["recordsSent"] == rows
    assert [(s["index"], s["state"]) for s in status["shards"]] == [(0, "completed"), (1, "completed"),
                                                                    (2, "completed")]
    ids = sorted(int(record.json()["id"]) for record in consume_all(bootstrap_servers, kafka_topic))
    assert ids == list(range(1, rows + 1))


def test_an_operator_restarted_mid_import_starts_no_second_job(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]]) -> None:
    rows = 200_000
    apply(make_import(upload(csv_rows(rows)), sink={"producer": THROTTLE}, checkpoint={"everySeconds": 1}))
    wait_until(lambda: get(ns, "people").get("status", {}).get("phase") == "Running", what="phase Running")
    layout = Layout.from_env()
    operator_service.service(layout).stop()
    try:
        time.sleep(5)
    finally:
        operator_service.up(layout)
    status = wait_for(ns, "people", "Succeeded", timeout=300)
    assert status["recordsSent"] == rows
    jobs = kubectl("get", "jobs", "-n", ns, "-l", "csvkafka.io/import=people", "-o", "name").stdout.split()
    assert jobs == [f"job.batch/{status['jobName']}"]


@pytest.mark.parametrize(("retention", "kept"), [("Retain", True), ("Delete", False)])
def test_deleting_the_import_removes_its_job_and_keeps_or_deletes_the_checkpoint(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], dynamodb: Any,
        checkpoint_table: str, retention: str, kept: bool) -> None:
    apply(make_import(upload(csv_rows(100)), checkpoint={"retention": retention}))
    status = wait_for(ns, "people", "Succeeded")
    kubectl("delete", "csvimport", "people", "-n", ns, "--timeout=60s")
    wait_until(lambda: not kubectl("get", "jobs", "-n", ns, "-o", "name").stdout.strip(), what="the Job to go")
    item = dynamodb.get_item(TableName=checkpoint_table, Key={"job_id": {"S": status["shards"][0]["jobId"]}})
    assert ("Item" in item) is kept


# -- refusals and failures -------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"badRows": {"action": "dead-letter"}}, "badRows.action dead-letter needs badRows.deadLetterTopic"),
    ({"parallelism": 65}, "spec.parallelism in body should be less than or equal to 64"),
    ({"parallelism": 4, "restart": {"id": "a", "fromRow": 10}}, "restart.fromRow other than 1 needs parallelism 1"),
    ({"sink": {"auth": {"mechanism": "scram-sha-512"}}}, "SCRAM authentication needs sink.auth.username"),
    ({"capacity": "gpu"}, 'Unsupported value: "gpu"'),
])
def test_nonsense_is_refused_with_a_readable_message(
        ns: str, make_import: Callable[..., dict[str, Any]], changes: dict[str, Any], message: str) -> None:
    refused = apply(make_import("s3://bucket/data.csv", **changes), check=False)
    assert refused.returncode != 0
    assert message in refused.stderr


def test_source_and_sink_are_immutable_once_set(ns: str, make_import: Callable[..., dict[str, Any]]) -> None:
    apply(make_import("s3://bucket/data.csv", suspend=True))
    refused = apply(make_import("s3://bucket/other.csv", suspend=True, sink={"topic": "elsewhere"}), check=False)
    assert "source is immutable" in refused.stderr and "sink is immutable" in refused.stderr


def test_a_missing_object_fails_with_the_reason_and_the_fix(
        ns: str, make_import: Callable[..., dict[str, Any]], s3_bucket: str) -> None:
    apply(make_import(f"s3://{s3_bucket}/nowhere.csv"))
    status = wait_for(ns, "people", "Failed")
    failed = condition(status, "Failed")
    assert failed["reason"] == "SourceNotFound"
    assert f"s3://{s3_bucket}/nowhere.csv does not exist; check source.uri" in failed["message"]
    assert status["phase"] == "Failed"


def test_a_missing_secret_fails_until_it_is_created(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]], stack_env: dict[str, str],
        kafka_topic: str, bootstrap_servers: str) -> None:
    # The brokers' certificate is signed by the stack's own CA: the workers get it from a ConfigMap.
    kubectl("create", "configmap", "kafka-ca", "-n", ns, f"--from-file=ca.crt={stack_env['KAFKA_CA_PEM']}")
    apply(make_import(upload(csv_rows(500)), sink={
        "bootstrapServers": stack_env["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
        "auth": {"mechanism": "scram-sha-512", "tls": True, "caConfigMapRef": {"name": "kafka-ca"},
                 "username": stack_env["KAFKA_SCRAM_USERNAME"], "secretRef": {"name": "kafka-scram"}}}))
    failed = condition(wait_for(ns, "people", "Failed"), "Failed")
    assert failed["reason"] == "SecretNotFound"
    assert "kubectl create secret generic kafka-scram" in failed["message"]

    kubectl("create", "secret", "generic", "kafka-scram", "-n", ns,
            f"--from-literal=password={stack_env['KAFKA_SCRAM_PASSWORD']}")
    assert wait_for(ns, "people", "Succeeded")["recordsSent"] == 500
    assert len(rows_in(bootstrap_servers, kafka_topic)) == 500
    job = json.loads(kubectl("get", "jobs", "-n", ns, "-l", "csvkafka.io/import=people", "-o", "json").stdout)
    args = job["items"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert stack_env["KAFKA_SCRAM_PASSWORD"] not in " ".join(args)


def test_an_unreachable_broker_is_retried_with_the_reason_shown(
        ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]]) -> None:
    apply(make_import(upload(csv_rows(10)), sink={"bootstrapServers": "127.0.0.1:1"}))
    status = wait_until(lambda: (s := get(ns, "people").get("status", {})) and s.get("conditions")
                        and condition(s, "Progressing")["reason"] == "KafkaUnreachable" and s,
                        what="Progressing reason KafkaUnreachable", timeout=180)
    assert status["phase"] != "Failed"
    progressing = condition(status, "Progressing")
    assert progressing["status"] == "True"
    assert "check sink.bootstrapServers" in progressing["message"] and "(retrying)" in progressing["message"]

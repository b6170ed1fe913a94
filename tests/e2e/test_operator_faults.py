"""Imports that would never end, ended by the operator on the local stack's real nodes: a worker frozen
mid-import (SIGSTOP, as a process wedged in a syscall or a dead connection looks from outside) is shown
Stalled and replaced, and an import past spec.activeDeadlineSeconds fails with DeadlineExceeded.

Needs `dev/stack up` (the session fixture starts what is missing, the operator included).
"""

# The fixtures of test_operator_imports are imported by name, and named again as the tests' arguments.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack import nodes as stack_nodes
from devstack import operator as operator_service
from devstack.layout import REPO, Layout
from tests.e2e.test_operator_imports import (  # noqa: F401  (fixtures)
    THROTTLE,
    apply,
    condition,
    csv_rows,
    get,
    kubectl,
    make_import,
    ns,
    operator,
    rows_in,
    upload,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e

ROWS = 400_000
STALL_TIMEOUT_SECONDS = 20


@pytest.fixture(scope="module")
def current_operator(operator: None) -> None:
    """The operator runs this checkout's code: one started before its last change is started again
    (a long-lived stack outlives edits; a fresh one starts current already)."""
    layout = Layout.from_env()
    service = operator_service.service(layout)
    newest = max(p.stat().st_mtime for p in (REPO / "operator" / "csvkafka_operator").glob("*.py"))
    if service.pid_file.exists() and service.pid_file.stat().st_mtime < newest:
        service.stop()
    operator_service.up(layout)


def worker_pod(namespace: str) -> dict[str, Any]:
    [pod] = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "csvkafka.io/import=people", "-o", "json",
                               "--field-selector=status.phase=Running").stdout)["items"]
    return dict(pod)


def worker_pid(pod: dict[str, Any]) -> int:
    """The worker's process id on its node, found the way docs/operations.md shows: crictl on the node's
    containerd."""
    layout = Layout.from_env()
    [node] = [n for n in stack_nodes.nodes(layout) if n.spec.name == pod["spec"]["nodeName"]]
    crictl = [str(layout.bin / "crictl"), f"--runtime-endpoint=unix://{node.socket}", "--timeout=20s"]
    found = subprocess.run([*crictl, "ps", "-q", "--label", f"io.kubernetes.pod.name={pod['metadata']['name']}"],
                           capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert len(found) == 1, f"containers of {pod['metadata']['name']}: {found}"
    pid = subprocess.run([*crictl, "inspect", "-o", "go-template", "--template", "{{.info.pid}}", found[0]],
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return int(pid)


@pytest.fixture
def freeze() -> Iterator[Callable[[int], None]]:
    """SIGSTOPs a process; one still there at the end is let go again."""
    frozen: list[int] = []

    def stop(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        frozen.append(pid)
    yield stop
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def events(namespace: str, reason: str) -> list[dict[str, Any]]:
    listed = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json",
                                "--field-selector", f"involvedObject.kind=CsvKafkaImport,reason={reason}").stdout)
    return list(listed["items"])


def test_a_frozen_worker_is_shown_stalled_replaced_and_the_import_ends_with_every_row_once(
        current_operator: None, ns: str, upload: Callable[..., str],
        make_import: Callable[..., dict[str, Any]], kafka_topic: str, bootstrap_servers: str,
        freeze: Callable[[int], None]) -> None:
    apply(make_import(upload(csv_rows(ROWS)), delivery="exactly-once", stallTimeout=f"{STALL_TIMEOUT_SECONDS}s",
                      sink={"producer": THROTTLE}, checkpoint={"everySeconds": 1, "leaseSeconds": 10}))
    wait_until(lambda: get(ns, "people").get("status", {}).get("recordsSent", 0) > 0, what="a first checkpoint")
    pod = worker_pod(ns)
    freeze(worker_pid(pod))
    frozen_at = get(ns, "people")["status"]["recordsRead"]

    status = wait_until(lambda: (s := get(ns, "people")["status"]) and any(
        c["type"] == "Stalled" and c["status"] == "True" for c in s.get("conditions", [])) and s,
        what="the Stalled condition", timeout=STALL_TIMEOUT_SECONDS + 60)
    stalled = condition(status, "Stalled")
    name = pod["metadata"]["name"]
    assert "shard 0 made no progress for more than spec.stallTimeout (20s)" in stalled["message"]
    assert f"its pod {name} was stopped" in stalled["message"]
    assert status["stallRestarts"] == 1 and status["shards"][0]["stalledPod"] == name
    assert status["recordsRead"] < ROWS and condition(status, "Progressing")["reason"] == "Stalled"
    [warning] = events(ns, "Stalled")
    assert warning["type"] == "Warning" and name in warning["message"]

    # The frozen process cannot act on SIGTERM: the kubelet kills it after the grace period, and the
    # Job's next pod takes over the checkpoint once the frozen worker's lease has run out.
    done = wait_for(ns, "people", "Succeeded", timeout=360)
    assert (done["recordsSent"], done["stallRestarts"]) == (ROWS, 1)
    assert condition(done, "Stalled")["status"] == "False"
    job = json.loads(kubectl("get", "job", done["jobName"], "-n", ns, "-o", "json").stdout)
    assert job["status"]["failed"] == 1  # the stopped pod counts against the Job's retries
    sent = rows_in(bootstrap_servers, kafka_topic)
    assert 0 < frozen_at < ROWS
    assert len(sent) == ROWS and set(sent) == set(range(1, ROWS + 1))


def test_an_import_past_its_deadline_fails_with_deadline_exceeded(
        current_operator: None, ns: str, upload: Callable[..., str],
        make_import: Callable[..., dict[str, Any]]) -> None:
    apply(make_import(upload(csv_rows(ROWS)), activeDeadlineSeconds=5, sink={"producer": THROTTLE}))
    status = wait_for(ns, "people", "Failed", timeout=120)
    failed = condition(status, "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert "ran longer than spec.activeDeadlineSeconds (5s)" in failed["message"]
    assert "raise spec.activeDeadlineSeconds" in failed["message"]
    assert status["recordsRead"] < ROWS
    job = json.loads(kubectl("get", "job", status["jobName"], "-n", ns, "-o", "json").stdout)
    assert job["spec"]["activeDeadlineSeconds"] == 5
    assert any(c["reason"] == "DeadlineExceeded" for c in job["status"]["conditions"])
    # The Job controller stops the pods at the deadline; a worker's graceful stop (its checkpoint first)
    # may outlast the status by a few seconds.
    wait_until(lambda: not kubectl("get", "pods", "-n", ns, "-l", "csvkafka.io/import=people",
                                   "--field-selector=status.phase=Running", "-o", "name").stdout.strip(),
               what="the import's pods to stop after the deadline", timeout=60)


@pytest.mark.parametrize(("changes", "message"), [
    ({"stallTimeout": "10 minutes"}, "stallTimeout must be a duration such as 90s, 10m or 1h30m"),
    ({"stallTimeout": "5s"}, "either 0s (off) or at least 10s"),
    # The defaults: leaseSeconds 30, everySeconds 5.
    ({"stallTimeout": "35s"}, "stallTimeout must be at least checkpoint.leaseSeconds + 2 x checkpoint.everySeconds"),
    ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds in body should be greater than or equal to 1"),
])
def test_a_stall_timeout_or_deadline_that_cannot_work_is_refused_with_a_readable_message(
        current_operator: None, ns: str, make_import: Callable[..., dict[str, Any]], changes: dict[str, Any],
        message: str) -> None:
    refused = apply(make_import("s3://bucket/data.csv", **changes), check=False)
    assert refused.returncode != 0
    assert message in refused.stderr

"""The operator SIGKILLed while it runs imports on the three-broker cluster (RF 3, min.insync.replicas=2,
like MSK): no finalizer, no graceful stop, nothing written on the way out. Each time the stack starts it
again, and it must pick every import up where its Jobs are, never make a second Job for one, and see
each to Succeeded with every row of its file in its topic exactly once.

Needs `dev/stack up` (the session fixture starts what is missing, the operator included).
"""

# The fixtures of test_operator_imports are imported by name, and named again as the tests' arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import pytest

from devstack import operator as operator_service
from devstack.layout import Layout
from tests.e2e.test_operator_faults import current_operator  # noqa: F401  (fixture)
from tests.e2e.test_operator_imports import (  # noqa: F401  (fixtures)
    THROTTLE,
    apply,
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
from tests.support import new_topics

pytestmark = pytest.mark.e2e

IMPORTS = 5
# Several hundred thousand rows each, a different count for each import (a row in the wrong topic shows).
ROWS = [250_000 + 10_000 * i for i in range(IMPORTS)]
IMPORT_LABEL = "csvkafka.io/import"


class JobWatch:
    """Every Job created in a namespace while the watch is open, by import: a watch sees each one,
    even one that lives a moment, which a poll of `kubectl get jobs` could miss."""

    def __init__(self, kube_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.created: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._batch = client.BatchV1Api(kube_client)
        self._namespace = namespace
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._watch, name="job-watch", daemon=True)
        self._version = ""

    def __enter__(self) -> JobWatch:
        listed = self._batch.list_namespaced_job(self._namespace)
        for job in listed.items:
            self._record(job)
        self._version = str(listed.metadata.resource_version)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._closed.set()
        self._thread.join(timeout=30)
        if self._error is not None and kind is None:
            raise AssertionError(f"the watch of Jobs failed: {self._error!r}")

    def _record(self, job: Any) -> None:
        labels = job.metadata.labels or {}
        self.created[labels.get(IMPORT_LABEL, "")].add((job.metadata.name, job.metadata.uid))

    def _watch(self) -> None:
        from kubernetes import watch

        try:
            while not self._closed.is_set():
                # Short server-side timeouts, so that closing the watch ends this thread soon.
                for event in watch.Watch().stream(self._batch.list_namespaced_job, self._namespace,
                                                  resource_version=self._version, timeout_seconds=2):
                    assert event["type"] != "ERROR", event["raw_object"]
                    job = event["object"]
                    self._version = str(job.metadata.resource_version)
                    if event["type"] == "ADDED":
                        self._record(job)
        except Exception as error:  # reported by __exit__
            self._error = error


def sigkill_operator(layout: Layout) -> None:
    """kill -9, as the OOM killer or a lost node does: the operator has no chance to tidy up."""
    service = operator_service.service(layout)
    pid = service.pid()
    assert pid is not None, "the operator is not running"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not service.running(), what="the operator to die", timeout=10)


def phases(ns: str) -> dict[str, str]:
    listed = json.loads(kubectl("get", "csvimports", "-n", ns, "-o", "json").stdout)["items"]
    return {item["metadata"]["name"]: item.get("status", {}).get("phase", "") for item in listed}


def rows_sent(ns: str) -> int:
    listed = json.loads(kubectl("get", "csvimports", "-n", ns, "-o", "json").stdout)["items"]
    return sum(item.get("status", {}).get("recordsSent", 0) for item in listed)


@pytest.fixture
def ha_topics(stack_env: dict[str, str]) -> Iterator[list[str]]:
    with new_topics(stack_env["CSVKAFKA_KAFKA_HA_BOOTSTRAP"], IMPORTS) as names:
        yield names


def test_the_operator_sigkilled_three_times_during_five_imports_makes_no_second_job_and_loses_no_row(
        current_operator: None, ns: str, upload: Callable[..., str], make_import: Callable[..., dict[str, Any]],
        ha_topics: list[str], stack_env: dict[str, str], kube_client: Any) -> None:
    bootstrap = stack_env["CSVKAFKA_KAFKA_HA_BOOTSTRAP"]
    names = [f"import-{i}" for i in range(IMPORTS)]
    manifests = [make_import(upload(csv_rows(rows), f"data-{i}.csv"), name=name, delivery="exactly-once",
                             sink={"bootstrapServers": bootstrap, "topic": topic, "producer": THROTTLE},
                             checkpoint={"everySeconds": 1})
                 for i, (name, rows, topic) in enumerate(zip(names, ROWS, ha_topics, strict=True))]
    layout = Layout.from_env()
    kills: list[dict[str, str]] = []

    def kill_and_start_again() -> None:
        kills.append(phases(ns))
        sigkill_operator(layout)
        time.sleep(3)  # the imports run on without it for a moment
        operator_service.up(layout)  # as the stack (or a Deployment) starts it: bounded by its liveness wait

    def wait_for_share(share: float) -> None:
        wait_until(lambda: rows_sent(ns) >= share * sum(ROWS), what=f"{share:.0%} of the rows sent", timeout=300)

    try:
        with JobWatch(kube_client, ns) as jobs:
            for manifest in manifests:
                apply(manifest)
            # The first kill while the operator is making the Jobs, the others a third and two thirds in.
            wait_until(lambda: jobs.created, what="a first Job", timeout=120)
            kill_and_start_again()
            for share in (1 / 3, 2 / 3):
                wait_for_share(share)
                kill_and_start_again()
            done = {name: wait_for(ns, name, "Succeeded", timeout=300) for name in names}
    finally:
        operator_service.up(layout)

    # Every kill came while at least one import was still running.
    assert len(kills) == 3 and all(any(phase != "Succeeded" for phase in at_kill.values()) for at_kill in kills)
    assert {name: len(jobs.created[name]) for name in names} == dict.fromkeys(names, 1), dict(jobs.created)
    for name, rows, topic in zip(names, ROWS, ha_topics, strict=True):
        status = done[name]
        assert (status["recordsSent"], status["recordsRead"]) == (rows, rows), name
        [(job_name, _)] = jobs.created[name]
        assert status["jobName"] == job_name
        job = json.loads(kubectl("get", "job", job_name, "-n", ns, "-o", "json").stdout)
        assert job["status"].get("failed", 0) == 0, name
        assert sorted(rows_in(bootstrap, topic)) == list(range(1, rows + 1)), name

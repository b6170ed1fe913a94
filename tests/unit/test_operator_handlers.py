"""The kopf handlers hand each event to the Reconciler as it needs it."""

from __future__ import annotations

from typing import Any

import kopf

from csvkafka_operator import handlers
from csvkafka_operator.settings import Settings


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def reconcile(self, namespace: str, name: str) -> None:
        self.calls.append(("reconcile", namespace, name))

    def job_event(self, job: dict[str, Any], *, deleted: bool) -> None:
        self.calls.append(("job_event", job["metadata"]["name"], deleted))


def handler(registry: kopf.OperatorRegistry, id_: str) -> Any:
    every = [*registry._changing.get_all_handlers(), *registry._watching.get_all_handlers(),
             *registry._spawning.get_all_handlers()]
    found = [h for h in every if h.id == id_]
    return found[0].fn


def test_job_events_and_timer_ticks_reach_the_reconciler() -> None:
    registry, recorder = kopf.OperatorRegistry(), Recorder()
    handlers.register(registry, recorder, Settings(worker_image="csvkafka:test"))
    job = kopf.Body({"metadata": {"name": "people-1", "namespace": "data"}})
    handler(registry, "job-changed")(body=job, type="DELETED")
    handler(registry, "job-changed")(body=job, type="MODIFIED")
    handler(registry, "refresh")(namespace="data", name="people")
    handler(registry, "queued")(namespace="data", name="queued-one")
    assert recorder.calls == [("job_event", "people-1", True), ("job_event", "people-1", False),
                              ("reconcile", "data", "people"), ("reconcile", "data", "queued-one")]


def progressing(reason: str, **status: Any) -> Any:
    # kopf's Status is a view of the body's status.
    return kopf.Status({"status": {"conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
                                   **status}})


def test_a_running_import_is_polled_and_a_queued_one_only_rechecked_now_and_then() -> None:
    assert handlers.polled(progressing("Running")) and not handlers.queued(progressing("Running"))
    assert handlers.queued(progressing("Queued")) and not handlers.polled(progressing("Queued"))
    assert not handlers.polled(progressing("Completed", completionTime="2026-01-16T10:01:00Z"))
    assert handlers.polled(kopf.Status({"status": {}}))

"""The operator-wide cap on worker pods per namespace: which imports' Jobs may start, and in what order.

The pods a namespace holds are the parallelism of its active Jobs (not ended, not suspended), as the
Job events and the operator's own creations report them. An import whose Job would go over the cap
waits in its namespace's queue; the first in the queue starts as soon as it fits, so imports start in
the order they were queued. An import wider than the cap starts once nothing else runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

Json = dict[str, Any]
SETTING = "CSVKAFKA_MAX_PODS_PER_NAMESPACE (chart value operator.maxWorkerPodsPerNamespace)"
# How long a namespace's count, kept up to date by the Job events, is trusted before it is listed again.
RECOUNT_SECONDS = 60.0


def pods_held(job: Json) -> int:
    """The worker pods a Job runs or will run: its parallelism while it is active, else none."""
    spec, status = job.get("spec", {}), job.get("status", {})
    ended = any(c.get("type") in ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
                and c.get("status") == "True" for c in status.get("conditions") or [])
    if ended or spec.get("suspend"):
        return 0
    return int(spec.get("parallelism", 1) or 0)


class PodCap:
    def __init__(self, cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._jobs: dict[str, dict[str, int]] = {}  # namespace -> Job name -> pods held
        self._counted_at: dict[str, float] = {}
        self._queues: dict[str, dict[str, int]] = {}  # namespace -> import name -> pods wanted, in order

    @property
    def enabled(self) -> bool:
        return self.cap > 0

    @contextmanager
    def starting(self, namespace: str) -> Iterator[None]:
        """Held from the decision to start a Job until the Job is recorded, so two starts never share a slot."""
        with self._guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            yield

    def needs_count(self, namespace: str) -> bool:
        with self._guard:
            counted = self._counted_at.get(namespace)
            return counted is None or self._clock() - counted > RECOUNT_SECONDS

    def count(self, namespace: str, jobs: Iterable[Json]) -> None:
        """The namespace's Jobs as listed: replaces what the events said so far."""
        with self._guard:
            self._jobs[namespace] = {job["metadata"]["name"]: pods_held(job) for job in jobs}
            self._counted_at[namespace] = self._clock()

    def observe(self, job: Json, *, deleted: bool = False) -> None:
        meta = job["metadata"]
        with self._guard:
            held = self._jobs.setdefault(meta["namespace"], {})
            if deleted:
                held.pop(meta["name"], None)
            else:
                held[meta["name"]] = pods_held(job)

    def in_use(self, namespace: str) -> int:
        with self._guard:
            return sum(self._jobs.get(namespace, {}).values())

    def admit(self, namespace: str, name: str, pods: int) -> str | None:
        """None if the import's Job may start now (it leaves the queue); else why it waits (it joins or stays
        in the queue). Call within `starting(namespace)`, and record the created Job before leaving it."""
        if not self.enabled or pods == 0:
            self.leave(namespace, name)
            return None
        with self._guard:
            queue = self._queues.setdefault(namespace, {})
            queue[name] = pods  # joins at the end; a wider or narrower spec keeps its place
            used = sum(self._jobs.get(namespace, {}).values())
            if next(iter(queue)) == name and (used + pods <= self.cap or used == 0):
                del queue[name]
                return None
        # The same words while it waits: a message that moved with the queue would patch every waiting
        # import's status each time one starts.
        return (f"queued: the worker pods running in namespace {namespace} are at the operator's cap of {self.cap} "
                f"per namespace ({SETTING}) for this import's {pods}; it starts when pods free up, in the order "
                "the imports were queued")

    def leave(self, namespace: str, name: str) -> None:
        """The import no longer waits (deleted, or its spec no longer asks for a run)."""
        with self._guard:
            self._queues.get(namespace, {}).pop(name, None)

    def next_up(self, namespace: str) -> list[str]:
        """The queued imports that may fit now, in queue order: the ones to reconcile when pods free up."""
        with self._guard:
            used = sum(self._jobs.get(namespace, {}).values())
            free = self.cap - used
            chosen: list[str] = []
            for name, pods in self._queues.get(namespace, {}).items():
                if pods > free and (chosen or used > 0):
                    break
                chosen.append(name)
                free -= pods
            return chosen

    def waiting(self, namespace: str) -> bool:
        with self._guard:
            return bool(self._queues.get(namespace))

"""Stalled workers: a shard whose checkpoint has not moved for spec.stallTimeout while its pod runs.

The checkpoint's own timestamp is not the measure: a live worker may rewrite an unchanged position.
So the status remembers when the operator last saw each shard's position move (lastProgressTime),
and a pod is given the whole timeout from its container's start, so that a replacement is never
judged by its predecessor's silence. Pure: pods come in as the API's JSON, shards as ShardStatus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csvkafka_operator.jobs import CONTAINER
from csvkafka_operator.models import ImportStatus, ShardStatus
from csvkafka_operator.timestamps import epoch, rfc3339
from csvkafka_worker.checkpoint import State

Json = Mapping[str, Any]

# Set by the Job controller on the pods of an Indexed Job; a plain Job's one pod is shard 0.
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SETTLED = (State.COMPLETED.value, State.FAILED.value)


@dataclass(frozen=True)
class Stall:
    index: int
    pod: str


def moved(before: ShardStatus | None, now: ShardStatus) -> bool:
    """The shard's position differs from the one last seen (or none was seen)."""
    return before is None or before.last_progress_time is None or (
        (before.records_read, before.bytes_read) != (now.records_read, now.bytes_read))


def track(before: ShardStatus | None, shard: ShardStatus, now: datetime) -> ShardStatus:
    """The shard with when it last moved, and its stalled pod kept until it moves again."""
    if before is not None and not moved(before, shard):
        return shard.model_copy(update={"last_progress_time": before.last_progress_time,
                                        "stalled_pod": before.stalled_pod})
    return shard.model_copy(update={"last_progress_time": rfc3339(now), "stalled_pod": None})


def find(shards: Iterable[ShardStatus], pods: Iterable[Json], timeout_seconds: int, now: datetime) -> list[Stall]:
    """The running worker pods whose shard has not moved for timeout_seconds since they started."""
    if timeout_seconds <= 0:
        return []
    by_index = {shard.index: shard for shard in shards}
    found = []
    for pod in pods:
        started = _running_since(pod)
        shard = by_index.get(_index(pod))
        if started is None or shard is None or shard.state in SETTLED:
            continue
        quiet_since = max(started, epoch(shard.last_progress_time))
        if now.timestamp() - quiet_since >= timeout_seconds:
            found.append(Stall(shard.index, pod["metadata"]["name"]))
    return found


def _index(pod: Json) -> int:
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(INDEX_ANNOTATION, "0")
    return int(raw) if str(raw).isdigit() else -1


def _running_since(pod: Json) -> float | None:
    """When the worker container started, for a pod that runs and is not being stopped already."""
    if pod.get("metadata", {}).get("deletionTimestamp") or pod.get("status", {}).get("phase") != "Running":
        return None
    for container in pod.get("status", {}).get("containerStatuses") or []:
        running = container.get("state", {}).get("running")
        if container.get("name") == CONTAINER and running is not None:
            return epoch(running.get("startedAt")) or None
    return None


def newly_stalled(before: ImportStatus, job: str, shards: Iterable[ShardStatus]) -> list[str]:
    """The pods these shards name as stalled that the status before did not: the ones to stop now."""
    earlier = {s.index: s.stalled_pod for s in before.shards} if before.job_name == job else {}
    return [s.stalled_pod for s in shards if s.stalled_pod and s.stalled_pod != earlier.get(s.index)]

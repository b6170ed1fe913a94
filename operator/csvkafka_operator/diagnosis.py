"""What an import's pods say about its run: the telling state of each, as reason and message.

Pods come in as the API's JSON. A failed worker's own words are in its termination message (the
tail of its log, by FallbackToLogsOnError): the last JSON line with event "error" names the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csvkafka_operator.jobs import CONTAINER
from csvkafka_operator.models import Capacity
from csvkafka_operator.timestamps import epoch
from csvkafka_worker.errors import Reason
from csvkafka_worker.exit_codes import ExitCode

Json = Mapping[str, Any]

# Container waiting reasons that stop a pod from ever starting until someone acts.
STUCK = frozenset({"CreateContainerConfigError", "CreateContainerError", "ErrImagePull", "ImagePullBackOff",
                   "InvalidImageName"})
PLACEMENT = {
    Capacity.ON_DEMAND: "nodes labelled eks.amazonaws.com/capacityType=ON_DEMAND (an on-demand managed node group)",
    Capacity.SPOT: "nodes labelled eks.amazonaws.com/capacityType=SPOT (a Spot managed node group)",
    Capacity.FARGATE: "a Fargate profile that selects this namespace and the pod's csvkafka.io labels",
}


@dataclass(frozen=True)
class PodReport:
    """The most telling thing one pod says about the run, and when it said it (epoch seconds)."""

    reason: str
    message: str
    at: float
    failed: bool


def reports(pods: Iterable[Json], capacity: Capacity) -> list[PodReport]:
    """What the pods say, oldest first."""
    return sorted((r for r in (_report(p, capacity) for p in pods) if r is not None), key=lambda r: r.at)


def _report(pod: Json, capacity: Capacity) -> PodReport | None:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    name = meta.get("name", "?")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    since = epoch(status.get("startTime") or meta.get("creationTimestamp"))
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return PodReport("Unschedulable", f"pod {name} cannot be scheduled ({scheduled.get('message', '')}); "
                                          f"capacity {capacity} needs {PLACEMENT[capacity]}", since, failed=False)
    for container in status.get("containerStatuses") or []:
        if container.get("name") != CONTAINER:
            continue
        waiting = container.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in STUCK:
            return PodReport(waiting["reason"], f"pod {name}: {waiting.get('message', waiting['reason'])}", since,
                             failed=False)
        ended = container.get("state", {}).get("terminated") or {}
        if ended and ended.get("exitCode", 0) != 0:
            at = epoch(ended.get("finishedAt")) or since
            disruption = conditions.get("DisruptionTarget", {})
            if disruption.get("status") == "True" or ended.get("exitCode") == ExitCode.INTERRUPTED_IN_JOB:
                why = disruption.get("message") or disruption.get("reason") or "stopped"
                return PodReport(Reason.INTERRUPTED, f"pod {name} was interrupted ({why}); a new pod continues from "
                                                "the last checkpoint", at, failed=False)
            if ended.get("reason") == "OOMKilled":
                return PodReport("OOMKilled", f"pod {name} ran out of memory; raise spec.resources.limits.memory",
                                 at, failed=True)
            reason, message = worker_error(ended.get("message", ""), ended.get("exitCode", 1))
            return PodReport(reason, f"pod {name}: {message}", at, failed=True)
    return None


def worker_error(termination_message: str, exit_code: int) -> tuple[str, str]:
    """The reason and message of the worker's last error line; its exit code's meaning otherwise."""
    lines = termination_message.strip().splitlines()
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the log tail may cut the first line short
            if isinstance(record, dict) and record.get("event") == "error" and record.get("reason"):
                return str(record["reason"]), str(record.get("message", ""))
    errors = [line.removeprefix("csvkafka: error: ") for line in lines if line.startswith("csvkafka: error: ")]
    if errors:
        message = errors[-1]
    elif exit_code > 128:
        # Killed by a signal before it could say why: OOM, a node lost, or a kill -9.
        message = f"the worker was killed by signal {exit_code - 128} (exit code {exit_code}) before it could report"
    else:
        message = f"the worker exited with code {exit_code}"
    return (Reason.BAD_INPUT if exit_code == ExitCode.BAD_INPUT else "WorkerFailed"), message

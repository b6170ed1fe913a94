"""The pod status the agent reports, shaped as kubelet shapes it. Pure: dicts in, dicts out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POD_IP = "127.0.0.1"
TERMINAL = frozenset({"Succeeded", "Failed"})
# kubelet's FallbackToLogsOnError limits (pkg/kubelet/kuberuntime: maxTerminationMessageLogLines
# and maxTerminationMessageLogLength).
TAIL_LINES = 80
TAIL_BYTES = 2048


@dataclass
class ContainerState:
    """What the agent knows about one container; `state` is one of the API's waiting/running/terminated."""

    name: str
    image: str
    state: dict[str, Any] = field(default_factory=lambda: waiting("PodInitializing"))
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    container_id: str = ""

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def exit_code(self) -> int | None:
        term = self.state.get("terminated")
        return None if term is None else int(term["exitCode"])


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    body = {"reason": reason}
    if message:
        body["message"] = message
    return {"waiting": body}


def terminated(
    exit_code: int,
    started_at: str | None,
    finished_at: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    container_id: str = "",
    signal: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "finishedAt": finished_at,
    }
    if started_at:
        body["startedAt"] = started_at
    if message:
        body["message"] = message
    if container_id:
        body["containerID"] = container_id
    if signal:
        body["signal"] = signal
    return {"terminated": body}


def unknown_terminated(finished_at: str) -> dict[str, Any]:
    """What kubelet reports for a container it can no longer account for when the pod ends."""
    return terminated(
        137, None, finished_at, reason="ContainerStatusUnknown",
        message="The container could not be located when the pod was terminated",
    )


def tail_message(log: bytes, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str:
    """FallbackToLogsOnError: the last `lines` lines of the log, cut to its last `limit` bytes."""
    chunks = log.splitlines(keepends=True)[-lines:]
    data = b"".join(chunks)[-limit:]
    return data.decode("utf-8", errors="replace")


def container_status(c: ContainerState) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "ready": c.running,
        "started": c.running,
        "restartCount": c.restart_count,
        "state": c.state,
        "lastState": c.last_state,
    }
    if c.container_id:
        status["containerID"] = c.container_id
    return status


def _condition(
    existing: Mapping[str, Mapping[str, Any]],
    type_: str,
    ok: bool,
    now: str,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    previous = existing.get(type_)
    # The transition time moves only when the status flips, as everywhere in Kubernetes.
    since = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
    cond: dict[str, Any] = {"type": type_, "status": status, "lastTransitionTime": since or now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _names(cs: Iterable[ContainerState]) -> str:
    return "[" + " ".join(c.name for c in cs) + "]"


def pod_conditions(
    pod: Mapping[str, Any],
    phase: str,
    init: Sequence[ContainerState],
    sidecars: frozenset[str],
    main: Sequence[ContainerState],
    now: str,
) -> list[dict[str, Any]]:
    existing = {c.get("type", ""): c for c in pod.get("status", {}).get("conditions") or []}
    done = phase in TERMINAL
    pending_init = [c for c in init if c.name not in sidecars and c.exit_code != 0]
    unready = [c for c in (*[c for c in init if c.name in sidecars], *main) if not c.running]
    conds = [_condition(existing, "PodReadyToStartContainers", not done or phase == "Succeeded", now)]
    if done and phase == "Succeeded":
        conds.append(_condition(existing, "Initialized", True, now, "PodCompleted"))
    elif pending_init:
        conds.append(_condition(existing, "Initialized", False, now, "ContainersNotInitialized",
                                f"containers with incomplete status: {_names(pending_init)}"))
    else:
        conds.append(_condition(existing, "Initialized", True, now))
    for type_ in ("ContainersReady", "Ready"):
        if done:
            conds.append(_condition(existing, type_, False, now, "PodCompleted"))
        elif unready:
            conds.append(_condition(existing, type_, False, now, "ContainersNotReady",
                                    f"containers with unready status: {_names(unready)}"))
        else:
            conds.append(_condition(existing, type_, True, now))
    if "PodScheduled" not in existing:
        # A pod bound by setting spec.nodeName never passed the scheduler; kubelet adds this then.
        conds.append(_condition(existing, "PodScheduled", True, now))
    return conds


def status_patch(
    pod: Mapping[str, Any],
    phase: str,
    init: Sequence[ContainerState],
    sidecars: frozenset[str],
    main: Sequence[ContainerState],
    now: str,
    start_time: str,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """A strategic-merge patch of pods/status: conditions merge by type, so conditions others own
    (the scheduler's PodScheduled, the eviction's DisruptionTarget) survive it."""
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": pod_conditions(pod, phase, init, sidecars, main, now),
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": start_time,
        "containerStatuses": [container_status(c) for c in main],
        "reason": reason,
        "message": message,
    }
    if init:
        status["initContainerStatuses"] = [container_status(c) for c in init]
    generation = pod.get("metadata", {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    return {"status": status}


def lost_pod_patch(pod: Mapping[str, Any], now: str, reason: str, message: str) -> dict[str, Any]:
    """Marks a pod whose processes the agent no longer has as Failed, as kubelet does for a pod it
    finds bound to itself after losing its state."""
    status = pod.get("status", {})
    spec = pod.get("spec", {})

    def settle(statuses: list[dict[str, Any]] | None, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_name = {s.get("name"): s for s in statuses or []}
        out = []
        for cspec in specs:
            old = by_name.get(cspec["name"], {})
            state = old.get("state") or {}
            if "terminated" not in state:
                state = unknown_terminated(now)
            out.append({
                "name": cspec["name"], "image": cspec.get("image", ""), "imageID": old.get("imageID", ""),
                "ready": False, "started": False, "restartCount": old.get("restartCount", 0),
                "state": state, "lastState": old.get("lastState") or {},
            })
        return out

    patch: dict[str, Any] = {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "containerStatuses": settle(status.get("containerStatuses"), spec.get("containers") or []),
        "conditions": [
            _condition({c.get("type", ""): c for c in status.get("conditions") or []}, t, False, now, "PodFailed")
            for t in ("ContainersReady", "Ready")
        ],
    }
    if spec.get("initContainers"):
        patch["initContainerStatuses"] = settle(status.get("initContainerStatuses"), spec["initContainers"])
    return {"status": patch}

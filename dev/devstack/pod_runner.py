"""Runs one pod as local processes, one thread per pod, reporting through pods/status like kubelet.

Layout of a pod's directory (kubelet-like, so a person can find things):
  <state>/<namespace>_<name>_<uid>/work/                 working directory shared by its containers
  <state>/<namespace>_<name>_<uid>/logs/<container>/<n>.log   stdout+stderr of attempt n
  <state>/<namespace>_<name>_<uid>/pids/<container>.pid       "<pid> <start ticks>" of the live process
  <state>/<namespace>_<name>_<uid>/serviceaccount.kubeconfig  the pod's ServiceAccount token
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import pod_env, pod_status
from devstack.pod_config import TRANSIENT, AgentContext, PodConfig, now_rfc3339, pod_dir_name
from devstack.pod_processes import StartFailed, exit_code_of, signal_group, spawn
from devstack.pod_status import ContainerState, terminated, waiting

log = logging.getLogger("node-agent")

STRATEGIC = "application/strategic-merge-patch+json"
TICK = 0.5
CONFIG_RETRY_SECONDS = 3.0
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0
# A container that ran this long before failing restarts without back-off, as in kubelet.
BACKOFF_RESET_AFTER = 60.0
# On agent shutdown the stack waits for us; never keep it waiting for a pod's full grace period.
SHUTDOWN_GRACE_CAP = 10.0
FORCE_DELETE_GRACE = 2.0


@dataclass
class Container:
    spec: dict[str, Any]
    kind: str  # "init", "sidecar" (an init container with restartPolicy Always) or "main"
    view: ContainerState
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    attempts: int = 0
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    delay: float = 0.0  # the back-off now being waited out

    @property
    def name(self) -> str:
        return str(self.spec["name"])


class PodWorker(threading.Thread):
    def __init__(self, ctx: AgentContext, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.ctx = ctx
        self.core = ctx.core
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.key = f"{self.namespace}/{self.pod_name}"
        self.dir = ctx.state_dir / pod_dir_name(pod)
        self._pod = pod
        self._gone = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        spec = pod.get("spec", {})
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.init = [
            Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init",
                      ContainerState(c["name"], c.get("image", "")))
            for c in spec.get("initContainers") or []
        ]
        self.main = [Container(c, "main", ContainerState(c["name"], c.get("image", "")))
                     for c in spec.get("containers") or []]
        self.start_time = (pod.get("status") or {}).get("startTime") or now_rfc3339()
        self.start_mono = time.monotonic()
        self._sent: dict[str, Any] | None = None
        self._sent_conditions: dict[str, dict[str, Any]] = {}
        self.config = PodConfig(ctx, pod, self.dir)

    # -- called from the watch thread --------------------------------------------------------

    def update(self, pod: dict[str, Any] | None) -> None:
        """A newer version of the pod, or None when the object is gone from the API."""
        with self._lock:
            if pod is None:
                self._gone = True
            else:
                self._pod = pod
        self._wake.set()

    # -- the worker thread -------------------------------------------------------------------

    def latest(self) -> tuple[dict[str, Any], bool]:
        with self._lock:
            return self._pod, self._gone

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s: worker failed; killing its processes", self.key)
            self._kill_all(0)

    def _run(self) -> None:
        (self.dir / "work").mkdir(parents=True, exist_ok=True)
        log.info("pod %s: accepted (uid %s, dir %s)", self.key, self.uid, self.dir)
        for c in self.main:
            c.view.state = waiting("PodInitializing" if self.init else "ContainerCreating")
        while True:
            pod, gone = self.latest()
            if gone:
                log.info("pod %s: object deleted; killing its processes", self.key)
                self._kill_all(FORCE_DELETE_GRACE)
                return
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(deleting=True)
                return
            if self.ctx.stopping.is_set():
                self._kill_all(min(self._grace(pod), SHUTDOWN_GRACE_CAP))
                return
            deadline = pod["spec"].get("activeDeadlineSeconds")
            if deadline is not None and time.monotonic() - self.start_mono > float(deadline):
                log.info("pod %s: active deadline of %ss exceeded", self.key, deadline)
                self._terminate(deleting=False, reason="DeadlineExceeded",
                                message="Pod was active on the node longer than the specified deadline")
                return
            self._poll()
            phase = self._advance()
            if phase in pod_status.TERMINAL:
                # What is still running (sidecars) ends with the pod.
                self._kill_all(self._grace(pod))
                self._publish(phase, final=True)
                return
            self._publish(phase)
            self._wake.wait(TICK)
            self._wake.clear()

    # -- lifecycle ---------------------------------------------------------------------------

    def _advance(self) -> str:
        """Starts what is due and returns the pod phase."""
        now = time.monotonic()
        for c in self.init:
            if c.kind == "sidecar":
                # kubelet moves on once a sidecar has started; it is restarted whenever it exits.
                if c.proc is None:
                    self._start_when_due(c, now, restart=True)
                if c.attempts == 0:
                    return "Pending"
                continue
            code = c.view.exit_code
            if code == 0:
                continue
            if c.proc is not None:
                return "Pending"
            if code is not None and self.restart_policy == "Never":
                return "Failed"
            self._start_when_due(c, now, restart=True)
            return "Pending"

        for c in self.main:
            if c.proc is None:
                code = c.view.exit_code if c.attempts else None
                restart = self.restart_policy == "Always" or (
                    self.restart_policy == "OnFailure" and code != 0)
                if c.attempts == 0 or restart:
                    self._start_when_due(c, now, restart=True)
        if any(c.proc is not None or (c.attempts and c.view.exit_code is None) for c in self.main):
            return "Running"
        # Here no main container runs and none waits for a restart it is owed ...
        codes = [c.view.exit_code for c in self.main]
        all_ran = all(c.attempts for c in self.main) and all(code is not None for code in codes)
        # ... so the pod is over unless the restart policy brings something back.
        over = self.restart_policy == "Never" or (
            self.restart_policy == "OnFailure" and all(code == 0 for code in codes))
        if all_ran and over:
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        return "Running" if any(c.attempts for c in self.main) else "Pending"

    def _start_when_due(self, c: Container, now: float, *, restart: bool) -> None:
        if now < c.next_start:
            if c.attempts and "terminated" in c.view.state:
                c.view.last_state = c.view.state
                c.view.state = waiting(
                    "CrashLoopBackOff",
                    f"back-off {c.delay:.0f}s restarting failed container={c.name} "
                    f"pod={self.pod_name}_{self.namespace}({self.uid})",
                )
            return
        if not restart and c.attempts:
            return
        self._start(c)

    def _start(self, c: Container) -> None:
        pod, _ = self.latest()
        try:
            env, argv = self.config.container(pod, c.spec)
        except pod_env.ConfigError as exc:
            c.view.state = waiting("CreateContainerConfigError", str(exc))
            c.next_start = time.monotonic() + CONFIG_RETRY_SECONDS
            log.info("pod %s: container %s: CreateContainerConfigError: %s", self.key, c.name, exc)
            return
        if c.attempts:
            c.view.restart_count += 1
            if "terminated" in c.view.state:
                c.view.last_state = c.view.state
        attempt = c.view.restart_count
        c.attempts += 1
        c.log_path = self.dir / "logs" / c.name / f"{attempt}.log"
        c.started_at = now_rfc3339()
        c.started_mono = time.monotonic()
        try:
            c.proc = spawn(argv, cwd=self.dir / "work", env=env, log_path=c.log_path,
                           pid_file=self._pid_file(c))
        except StartFailed as failed:
            c.view.state = terminated(failed.code, c.started_at, now_rfc3339(), reason="StartError",
                                      message=str(failed))
            self._schedule_restart(c)
            log.info("pod %s: container %s: StartError (exit %d): %s", self.key, c.name, failed.code, failed)
            return
        c.view.container_id = f"process://{c.proc.pid}"
        c.view.state = {"running": {"startedAt": c.started_at}}
        log.info("pod %s: container %s started (pid %d, restart %d): %s; log %s",
                 self.key, c.name, c.proc.pid, attempt, " ".join(argv), c.log_path)

    def _pid_file(self, c: Container) -> Path:
        return self.dir / "pids" / f"{c.name}.pid"

    def _poll(self) -> None:
        for c in [*self.init, *self.main]:
            if c.proc is None:
                continue
            returncode = c.proc.poll()
            if returncode is not None:
                self._exited(c, returncode)

    def _exited(self, c: Container, returncode: int) -> None:
        assert c.proc is not None
        pid = c.proc.pid
        # The container is its process group: what the main process left running dies with it.
        signal_group(pid, signal.SIGKILL)
        self._pid_file(c).unlink(missing_ok=True)
        c.proc = None
        code, sig = exit_code_of(returncode)
        message = None
        if code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and c.log_path:
            # Nothing is mounted at terminationMessagePath, so the file is always empty and the
            # fallback applies to every failure.
            try:
                message = pod_status.tail_message(c.log_path.read_bytes()) or None
            except OSError:
                message = None
        c.view.state = terminated(code, c.started_at, now_rfc3339(), message=message,
                                  container_id=f"process://{pid}", signal=sig)
        log.info("pod %s: container %s exited with %d; log %s", self.key, c.name, code, c.log_path)
        self._schedule_restart(c)

    def _schedule_restart(self, c: Container) -> None:
        ran = time.monotonic() - c.started_mono
        if ran >= BACKOFF_RESET_AFTER:
            c.backoff = BACKOFF_START
        c.delay = c.backoff
        c.next_start = time.monotonic() + c.delay
        c.backoff = min(c.backoff * 2, BACKOFF_MAX)

    # -- termination -------------------------------------------------------------------------

    def _grace(self, pod: Mapping[str, Any]) -> float:
        meta, spec = pod["metadata"], pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace if grace is not None else 30)

    def _running(self) -> list[Container]:
        return [c for c in (*self.init, *self.main) if c.proc is not None]

    def _kill_all(self, grace: float) -> None:
        """SIGTERM to every container's process group, SIGKILL to what outlives `grace` seconds."""
        observed = time.monotonic()
        for c in self._running():
            assert c.proc is not None
            log.info("pod %s: container %s: SIGTERM to process group %d (grace %.0fs)",
                     self.key, c.name, c.proc.pid, grace)
            signal_group(c.proc.pid, signal.SIGTERM)
        killed = False
        while self._running():
            self._poll()
            if not self._running():
                break
            pod, _ = self.latest()
            # A second, shorter delete (e.g. --force) shortens the deadline, as in kubelet.
            limit = min(grace, self._grace(pod)) if pod["metadata"].get("deletionTimestamp") else grace
            if not killed and time.monotonic() - observed >= limit:
                for c in self._running():
                    assert c.proc is not None
                    log.info("pod %s: container %s: grace period over; SIGKILL", self.key, c.name)
                    signal_group(c.proc.pid, signal.SIGKILL)
                killed = True
            self._wake.wait(0.1)
            self._wake.clear()

    def _terminate(self, *, deleting: bool, reason: str | None = None, message: str | None = None) -> None:
        pod, _ = self.latest()
        log.info("pod %s: terminating (%s)", self.key, "deleted" if deleting else reason)
        self._kill_all(self._grace(pod))
        finished = now_rfc3339()
        for c in (*self.init, *self.main):
            if "terminated" not in c.view.state:
                last = c.view.last_state
                c.view.state = last if "terminated" in last else pod_status.unknown_terminated(finished)
        # Like kubelet: a pod stopped on purpose succeeded only if every container exited 0.
        ok = all(c.view.exit_code == 0 for c in self.main) and reason is None
        self._publish("Succeeded" if ok else "Failed", final=True, reason=reason, message=message)
        if deleting:
            self._delete_object()

    def _delete_object(self) -> None:
        for attempt in range(10):
            try:
                self.core.delete_namespaced_pod(
                    self.pod_name, self.namespace, grace_period_seconds=0,
                    body=client.V1DeleteOptions(grace_period_seconds=0,
                                                preconditions=client.V1Preconditions(uid=self.uid)),
                )
                log.info("pod %s: deleted", self.key)
                return
            except ApiException as exc:
                if exc.status in (404, 409):
                    return
                log.warning("pod %s: delete failed: %s %s", self.key, exc.status, exc.reason)
            except TRANSIENT as exc:
                log.warning("pod %s: delete failed: %s", self.key, exc)
            time.sleep(min(2.0 ** attempt, 5.0))

    # -- reporting ---------------------------------------------------------------------------

    def _publish(self, phase: str, *, final: bool = False, reason: str | None = None,
                 message: str | None = None) -> None:
        pod, gone = self.latest()
        existing = {c.get("type", ""): c for c in (pod.get("status") or {}).get("conditions") or []}
        existing.update(self._sent_conditions)
        view = {**pod, "status": {**(pod.get("status") or {}), "conditions": list(existing.values())}}
        patch = pod_status.status_patch(
            view, phase, [c.view for c in self.init],
            frozenset(c.name for c in self.init if c.kind == "sidecar"),
            [c.view for c in self.main], now_rfc3339(), self.start_time, reason, message,
        )
        if patch == self._sent or gone:
            return
        attempts = 10 if final else 1
        for attempt in range(attempts):
            try:
                self.core.patch_namespaced_pod_status(self.pod_name, self.namespace, patch,
                                                      _content_type=STRATEGIC)
                break
            except ApiException as exc:
                if exc.status == 404:
                    self.update(None)
                    return
                log.warning("pod %s: status update failed: %s %s", self.key, exc.status, exc.body or exc.reason)
                if exc.status == 422:
                    # Invalid (e.g. the pod is already terminal): retrying cannot help.
                    break
            except TRANSIENT as exc:
                log.warning("pod %s: status update failed: %s", self.key, exc)
            if attempt + 1 < attempts:
                time.sleep(min(2.0 ** attempt, 5.0))
        else:
            return
        if self._sent is None or self._sent["status"]["phase"] != phase:
            log.info("pod %s: phase %s", self.key, phase)
        self._sent = patch
        self._sent_conditions = {c["type"]: c for c in patch["status"]["conditions"]}


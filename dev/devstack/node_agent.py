"""The node agent: a stand-in for kubelet that runs pods as local processes.

    PYTHONPATH=dev .venv/bin/python -m devstack.node_agent --kubeconfig ADMIN_KUBECONFIG \
        --state-dir DIR [--extra-path DIR ...] [--image-entrypoint REPOSITORY=COMMAND ...]

It registers three EKS-like nodes (devstack.nodes), watches every pod bound to them and runs each
in a thread of its own (devstack.pod_runner), reporting through pods/status like kubelet.
SIGTERM/SIGINT stop every pod's processes; pods a previous run left behind are marked Failed
(reason NodeAgentRestarted), since their processes are gone or have just been killed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack import nodes, pod_status
from devstack.pod_config import AgentContext, now_rfc3339, pod_dir_name, raw
from devstack.pod_processes import kill_leftovers
from devstack.pod_runner import PodWorker

log = logging.getLogger("node-agent")

WATCH_SECONDS = 120
LOST_REASON = "NodeAgentRestarted"
LOST_MESSAGE = "the node agent restarted; the processes of this pod are gone"
_POD_DIR = re.compile(r"^[a-z0-9-]+_[^/]+_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def evict_pod(core_api: client.CoreV1Api, namespace: str, name: str) -> None:
    """Evicts a pod through the Eviction API, as a Spot interruption handler (or a drain) does.

    The API server checks PodDisruptionBudgets, adds the DisruptionTarget condition (reason
    EvictionByEvictionAPI) and deletes the pod with its grace period; the agent then stops it.
    """
    body = client.V1Eviction(
        api_version="policy/v1", kind="Eviction",
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
    )
    # The server answers with a Status, not an Eviction: skip the client's model conversion.
    core_api.create_namespaced_pod_eviction(name, namespace, body, _preload_content=False)


class Agent:
    def __init__(self, ctx: AgentContext, keeper: nodes.NodeKeeper) -> None:
        self.ctx = ctx
        self.core = ctx.core
        self.keeper = keeper
        self.node_names = keeper.names
        self.workers: dict[str, PodWorker] = {}
        self.deleting: set[str] = set()

    # -- pods ------------------------------------------------------------------------------

    def _ours(self, pod: dict[str, Any]) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self.node_names

    def handle(self, event_type: str, pod: dict[str, Any]) -> None:
        if not self._ours(pod) or self.ctx.stopping.is_set():
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if event_type == "DELETED":
            if worker is not None:
                worker.update(None)
            self.workers.pop(uid, None)
            self.deleting.discard(uid)
            return
        if worker is not None:
            # A finished worker still gets updates; it ignores them. A terminal pod being deleted
            # is handled below either way.
            worker.update(pod)
            if worker.is_alive():
                return
        phase = (pod.get("status") or {}).get("phase")
        if phase in pod_status.TERMINAL:
            if pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion(pod)
            return
        if worker is None:
            self._start(pod)

    def _start(self, pod: dict[str, Any]) -> None:
        worker = PodWorker(self.ctx, pod)
        self.workers[pod["metadata"]["uid"]] = worker
        worker.start()

    def _finish_deletion(self, pod: dict[str, Any]) -> None:
        """kubelet removes a terminal pod's object once it is marked for deletion; so does the agent."""
        meta = pod["metadata"]
        if meta["uid"] in self.deleting:
            return
        self.deleting.add(meta["uid"])
        try:
            self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0,
                                            preconditions=client.V1Preconditions(uid=meta["uid"])),
            )
            log.info("pod %s/%s: terminal and marked for deletion; deleted", meta["namespace"], meta["name"])
        except ApiException as exc:
            if exc.status not in (404, 409):
                self.deleting.discard(meta["uid"])
                log.warning("pod %s/%s: delete failed: %s %s", meta["namespace"], meta["name"],
                            exc.status, exc.reason)

    def mark_lost(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if (pod.get("status") or {}).get("phase") not in pod_status.TERMINAL:
            patch = pod_status.lost_pod_patch(pod, now_rfc3339(), LOST_REASON, LOST_MESSAGE)
            try:
                self.core.patch_namespaced_pod_status(
                    meta["name"], meta["namespace"], patch, _content_type=nodes.STRATEGIC)
                log.info("pod %s: lost by a previous agent run; marked Failed (%s)", key, LOST_REASON)
            except ApiException as exc:
                log.warning("pod %s: marking it lost failed: %s %s", key, exc.status, exc.body or exc.reason)
                return
        if meta.get("deletionTimestamp"):
            self._finish_deletion(pod)

    # -- watch -----------------------------------------------------------------------------

    def relist(self, *, first: bool) -> str:
        listing = raw(self.core.list_pod_for_all_namespaces, field_selector="spec.nodeName!=")
        pods = [p for p in listing.get("items") or [] if self._ours(p)]
        seen = {p["metadata"]["uid"] for p in pods}
        if first:
            self._clean_pod_dirs({pod_dir_name(p) for p in pods})
            for pod in pods:
                if self._started_before(pod):
                    self.mark_lost(pod)
                else:
                    # Bound while no agent ran: nothing of it ever ran, so it starts now.
                    self.handle("ADDED", pod)
            return str(listing["metadata"]["resourceVersion"])
        for uid, worker in list(self.workers.items()):
            if uid not in seen:
                # Deleted while the watch was down.
                worker.update(None)
                self.workers.pop(uid, None)
        for pod in pods:
            self.handle("MODIFIED", pod)
        return str(listing["metadata"]["resourceVersion"])

    def _started_before(self, pod: dict[str, Any]) -> bool:
        """Whether an earlier agent run took the pod on: it reported a start time or made its dir."""
        return bool((pod.get("status") or {}).get("startTime")) or (
            self.ctx.state_dir / pod_dir_name(pod)).exists()

    def _clean_pod_dirs(self, keep: set[str]) -> None:
        if not self.ctx.state_dir.is_dir():
            return
        for entry in self.ctx.state_dir.iterdir():
            if entry.is_dir() and _POD_DIR.match(entry.name) and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def watch_forever(self) -> None:
        first = True
        while not self.ctx.stopping.is_set():
            try:
                resource_version = self.relist(first=first)
                first = False
                while not self.ctx.stopping.is_set():
                    resource_version = self._watch_once(resource_version)
            except _Expired:
                log.info("pod watch expired; listing again")
            except ApiException as exc:
                log.warning("pod watch failed: %s %s; listing again", exc.status, exc.reason)
                self.ctx.stopping.wait(1.0)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning("pod watch failed: %s; listing again", exc)
                self.ctx.stopping.wait(1.0)
            except Exception:
                # A bug in handling one event must not leave the agent deaf to every later one.
                log.exception("pod watch failed unexpectedly; listing again")
                self.ctx.stopping.wait(1.0)

    def _watch_once(self, resource_version: str) -> str:
        response: Any = self.core.list_pod_for_all_namespaces(
            field_selector="spec.nodeName!=", watch=True, resource_version=resource_version,
            allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS,
            _preload_content=False, _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            for line in _lines(response):
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                resource_version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self.handle(event["type"], obj)
                if self.ctx.stopping.is_set():
                    break
        finally:
            response.close()
            response.release_conn()
        return resource_version

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.ctx.stopping.set()
        live = [w for w in self.workers.values() if w.is_alive()]
        log.info("shutting down: stopping %d pod(s)", len(live))
        for worker in live:
            worker.update(worker.latest()[0])
        deadline = time.monotonic() + 15
        for worker in live:
            worker.join(max(0.0, deadline - time.monotonic()))


def _lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed (chunked) response, each as soon as it is complete."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def base_environment(extra_path: list[str]) -> dict[str, str]:
    """What a container inherits from the agent: PATH (with the stack's tools first), HOME, LANG."""
    path = [*extra_path, *os.environ.get("PATH", os.defpath).split(os.pathsep)]
    env = {"PATH": os.pathsep.join(p for p in path if p)}
    for key in ("HOME", "LANG"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def parse_entrypoints(values: list[str]) -> dict[str, list[str]]:
    out = {}
    for value in values:
        repo, sep, command = value.partition("=")
        if not sep or not repo or not command:
            raise SystemExit(f"--image-entrypoint wants REPOSITORY=COMMAND, got {value!r}")
        out[repo] = shlex.split(command)
    return out


def make_api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    # One connection per pod worker thread plus the heartbeat, without the pool-full warnings.
    configuration.connection_pool_maxsize = 64
    return client.ApiClient(configuration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack.node_agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, help="an admin kubeconfig")
    parser.add_argument("--state-dir", required=True, type=Path, help="pod working dirs and logs")
    parser.add_argument("--extra-path", action="append", default=[],
                        help="directory put first on the PATH of every container (repeatable)")
    parser.add_argument("--image-entrypoint", action="append", default=[],
                        help="REPOSITORY=COMMAND: the ENTRYPOINT of an image, for containers "
                             "that give only args (repeatable)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    api = make_api_client(args.kubeconfig)
    configuration = api.configuration
    ctx = AgentContext(
        api=api, state_dir=state_dir, base_env=base_environment(args.extra_path),
        server=str(configuration.host), ca_file=str(configuration.ssl_ca_cert),
        stopping=threading.Event(), entrypoints=parse_entrypoints(args.image_entrypoint),
    )
    stopping = ctx.stopping

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    kill_leftovers(state_dir)
    keeper = nodes.NodeKeeper(api)
    keeper.register()
    agent = Agent(ctx, keeper)
    threading.Thread(target=keeper.run, args=(stopping,), name="heartbeat", daemon=True).start()
    threading.Thread(target=agent.watch_forever, name="pod-watch", daemon=True).start()
    log.info("node agent running: nodes %s, state %s", ", ".join(sorted(keeper.names)), state_dir)
    while not stopping.wait(1.0):
        pass
    agent.shutdown()
    log.info("node agent stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

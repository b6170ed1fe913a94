"""The node agent runs pods bound to its EKS-like nodes as local processes, reporting like kubelet.

Needs a running control plane with the agent (dev/stack up) and KUBECONFIG pointing at its admin
kubeconfig (`eval "$(dev/stack env)"`).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dev"))

from devstack.node_agent import evict_pod

pytestmark = pytest.mark.e2e

FARGATE = "fargate-ip-10-0-1-10.ec2.internal"
SPOT = "ip-10-0-2-20.ec2.internal"
ON_DEMAND = "ip-10-0-3-30.ec2.internal"
FARGATE_TOLERATION = {"key": "eks.amazonaws.com/compute-type", "operator": "Equal", "value": "fargate",
                      "effect": "NoSchedule"}
# Lets a test read a pod's final status after the agent deleted it; the test removes it.
KEEP = "e2e.csvkafka.io/keep"
T = TypeVar("T")


@pytest.fixture(scope="module")
def kube_admin() -> client.ApiClient:
    path = os.environ.get("KUBECONFIG")
    if not path or not Path(path).exists():
        pytest.skip('KUBECONFIG is not set: run eval "$(dev/stack env)" first')
    api: client.ApiClient = config.new_client_from_config(path)
    return api


@pytest.fixture
def core(kube_admin: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_admin)


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = f"agent-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    for pod in raw(core.list_namespaced_pod, name)["items"]:
        if KEEP in (pod["metadata"].get("finalizers") or []):
            release(core, name, pod["metadata"]["name"])
    core.delete_namespace(name)


# -- helpers ---------------------------------------------------------------------------------------


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(call(*args, _preload_content=False, **kwargs).data)
    return data


def wait_for(probe: Callable[[], T | None], *, timeout: float = 60, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def pod_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    for key in ("labels", "annotations", "finalizers"):
        if key in spec:
            meta[key] = spec.pop(key)
    container = {"name": "main", "image": "busybox", "command": command, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"restartPolicy": "Never", "containers": [container], **spec}}


def create_pod(core: client.CoreV1Api, ns: str, manifest: dict[str, Any]) -> str:
    core.create_namespaced_pod(ns, client.V1Pod.model_validate(manifest))
    return str(manifest["metadata"]["name"])


def read_pod(core: client.CoreV1Api, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return raw(core.read_namespaced_pod, name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_phase(core: client.CoreV1Api, ns: str, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = read_pod(core, ns, name)
        return pod if pod and pod.get("status", {}).get("phase") in phases else None

    return wait_for(probe, timeout=timeout, what=f"pod {ns}/{name} to be {'/'.join(phases)}")


def main_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = pod["status"]["containerStatuses"]
    return next(s for s in statuses if s["name"] == "main")


def condition(pod: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in pod["status"].get("conditions") or [] if c["type"] == type_), None)


def release(core: client.CoreV1Api, ns: str, name: str) -> None:
    try:
        core.patch_namespaced_pod(name, ns, [{"op": "remove", "path": "/metadata/finalizers"}],
                                  _content_type="application/json-patch+json")
    except ApiException as exc:
        if exc.status not in (404, 422):
            raise


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


# -- tests -----------------------------------------------------------------------------------------


def test_a_job_pod_runs_to_job_complete(kube_admin: client.ApiClient, core: client.CoreV1Api, ns: str) -> None:
    batch = client.BatchV1Api(kube_admin)
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi; exit 0"]}],
        }}},
    }
    batch.create_namespaced_job(ns, client.V1Job.model_validate(job))

    def complete() -> dict[str, Any] | None:
        status = raw(batch.read_namespaced_job_status, "hello", ns).get("status", {})
        done = {c["type"]: c["status"] for c in status.get("conditions") or []}
        assert done.get("Failed") != "True", status
        return status if done.get("Complete") == "True" else None

    status = wait_for(complete, timeout=90, what="Job condition Complete")
    assert status["succeeded"] == 1
    (pod,) = raw(core.list_namespaced_pod, ns, label_selector="job-name=hello")["items"]
    assert pod["spec"]["nodeName"] in {SPOT, ON_DEMAND}
    terminated = main_status(pod)["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["startedAt"] <= terminated["finishedAt"]


def test_an_indexed_job_pod_sees_its_completion_index(kube_admin: client.ApiClient, ns: str) -> None:
    batch = client.BatchV1Api(kube_admin)
    # Indexed Job pods are named <job>-<index>-<suffix>; the env var comes from the index annotation.
    check = 'case "$HOSTNAME" in shards-"$JOB_COMPLETION_INDEX"-*) exit 0;; esac; echo "$HOSTNAME"; exit 1'
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "shards"},
        "spec": {"completions": 2, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 0,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "main", "image": "busybox", "command": ["sh", "-c", check]}]}}},
    }
    batch.create_namespaced_job(ns, client.V1Job.model_validate(job))

    def finished() -> dict[str, Any] | None:
        status = raw(batch.read_namespaced_job_status, "shards", ns).get("status", {})
        states = {c["type"] for c in status.get("conditions") or [] if c["status"] == "True"}
        return status if states & {"Complete", "Failed"} else None

    status = wait_for(finished, timeout=90, what="the indexed Job to finish")
    assert status.get("succeeded") == 2, status
    assert status.get("completedIndexes") == "0,1"


def test_a_spot_node_selector_lands_on_the_spot_node(core: client.CoreV1Api, ns: str) -> None:
    create_pod(core, ns, pod_manifest("on-spot", ["true"],
                                      nodeSelector={"eks.amazonaws.com/capacityType": "SPOT"}))
    pod = wait_phase(core, ns, "on-spot", "Succeeded", "Failed")
    assert pod["spec"]["nodeName"] == SPOT
    assert pod["status"]["phase"] == "Succeeded"


def test_the_fargate_node_takes_only_pods_that_tolerate_its_taint(core: client.CoreV1Api, ns: str) -> None:
    selector = {"eks.amazonaws.com/compute-type": "fargate"}
    create_pod(core, ns, pod_manifest("no-toleration", ["true"], nodeSelector=selector))
    create_pod(core, ns, pod_manifest("tolerates", ["true"], nodeSelector=selector,
                                      tolerations=[FARGATE_TOLERATION]))

    ran = wait_phase(core, ns, "tolerates", "Succeeded", "Failed")
    assert (ran["spec"]["nodeName"], ran["status"]["phase"]) == (FARGATE, "Succeeded")

    def unschedulable() -> dict[str, Any] | None:
        pod = read_pod(core, ns, "no-toleration")
        scheduled = condition(pod, "PodScheduled") if pod else None
        return pod if scheduled and scheduled.get("reason") == "Unschedulable" else None

    refused = wait_for(unschedulable, timeout=30, what="the scheduler to refuse the untolerating pod")
    scheduled = condition(refused, "PodScheduled")
    assert scheduled is not None and "untolerated taint" in scheduled["message"]
    time.sleep(3)
    pod = read_pod(core, ns, "no-toleration")
    assert pod is not None
    assert not pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"


def test_env_comes_from_secrets_configmaps_and_the_downward_api(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="creds"),
                                                      string_data={"password": "s3cret", "user": "alice"}))
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"),
                                                             data={"topic": "rows", "MODE": "fast"}))
    env: list[dict[str, Any]] = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "TOPIC", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "topic"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {"name": "ABSENT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        {"name": "GREETING", "value": "hello-$(TEAM)"},
    ]
    # The process prints what it sees and fails on purpose, so its log becomes the termination message.
    script = ('echo "VARS $PASSWORD|$TOPIC|$POD_NAME|$POD_NS|$NODE|$TEAM|$NOTE|$GREETING|$1|${ABSENT-unset}";'
              ' echo "MODE=$CFG_MODE"; echo "NAMES $(env | cut -d= -f1 | sort | tr "\\n" " ")"; exit 7')
    create_pod(core, ns, pod_manifest(
        "env", ["sh", "-c", script, "sh", "$(TOPIC)-arg"], labels={"team": "data"}, annotations={"note": "n1"},
        container={"env": env, "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                   "terminationMessagePolicy": "FallbackToLogsOnError"},
    ))
    pod = wait_phase(core, ns, "env", "Failed", "Succeeded")
    message = main_status(pod)["state"]["terminated"]["message"]
    lines = dict(line.split(" ", 1) for line in message.splitlines() if line.startswith(("VARS", "NAMES")))
    node = pod["spec"]["nodeName"]
    assert lines["VARS"] == f"s3cret|rows|env|{ns}|{node}|data|n1|hello-data|rows-arg|unset"
    assert "MODE=fast" in message
    names = set(lines["NAMES"].split())
    # Only the container's own variables, the agent's PATH/HOME/LANG and what a pod always gets.
    defined = {str(e["name"]) for e in env} - {"ABSENT"}
    assert names - defined - {"CFG_MODE", "CFG_topic"} <= {"PATH", "HOME", "LANG", "HOSTNAME", "KUBECONFIG",
                                                         "PWD", "SHLVL", "OLDPWD", "_"}
    assert {"CFG_MODE", "PATH", "KUBECONFIG"} <= names


def test_a_missing_secret_holds_the_pod_pending_until_it_exists(core: client.CoreV1Api, ns: str) -> None:
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}]
    create_pod(core, ns, pod_manifest("waits", ["sh", "-c", 'test "$P" = v'], container={"env": env}))

    def config_error() -> dict[str, Any] | None:
        pod = read_pod(core, ns, "waits")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        waiting = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = wait_for(config_error, timeout=30, what="CreateContainerConfigError")
    assert waiting["message"] == 'secret "later" not found'
    pod = read_pod(core, ns, "waits")
    assert pod is not None and pod["status"]["phase"] == "Pending"

    core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="later"),
                                                      string_data={"k": "v"}))
    pod = wait_phase(core, ns, "waits", "Succeeded", "Failed", timeout=30)
    assert pod["status"]["phase"] == "Succeeded"
    assert main_status(pod)["restartCount"] == 0


def test_a_failing_command_reports_exit_code_and_log_tail(core: client.CoreV1Api, ns: str) -> None:
    noisy = "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done; echo boom >&2; exit 3"
    create_pod(core, ns, pod_manifest("fails", ["sh", "-c", noisy],
                                      container={"terminationMessagePolicy": "FallbackToLogsOnError"}))
    create_pod(core, ns, pod_manifest("quiet", ["sh", "-c", "echo hidden; exit 4"]))
    create_pod(core, ns, pod_manifest("no-such-command", ["csvkafka-no-such-command"]))

    terminated = main_status(wait_phase(core, ns, "fails", "Failed"))["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    lines = terminated["message"].splitlines()
    # The last 80 lines of stdout+stderr: line-21 .. line-99, then stderr's "boom".
    assert lines[0] == "line-21" and lines[-2:] == ["line-99", "boom"] and len(lines) == 80

    quiet = main_status(wait_phase(core, ns, "quiet", "Failed"))["state"]["terminated"]
    assert quiet["exitCode"] == 4
    assert "message" not in quiet  # policy File: nothing is mounted, so there is no message

    start = main_status(wait_phase(core, ns, "no-such-command", "Failed"))["state"]["terminated"]
    assert (start["exitCode"], start["reason"]) == (127, "StartError")
    assert "executable file not found" in start["message"]


def test_restart_policies_restart_containers_and_count_restarts(core: client.CoreV1Api, ns: str) -> None:
    # The working directory survives restarts (like an emptyDir), so the second attempt succeeds.
    flaky = "if [ -f tried ]; then exit 0; fi; touch tried; exit 1"
    create_pod(core, ns, pod_manifest("on-failure", ["sh", "-c", flaky], restartPolicy="OnFailure"))
    create_pod(core, ns, pod_manifest("always", ["sh", "-c", "exit 2"], restartPolicy="Always"))

    pod = wait_phase(core, ns, "on-failure", "Succeeded", "Failed", timeout=60)
    status = main_status(pod)
    assert pod["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1

    def restarted_twice() -> dict[str, Any] | None:
        p = read_pod(core, ns, "always")
        statuses = (p or {}).get("status", {}).get("containerStatuses") or []
        return p if statuses and statuses[0]["restartCount"] >= 2 else None

    pod = wait_for(restarted_twice, timeout=60, what="two restarts under restartPolicy Always")
    assert pod["status"]["phase"] == "Running"
    assert main_status(pod)["lastState"]["terminated"]["exitCode"] == 2


def test_init_containers_run_first_in_the_shared_working_dir(core: client.CoreV1Api, ns: str) -> None:
    manifest = pod_manifest("with-init", ["sh", "-c", "test $(cat ready) = yes"])
    manifest["spec"]["initContainers"] = [
        {"name": "prepare", "image": "busybox", "command": ["sh", "-c", "sleep 1; echo yes > ready"]},
    ]
    create_pod(core, ns, manifest)
    pod = wait_phase(core, ns, "with-init", "Succeeded", "Failed")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_an_evicted_pod_gets_disruption_target_and_its_process_stops(core: client.CoreV1Api, ns: str) -> None:
    create_pod(core, ns, pod_manifest(
        "evicted", ["sleep", "300"], finalizers=[KEEP], terminationGracePeriodSeconds=10,
        nodeSelector={"eks.amazonaws.com/capacityType": "SPOT"},
    ))
    running = wait_phase(core, ns, "evicted", "Running")
    pid = int(main_status(running)["containerID"].removeprefix("process://"))
    assert alive(pid)

    evict_pod(core, ns, "evicted")

    pod = wait_phase(core, ns, "evicted", "Failed", "Succeeded", timeout=30)
    target = condition(pod, "DisruptionTarget")
    assert target is not None
    assert (target["status"], target["reason"]) == ("True", "EvictionByEvictionAPI")
    assert pod["status"]["phase"] == "Failed"
    terminated = main_status(pod)["state"]["terminated"]
    assert terminated["exitCode"] == 143  # 128 + SIGTERM: sleep died of the signal
    assert not alive(pid)
    release(core, ns, "evicted")
    wait_for(lambda: read_pod(core, ns, "evicted") is None, timeout=30, what="the evicted pod to go away")


def test_deletion_escalates_to_sigkill_after_the_grace_period(core: client.CoreV1Api, ns: str) -> None:
    stubborn = "trap '' TERM; while true; do sleep 1; done"
    create_pod(core, ns, pod_manifest("stubborn", ["sh", "-c", stubborn], finalizers=[KEEP],
                                      terminationGracePeriodSeconds=2))
    wait_phase(core, ns, "stubborn", "Running")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", ns)
    pod = wait_phase(core, ns, "stubborn", "Failed", "Succeeded", timeout=30)
    assert time.monotonic() - started >= 1.5
    terminated = main_status(pod)["state"]["terminated"]
    assert terminated["exitCode"] == 137  # 128 + SIGKILL
    release(core, ns, "stubborn")


def test_a_pod_acts_with_exactly_its_serviceaccounts_rights(
    kube_admin: client.ApiClient, core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
    list_pods = ["kubectl", "get", "pods", "-n", ns, "-o", "name"]
    spec = {"serviceAccountName": "reader", "container": {"terminationMessagePolicy": "FallbackToLogsOnError"}}
    create_pod(core, ns, pod_manifest("forbidden", list_pods, **spec))
    pod = wait_phase(core, ns, "forbidden", "Failed", "Succeeded")
    terminated = main_status(pod)["state"]["terminated"]
    assert terminated["exitCode"] != 0
    assert "forbidden" in terminated["message"]
    assert f"system:serviceaccount:{ns}:reader" in terminated["message"]

    rbac = client.RbacAuthorizationV1Api(kube_admin)
    rbac.create_namespaced_role(ns, client.V1Role.model_validate({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }))
    rbac.create_namespaced_role_binding(ns, client.V1RoleBinding.model_validate({
        "metadata": {"name": "reader-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
    }))
    create_pod(core, ns, pod_manifest("allowed", list_pods, **spec))
    pod = wait_phase(core, ns, "allowed", "Failed", "Succeeded")
    assert pod["status"]["phase"] == "Succeeded", main_status(pod)

    # Without a token the process has no credentials at all.
    create_pod(core, ns, pod_manifest("no-token", ["sh", "-c", 'test -z "$KUBECONFIG"'],
                                      serviceAccountName="reader", automountServiceAccountToken=False))
    assert wait_phase(core, ns, "no-token", "Failed", "Succeeded")["status"]["phase"] == "Succeeded"

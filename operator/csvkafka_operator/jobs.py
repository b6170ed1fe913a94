"""The import's Job, rendered as a pure function of the resource and the operator's settings."""

from __future__ import annotations

import hashlib
from typing import Any

from csvkafka_operator.models import Capacity, CsvKafkaImport, Resources
from csvkafka_operator.settings import Settings
from csvkafka_worker.exit_codes import ExitCode
from csvkafka_worker.options import FLAGS, to_cli_args

CONTAINER = "worker"
LABEL_IMPORT = "csvkafka.io/import"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "csvkafka-operator"

# Spot gives two minutes' notice and drains honour the grace period; the worker stops reading,
# flushes and checkpoints within its shutdown timeout, which stays inside the grace period.
GRACE_SECONDS = 60
SHUTDOWN_TIMEOUT_SECONDS = 45
# Attempts per shard for failures that a retry may cure (exit 75, crashes). Interruptions
# (DisruptionTarget) are not counted, and bad input (exit 65) fails at once.
RETRIES = 6
# Numeric, so that the kubelet can verify runAsNonRoot without reading the image's passwd.
WORKER_UID = 65532

COMPUTE_TYPE = "eks.amazonaws.com/compute-type"
CAPACITY_TYPE = "eks.amazonaws.com/capacityType"
PASSWORD_ENV = next(flag.env_name for flag in FLAGS if flag.name == "password")
# Where sink.auth.caConfigMapRef's bundle is mounted in the worker.
CA_DIR = "/etc/csvkafka/kafka-ca"
CA_FILE = f"{CA_DIR}/ca.pem"


def job_name(resource: CsvKafkaImport) -> str:
    """One name per run: the resource's uid, restart id and rerun id, so a new restart.id or rerun.id gets
    a new Job and a re-created resource never adopts the Job of its predecessor."""
    spec = resource.spec
    run = spec.restart.id if spec.restart else ""
    # Appended only when set: the Jobs of imports without a rerun keep their names.
    if spec.rerun.id is not None:
        run += f"/rerun/{spec.rerun.id}"
    digest = hashlib.sha256(f"{resource.metadata.uid}/{run}".encode()).hexdigest()[:10]
    return f"{resource.metadata.name}-{digest}"


def service_account(resource: CsvKafkaImport, settings: Settings) -> str:
    return resource.spec.service_account_name or settings.worker_service_account


def labels(resource: CsvKafkaImport) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "csvkafka",
        "app.kubernetes.io/component": "worker",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_IMPORT: resource.metadata.name,
    }


def render_job(resource: CsvKafkaImport, settings: Settings) -> dict[str, Any]:
    spec = resource.spec
    shards = spec.parallelism
    retries: dict[str, Any] = (
        # Per index, so one shard's bad luck does not use up the others' retries; any index that
        # fails for good fails the import.
        {"completionMode": "Indexed", "backoffLimitPerIndex": RETRIES, "maxFailedIndexes": 0}
        if shards > 1 else {"backoffLimit": RETRIES}
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(resource),
            "namespace": resource.metadata.namespace,
            "labels": labels(resource),
            "ownerReferences": [resource.reference()],
        },
        "spec": {
            "completions": shards,
            "parallelism": shards,
            **retries,
            "suspend": spec.suspend,
            **({"activeDeadlineSeconds": spec.active_deadline_seconds} if spec.active_deadline_seconds else {}),
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                                      "values": [int(ExitCode.BAD_INPUT)]}},
            ]},
            "template": _pod_template(resource, settings),
        },
    }


def _pod_template(resource: CsvKafkaImport, settings: Settings) -> dict[str, Any]:
    spec = resource.spec
    fargate = spec.capacity is Capacity.FARGATE
    node_selector, tolerations = _placement(spec.capacity)
    return {
        "metadata": {"labels": {**labels(resource), **(settings.fargate_labels if fargate else {})}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": service_account(resource, settings),
            # The worker never calls the Kubernetes API; IRSA mounts its own web identity token.
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": GRACE_SECONDS,
            "nodeSelector": node_selector,
            "tolerations": tolerations,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": WORKER_UID,
                "runAsGroup": WORKER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": CONTAINER,
                "image": settings.worker_image,
                "command": ["csvkafka", "run"],
                "args": _worker_args(resource, settings),
                "env": _worker_env(resource, settings),
                "resources": _resources(spec.resources, fargate=fargate),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                **({"ports": [{"name": "metrics", "containerPort": settings.worker_metrics_port}]}
                   if settings.worker_metrics_port else {}),
                **_ca_mount(resource),
            }],
            **_ca_volume(resource),
        },
    }


def _ca_volume(resource: CsvKafkaImport) -> dict[str, Any]:
    ref = resource.spec.sink.auth.ca_config_map_ref
    if ref is None:
        return {}
    return {"volumes": [{"name": "kafka-ca", "configMap": {"name": ref.name,
                                                           "items": [{"key": ref.key, "path": "ca.pem"}]}}]}


def _ca_mount(resource: CsvKafkaImport) -> dict[str, Any]:
    if resource.spec.sink.auth.ca_config_map_ref is None:
        return {}
    return {"volumeMounts": [{"name": "kafka-ca", "mountPath": CA_DIR, "readOnly": True}]}


def _placement(capacity: Capacity) -> tuple[dict[str, str], list[dict[str, str]]]:
    if capacity is Capacity.FARGATE:
        return ({COMPUTE_TYPE: "fargate"},
                [{"key": COMPUTE_TYPE, "operator": "Equal", "value": "fargate", "effect": "NoSchedule"}])
    if capacity is Capacity.SPOT:
        # No effect given: tolerates a Spot group's taint whichever effect it was created with.
        return {CAPACITY_TYPE: "SPOT"}, [{"key": CAPACITY_TYPE, "operator": "Equal", "value": "SPOT"}]
    return {CAPACITY_TYPE: "ON_DEMAND"}, []


def _worker_args(resource: CsvKafkaImport, settings: Settings) -> list[str]:
    shards = resource.spec.parallelism
    return [
        *to_cli_args(resource.spec),
        # Without it an evicted pod that checkpointed cleanly would exit 0 and count as done.
        "--interrupted-exit-code", str(int(ExitCode.INTERRUPTED_IN_JOB)),
        "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_SECONDS),
        "--progress", "log",
        "--metrics-port", str(settings.worker_metrics_port),
        *(["--ca-file", CA_FILE] if resource.spec.sink.auth.ca_config_map_ref else []),
        # The index comes from JOB_COMPLETION_INDEX; the flag carries the count.
        *(["--shard", f"0/{shards}"] if shards > 1 else []),
    ]


def _worker_env(resource: CsvKafkaImport, settings: Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    env += [var.to_api() for var in settings.worker_env]
    secret = resource.spec.sink.auth.secret_ref
    if secret is not None:
        env.append({"name": PASSWORD_ENV,
                    "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}})
    return env


def _resources(resources: Resources, *, fargate: bool) -> dict[str, Any]:
    if fargate:
        # Fargate sizes the pod from its requests and wants them equal to the limits; a limit,
        # being the larger, decides.
        sized = {**resources.requests, **resources.limits}
        return {"requests": sized, "limits": sized}
    return resources.model_dump()

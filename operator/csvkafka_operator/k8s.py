"""The operator's and the plugin's Kubernetes calls, in one thin place.

Objects go in and come out as the API's JSON (plain dicts); a missing object is None, creating one
that already exists returns the existing one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from csvkafka_operator.jobs import LABEL_IMPORT, LABEL_MANAGED_BY, MANAGED_BY
from csvkafka_operator.models import GROUP, PLURAL, VERSION

Json = dict[str, Any]
T = TypeVar("T")


def connect(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In a pod its ServiceAccount; elsewhere the kubeconfig (KUBECONFIG, ~/.kube/config)."""
    if kubeconfig is None and context is None:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, context=context)
    return api


def kubeconfig_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's (current or given) context, as kubectl would use it."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        return "default"
    chosen = next((c for c in contexts if c["name"] == context), current) if context else current
    return str(chosen.get("context", {}).get("namespace") or "default")


def _missing_is_none(call: Callable[[], T]) -> T | None:
    try:
        return call()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _json(response: Any) -> Json:
    return dict(json.loads(response.data))


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    # -- CsvKafkaImport ----------------------------------------------------------------------------

    def get_import(self, namespace: str, name: str) -> Json | None:
        return _missing_is_none(lambda: _json(self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False)))

    def patch_import(self, namespace: str, name: str, patch: Json) -> Json | None:
        return _missing_is_none(lambda: _json(self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _preload_content=False)))

    def patch_import_status(self, namespace: str, name: str, status: Json) -> None:
        _missing_is_none(lambda: self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _preload_content=False))

    # -- Jobs and their pods -----------------------------------------------------------------------

    def list_jobs(self, namespace: str, import_name: str) -> list[Json]:
        listed = _json(self.batch.list_namespaced_job(namespace, label_selector=f"{LABEL_IMPORT}={import_name}",
                                                      _preload_content=False))
        return list(listed.get("items", []))

    def list_managed_jobs(self, namespace: str) -> list[Json]:
        """Every Job of the operator's in the namespace, of all imports."""
        listed = _json(self.batch.list_namespaced_job(namespace, label_selector=f"{LABEL_MANAGED_BY}={MANAGED_BY}",
                                                      _preload_content=False))
        return list(listed.get("items", []))

    def create_job(self, job: Json) -> Json:
        meta = job["metadata"]
        try:
            return _json(self.batch.create_namespaced_job(meta["namespace"], job,  # type: ignore[arg-type]
                                                         _preload_content=False))
        except ApiException as error:
            if error.status != 409:
                raise
        existing = self.get_job(meta["namespace"], meta["name"])
        if existing is None:  # created and deleted again in between: let the next pass decide
            raise RuntimeError(f"Job {meta['name']} vanished right after it was found to exist")
        return existing

    def get_job(self, namespace: str, name: str) -> Json | None:
        return _missing_is_none(lambda: _json(self.batch.read_namespaced_job(name, namespace,
                                                                             _preload_content=False)))

    def patch_job(self, namespace: str, name: str, patch: Json) -> Json | None:
        return _missing_is_none(lambda: _json(self.batch.patch_namespaced_job(name, namespace, patch,
                                                                              _preload_content=False)))

    def delete_job(self, namespace: str, name: str) -> None:
        # Foreground: the Job object stays until its pods are gone, so "no Job left" means no worker
        # is still writing to Kafka or to the checkpoint.
        _missing_is_none(lambda: self.batch.delete_namespaced_job(
            name, namespace, propagation_policy="Foreground", _preload_content=False))

    def list_pods(self, namespace: str, job: str) -> list[Json]:
        listed = _json(self.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}",
                                                     _preload_content=False))
        return list(listed.get("items", []))

    def delete_pod(self, namespace: str, name: str) -> None:
        # With its grace period: a worker that is only slow still checkpoints on SIGTERM.
        _missing_is_none(lambda: self.core.delete_namespaced_pod(name, namespace, _preload_content=False))

    # -- what worker pods need ---------------------------------------------------------------------

    def service_account_exists(self, namespace: str, name: str) -> bool:
        return _missing_is_none(lambda: self.core.read_namespaced_service_account(
            name, namespace, _preload_content=False)) is not None

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The keys a Secret holds (its values are not kept), or None when it does not exist."""
        secret = _missing_is_none(lambda: _json(self.core.read_namespaced_secret(name, namespace,
                                                                                 _preload_content=False)))
        if secret is None:
            return None
        return frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})

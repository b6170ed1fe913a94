"""What a container is started with: its environment, its argv and its ServiceAccount credentials.

This is the I/O half of env resolution: it fetches the Secrets and ConfigMaps a container names
and mints the pod's token; devstack.pod_env does the resolving itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import pod_env
from devstack.tokens import KUBELET_TOKEN_SECONDS, PodRef, write_serviceaccount_kubeconfig

# The apiserver being unreachable for a moment (restart, overload) must never cost a pod its processes.
TRANSIENT = (urllib3.exceptions.HTTPError, OSError)


@dataclass
class AgentContext:
    """What every pod worker shares with the agent."""

    api: client.ApiClient
    state_dir: Path
    base_env: dict[str, str]
    server: str
    ca_file: str
    stopping: threading.Event
    entrypoints: dict[str, list[str]] = field(default_factory=dict)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The API's JSON for a read, without the client's model conversion (keeps Secret data base64)."""
    response = call(*args, _preload_content=False, **kwargs)
    data: dict[str, Any] = json.loads(response.data)
    return data


def pod_dir_name(pod: Mapping[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def image_repository(image: str) -> str:
    """`registry/path/name:tag@digest` → `registry/path/name` (what --image-entrypoint matches)."""
    name = image.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


class PodConfig:
    """Builds each container's process environment for one pod; the pod's token is minted once."""

    def __init__(self, ctx: AgentContext, pod: Mapping[str, Any], pod_dir: Path) -> None:
        self.ctx = ctx
        self.core = ctx.core
        self.namespace: str = pod["metadata"]["namespace"]
        self.pod_ref = PodRef(pod["metadata"]["name"], pod["metadata"]["uid"])
        self.pod_dir = pod_dir
        self._kubeconfig: Path | None = None

    def container(self, pod: dict[str, Any], spec: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
        """The env and argv of a container; raises pod_env.ConfigError while they cannot be built."""
        sources = pod_env.referenced_sources(spec)
        secrets = {n: self._read("secret", n) for n in sources.secrets}
        configmaps = {n: self._read("configmap", n) for n in sources.configmaps}
        resolved = pod_env.resolve_env(pod, spec, secrets, configmaps)
        env = dict(self.ctx.base_env)
        env["HOSTNAME"] = self.pod_ref.name
        kubeconfig = self._serviceaccount_kubeconfig(pod)
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        env.update(resolved)
        argv = pod_env.command_line(spec, resolved)
        if not spec.get("command"):
            # No image here to hold an ENTRYPOINT; the agent may be told one per image repository.
            entry = self.ctx.entrypoints.get(image_repository(spec.get("image", "")))
            if entry:
                argv = [*entry, *argv]
        return env, argv

    def _read(self, kind: str, name: str) -> dict[str, Any] | None:
        call = self.core.read_namespaced_secret if kind == "secret" else self.core.read_namespaced_config_map
        try:
            return raw(call, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise pod_env.ConfigError(f"reading {kind} {name!r}: {exc.status} {exc.reason}") from exc
        except TRANSIENT as exc:
            raise pod_env.ConfigError(f"reading {kind} {name!r}: {exc}") from exc

    def _serviceaccount_kubeconfig(self, pod: dict[str, Any]) -> Path | None:
        if self._kubeconfig is not None:
            return self._kubeconfig
        spec = pod["spec"]
        sa = spec.get("serviceAccountName") or "default"
        automount = spec.get("automountServiceAccountToken")
        try:
            if automount is None:
                # As the ServiceAccount admission plugin decides: the pod's setting, else the SA's.
                account = raw(self.core.read_namespaced_service_account, sa, self.namespace)
                automount = account.get("automountServiceAccountToken", True)
            if not automount:
                return None
            self._kubeconfig = write_serviceaccount_kubeconfig(
                self.core, self.namespace, sa, self.pod_dir / "serviceaccount.kubeconfig",
                server=self.ctx.server, ca_file=self.ctx.ca_file, bound_pod=self.pod_ref,
                expiration_seconds=KUBELET_TOKEN_SECONDS,
            )
        except ApiException as exc:
            reason = json.loads(exc.body).get("message") if exc.body else exc.reason
            raise pod_env.ConfigError(f"minting a token for serviceaccount {sa!r}: {reason}") from exc
        except TRANSIENT as exc:
            raise pod_env.ConfigError(f"minting a token for serviceaccount {sa!r}: {exc}") from exc
        return self._kubeconfig

"""Kubeconfigs that act as a ServiceAccount, with a token from the TokenRequest API.

Nothing can be mounted into the agent's "containers", so instead of a projected token volume a
pod gets a kubeconfig (pointed to by KUBECONFIG); tests use the same function to act with exactly
the rights a ServiceAccount has.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client

# kubelet asks for 3607 s: the apiserver recognises that value for pod-bound tokens and (with its
# default --service-account-extend-token-expiration) issues a token valid for a year, so a
# long-running operator never sees its credentials expire under the agent.
KUBELET_TOKEN_SECONDS = 3607


@dataclass(frozen=True)
class PodRef:
    name: str
    uid: str


def write_serviceaccount_kubeconfig(
    core_api: client.CoreV1Api,
    namespace: str,
    service_account: str,
    path: Path | str,
    server: str,
    ca_file: Path | str,
    bound_pod: PodRef | None = None,
    expiration_seconds: int = 3600,
) -> Path:
    """Mints a token for `namespace/service_account` and writes a kubeconfig using it to `path`.

    With `bound_pod` the token is bound to that pod, so it stops working once the pod is deleted.
    The CA is embedded, so the file stays valid wherever `ca_file` goes.
    """
    bound = None
    if bound_pod is not None:
        bound = client.V1BoundObjectReference(
            api_version="v1", kind="Pod", name=bound_pod.name, uid=bound_pod.uid
        )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=expiration_seconds, bound_object_ref=bound
        )
    )
    response = core_api.create_namespaced_service_account_token(service_account, namespace, request)
    token = response.status.token if response.status else None
    if not token:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no token")
    name = f"{namespace}-{service_account}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "csvkafka-dev",
            "cluster": {
                "server": server,
                "certificate-authority-data": base64.b64encode(Path(ca_file).read_bytes()).decode(),
            },
        }],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{
            "name": name,
            "context": {"cluster": "csvkafka-dev", "user": name, "namespace": namespace},
        }],
        "current-context": name,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a process that reads it never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(kubeconfig, out, sort_keys=False)
    Path(tmp).replace(target)
    target.chmod(0o600)
    return target

"""A container's environment and argv, resolved from its pod the way kubelet resolves them.

Pure: the caller fetches the Secrets and ConfigMaps named by `referenced_sources` and passes them in
(raw API dicts, or None for "not found"); nothing here does I/O. Pods, containers and sources are
the API's own JSON shape (camelCase keys), as the watch delivers them.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

Obj = Mapping[str, Any]

# What a container sees for resource fields without a limit: kubelet falls back to the node's
# allocatable, and every node of the agent has the same capacity.
NODE_ALLOCATABLE = {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "100Gi"}


class ConfigError(Exception):
    """The container cannot be configured yet (kubelet: CreateContainerConfigError); retried later."""


@dataclass(frozen=True)
class Sources:
    secrets: set[str] = field(default_factory=set)
    configmaps: set[str] = field(default_factory=set)


def referenced_sources(container: Obj) -> Sources:
    refs = Sources()
    for item in container.get("envFrom") or []:
        if item.get("secretRef"):
            refs.secrets.add(item["secretRef"]["name"])
        if item.get("configMapRef"):
            refs.configmaps.add(item["configMapRef"]["name"])
    for var in container.get("env") or []:
        source = var.get("valueFrom") or {}
        if source.get("secretKeyRef"):
            refs.secrets.add(source["secretKeyRef"]["name"])
        if source.get("configMapKeyRef"):
            refs.configmaps.add(source["configMapKeyRef"]["name"])
    return refs


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` escapes, unknown or unclosed references stay verbatim."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            value = lookup(name)
            out.append(f"$({name})" if value is None else value)
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def resolve_env(
    pod: Obj,
    container: Obj,
    secrets: Mapping[str, Obj | None],
    configmaps: Mapping[str, Obj | None],
) -> dict[str, str]:
    """The variables the container's spec defines, in kubelet's order: envFrom, then env on top.

    Raises ConfigError with kubelet's wording for a missing non-optional source or key.
    """
    namespace = pod.get("metadata", {}).get("namespace", "")
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix") or ""
        if item.get("secretRef"):
            ref = item["secretRef"]
            data = _source_data("secret", ref, secrets)
        elif item.get("configMapRef"):
            ref = item["configMapRef"]
            data = _source_data("configmap", ref, configmaps)
        else:
            continue
        for key, value in (data or {}).items():
            name = prefix + key
            # kubelet skips keys that are not valid variable names (and records an event).
            if name and "=" not in name:
                env[name] = value

    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            # A value may refer to variables defined before it, never after.
            env[name] = expand(var.get("value") or "", env.get)
            continue
        resolved = _value_from(pod, container, namespace, source, secrets, configmaps)
        if resolved is not None:
            env[name] = resolved
    return env


def command_line(container: Obj, env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with `$(VAR)` expanded against the container's final environment."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return [expand(w, env.get) for w in words]


def field_value(pod: Obj, path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(ip.get("ip", "") for ip in status.get("podIPs") or []),
        "status.hostIPs": ",".join(ip.get("ip", "") for ip in status.get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: Obj, resource: str, divisor: str | None) -> str:
    kind, _, name = resource.partition(".")
    if kind not in {"limits", "requests"} or name not in NODE_ALLOCATABLE:
        raise ConfigError(f"unsupported resourceFieldRef resource {resource!r}")
    resources = container.get("resources") or {}
    quantity = (resources.get(kind) or {}).get(name)
    if quantity is None and kind == "requests":
        quantity = (resources.get("limits") or {}).get(name)
    if quantity is None:
        quantity = NODE_ALLOCATABLE[name] if kind == "limits" else "0"
    amount = parse_quantity(str(quantity)) / parse_quantity(divisor or "1")
    # Like kubelet, round up: a container limited to 500m sees 1 CPU, never 0.
    return str(math.ceil(amount))


_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "n": Decimal("1e-9"), "u": Decimal("1e-6"),
    "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
}


def parse_quantity(text: str) -> Decimal:
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", text.strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ConfigError(f"invalid quantity {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as exc:
        raise ConfigError(f"invalid quantity {text!r}") from exc


def _value_from(
    pod: Obj,
    container: Obj,
    namespace: str,
    source: Obj,
    secrets: Mapping[str, Obj | None],
    configmaps: Mapping[str, Obj | None],
) -> str | None:
    if source.get("fieldRef"):
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if source.get("resourceFieldRef"):
        ref = source["resourceFieldRef"]
        target = container
        if ref.get("containerName"):
            target = next(
                (c for c in _all_containers(pod) if c.get("name") == ref["containerName"]), container
            )
        divisor = ref.get("divisor")
        return resource_value(target, ref["resource"], None if divisor is None else str(divisor))
    for key, kind, title, pool in (
        ("secretKeyRef", "secret", "Secret", secrets),
        ("configMapKeyRef", "configmap", "ConfigMap", configmaps),
    ):
        ref = source.get(key)
        if not ref:
            continue
        data = _source_data(kind, ref, pool)
        if data is None:
            return None
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise ConfigError(f"couldn't find key {ref['key']} in {title} {namespace}/{ref['name']}")
        return data[ref["key"]]
    raise ConfigError("env var source must name one of fieldRef, resourceFieldRef, secretKeyRef, configMapKeyRef")


def _source_data(kind: str, ref: Obj, pool: Mapping[str, Obj | None]) -> dict[str, str] | None:
    """The decoded key/values of a Secret or ConfigMap; None when it is absent and optional."""
    obj = pool.get(ref["name"])
    if obj is None:
        if ref.get("optional"):
            return None
        # kubelet's own wording (its object cache reports the singular resource name).
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    if kind == "secret":
        return {k: _b64(v, ref["name"], k) for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    for k, v in (obj.get("binaryData") or {}).items():
        data[k] = _b64(v, ref["name"], k)
    return data


def _b64(value: str, name: str, key: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="surrogateescape")
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"key {key} of {name} is not valid base64") from exc


def _all_containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec", {})
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]

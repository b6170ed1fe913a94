"""The stack's bridge and its one routing rule, and undoing what the nodes changed on the host.

`up` makes the bridge (its gateway address is where Kafka, moto and the API server listen) before any
service starts, and a DNAT rule in a chain of the stack's own so that pods reach the API server at the
`kubernetes` Service's ClusterIP, as kube-proxy would route it. `down` removes both and, when no
other stack runs on the machine, what every kubelet shares on the host: its iptables chains, its
sysctls (restored to what they were before the first kubelet started), its device-plugin socket
and the log-link directory, if empty.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from devstack.layout import Layout
from devstack.processes import StackError

# Set by every kubelet at start (kubelet's defaults for a node); restored by `down`.
KUBELET_SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory")
KUBELET_CHAINS = {"filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
                  "nat": ("KUBE-KUBELET-CANARY",), "mangle": ("KUBE-KUBELET-CANARY",)}


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StackError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def chain(layout: Layout) -> str:
    return f"CSVKAFKA-{layout.network.index}"


def _api_rule(layout: Layout) -> list[str]:
    net = layout.network
    return ["-s", net.subnet, "-d", net.kubernetes_service_ip, "-p", "tcp", "--dport", "443",
            "-j", "DNAT", "--to-destination", f"{net.gateway}:{layout.ports.apiserver}"]


def up(layout: Layout) -> None:
    net = layout.network
    if _run(["ip", "link", "show", net.bridge], check=False).returncode != 0:
        _run(["ip", "link", "add", "name", net.bridge, "type", "bridge"])
    address = f"{net.gateway}/{net.prefix}"
    if address not in _run(["ip", "-o", "addr", "show", "dev", net.bridge]).stdout:
        _run(["ip", "addr", "add", address, "dev", net.bridge])
    _run(["ip", "link", "set", net.bridge, "up"])

    name = chain(layout)
    if _run(["iptables", "-t", "nat", "-L", name, "-n"], check=False).returncode != 0:
        _run(["iptables", "-t", "nat", "-N", name])
    _run(["iptables", "-t", "nat", "-F", name])
    _run(["iptables", "-t", "nat", "-A", name, *_api_rule(layout)])
    if _run(["iptables", "-t", "nat", "-C", "PREROUTING", "-j", name], check=False).returncode != 0:
        _run(["iptables", "-t", "nat", "-A", "PREROUTING", "-j", name])
    _save_sysctls(layout)


def _save_sysctls(layout: Layout) -> None:
    saved = layout.state / "host-sysctls.json"
    if saved.exists():
        return
    values = {key: _run(["sysctl", "-n", key]).stdout.strip() for key in KUBELET_SYSCTLS}
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(values))


def down(layout: Layout, *, last_stack: bool) -> list[str]:
    """Undoes `up` and what the kubelets changed; returns what it removed, for the user."""
    undone: list[str] = []
    name = chain(layout)
    while _run(["iptables", "-t", "nat", "-D", "PREROUTING", "-j", name], check=False).returncode == 0:
        pass
    if _run(["iptables", "-t", "nat", "-F", name], check=False).returncode == 0:
        _run(["iptables", "-t", "nat", "-X", name], check=False)
        undone.append(f"iptables chain {name}")
    if _run(["ip", "link", "del", layout.network.bridge], check=False).returncode == 0:
        undone.append(f"bridge {layout.network.bridge}")
    saved = layout.state / "host-sysctls.json"
    if saved.exists():
        if last_stack:
            for key, value in json.loads(saved.read_text()).items():
                _run(["sysctl", "-q", "-w", f"{key}={value}"], check=False)
            undone.append("kubelet sysctls")
            # The kubelets' chains are shared by every stack on the machine: only the last one removes them.
            for table, names in KUBELET_CHAINS.items():
                for kube_chain in names:
                    _remove_chain(table, kube_chain)
            undone.append("kubelet iptables chains")
            # The one path every kubelet uses whatever its root dir: its device-plugin socket.
            plugins = Path("/var/lib/kubelet/device-plugins")
            (plugins / "kubelet.sock").unlink(missing_ok=True)
            for d in (plugins, plugins.parent, Path("/var/log/containers")):
                with contextlib.suppress(OSError):
                    d.rmdir()
        saved.unlink()
    return undone


def _remove_chain(table: str, name: str) -> None:
    rules = _run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
    for rule in rules:
        parts = rule.split()
        if parts[:1] == ["-A"] and parts[2:4] == ["-j", name]:
            _run(["iptables", "-t", table, "-D", *parts[1:]], check=False)
    _run(["iptables", "-t", table, "-F", name], check=False)
    _run(["iptables", "-t", table, "-X", name], check=False)

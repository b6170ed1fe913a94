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
from pathlib import Path

from devstack.layout import Layout
from devstack.processes import run_checked

# Set by every kubelet at start (kubelet's defaults for a node); restored by `down`.
KUBELET_SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory")
KUBELET_CHAINS = {"filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
                  "nat": ("KUBE-KUBELET-CANARY",), "mangle": ("KUBE-KUBELET-CANARY",)}


def _ok(*argv: str) -> bool:
    """Runs a probe, or an undo step that may find nothing to undo: whether it succeeded."""
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def chain(layout: Layout) -> str:
    return f"CSVKAFKA-{layout.network.index}"


def _api_rule(layout: Layout) -> list[str]:
    net = layout.network
    return ["-s", net.subnet, "-d", net.kubernetes_service_ip, "-p", "tcp", "--dport", "443",
            "-j", "DNAT", "--to-destination", f"{net.gateway}:{layout.ports.apiserver}"]


def up(layout: Layout) -> None:
    net = layout.network
    if not _ok("ip", "link", "show", net.bridge):
        run_checked(["ip", "link", "add", "name", net.bridge, "type", "bridge"], what="creating the stack's bridge")
    address = f"{net.gateway}/{net.prefix}"
    if address not in run_checked(["ip", "-o", "addr", "show", "dev", net.bridge], what="reading the bridge"):
        run_checked(["ip", "addr", "add", address, "dev", net.bridge], what="addressing the bridge")
    run_checked(["ip", "link", "set", net.bridge, "up"], what="bringing the bridge up")

    name = chain(layout)
    if not _ok("iptables", "-t", "nat", "-L", name, "-n"):
        run_checked(["iptables", "-t", "nat", "-N", name], what=f"creating the iptables chain {name}")
    run_checked(["iptables", "-t", "nat", "-F", name], what=f"emptying the iptables chain {name}")
    run_checked(["iptables", "-t", "nat", "-A", name, *_api_rule(layout)], what="routing the API server's ClusterIP")
    if not _ok("iptables", "-t", "nat", "-C", "PREROUTING", "-j", name):
        run_checked(["iptables", "-t", "nat", "-A", "PREROUTING", "-j", name], what=f"jumping to {name}")
    _save_sysctls(layout)


def _save_sysctls(layout: Layout) -> None:
    saved = layout.state / "host-sysctls.json"
    if saved.exists():
        return
    values = {key: run_checked(["sysctl", "-n", key], what=f"reading {key}").strip() for key in KUBELET_SYSCTLS}
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(values))


def down(layout: Layout, *, last_stack: bool) -> list[str]:
    """Undoes `up` and what the kubelets changed; returns what it removed, for the user."""
    undone: list[str] = []
    name = chain(layout)
    while _ok("iptables", "-t", "nat", "-D", "PREROUTING", "-j", name):
        pass
    if _ok("iptables", "-t", "nat", "-F", name):
        _ok("iptables", "-t", "nat", "-X", name)
        undone.append(f"iptables chain {name}")
    if _ok("ip", "link", "del", layout.network.bridge):
        undone.append(f"bridge {layout.network.bridge}")
    saved = layout.state / "host-sysctls.json"
    if saved.exists():
        if last_stack:
            for key, value in json.loads(saved.read_text()).items():
                _ok("sysctl", "-q", "-w", f"{key}={value}")
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
    listed = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False)
    for rule in listed.stdout.splitlines():
        parts = rule.split()
        if parts[:1] == ["-A"] and parts[2:4] == ["-j", name]:
            _ok("iptables", "-t", table, "-D", *parts[1:])
    _ok("iptables", "-t", table, "-F", name)
    _ok("iptables", "-t", table, "-X", name)

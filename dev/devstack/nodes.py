"""Three real nodes shaped like an EKS cluster's: a kubelet and a containerd each.

Each node has its own containerd (root, state, socket), kubelet (root dir, ports, cgroup root, pod
log dir) and CNI configuration: the pods of all three share the stack's bridge, each node handing out
addresses from its own /24. The node's InternalIP is the bridge's gateway, where the API server reaches
its kubelet (a serving certificate from the stack's CA) and where its pods reach the stack's services.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devstack import certs, images, kubeconfig
from devstack.layout import LOOPBACK, REPO, Layout
from devstack.processes import Managed, run_build, wait_until

CGROUP_FS = Path("/sys/fs/cgroup")
# Short, so a lost node's pods are replaced within a minute (EKS: 300 s); see kube.py.
NODE_LEASE_SECONDS = 12


@dataclass(frozen=True)
class NodeSpec:
    short: str
    name: str
    zone: str
    labels: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        short="fargate",
        name="fargate-ip-10-0-1-10.ec2.internal",
        zone="us-east-1a",
        labels={"eks.amazonaws.com/compute-type": "fargate"},
        taints=[{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}],
    ),
    NodeSpec(
        short="spot",
        name="ip-10-0-2-20.ec2.internal",
        zone="us-east-1b",
        labels={
            "eks.amazonaws.com/capacityType": "SPOT",
            "eks.amazonaws.com/nodegroup": "spot",
            "node.kubernetes.io/instance-type": "m5.2xlarge",
        },
    ),
    NodeSpec(
        short="on-demand",
        name="ip-10-0-3-30.ec2.internal",
        zone="us-east-1c",
        labels={
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            "eks.amazonaws.com/nodegroup": "on-demand",
            "node.kubernetes.io/instance-type": "m5.2xlarge",
        },
    ),
)


@dataclass(frozen=True)
class Node:
    """Where one node keeps its things, and its two processes."""

    layout: Layout
    spec: NodeSpec
    number: int

    @property
    def dir(self) -> Path:
        return self.layout.state / "nodes" / self.spec.short

    @property
    def run_dir(self) -> Path:
        # Sockets: a short path under /run (a unix socket's path is limited to 107 bytes).
        return Path("/run") / f"csvkafka{self.layout.network.index}" / self.spec.short

    @property
    def socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"/csvkafka{self.layout.network.index}-{self.spec.short}"

    @property
    def kubelet_port(self) -> int:
        return self.layout.ports.kubelet + 10 * self.number

    @property
    def containerd(self) -> Managed:
        return Managed(f"containerd-{self.spec.short}", self.layout.run, self.layout.logs)

    @property
    def kubelet(self) -> Managed:
        return Managed(f"kubelet-{self.spec.short}", self.layout.run, self.layout.logs)


def nodes(layout: Layout) -> list[Node]:
    return [Node(layout, spec, number) for number, spec in enumerate(NODES)]


def services(layout: Layout) -> list[Managed]:
    return [svc for node in nodes(layout) for svc in (node.containerd, node.kubelet)]


def render_containerd_config(node: Node) -> str:
    return f"""version = 2
root = "{node.dir / 'containerd'}"
state = "{node.run_dir / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{node.socket}"
[ttrpc]
  address = "{node.socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE}"
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj (kubelet asks -998 for sandboxes)
  # would kill runc's init, so none goes below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node.dir / 'cni'}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{node.dir / 'containerd' / 'opt'}"
"""


def render_cni_config(node: Node) -> str:
    net = node.layout.network
    start, end = net.pod_range(node.number)
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": f"csvkafka{net.index}",
        "plugins": [{
            "type": "bridge", "bridge": net.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(node.dir / "ipam"),
                     "ranges": [[{"subnet": net.subnet, "rangeStart": start, "rangeEnd": end,
                                  "gateway": net.gateway}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }, indent=2)


def render_kubelet_config(node: Node, serving: tuple[Path, Path], ca: Path) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.layout.network.gateway,
        "port": node.kubelet_port,
        "healthzBindAddress": LOOPBACK,
        "healthzPort": node.kubelet_port + 1,
        "readOnlyPort": 0,
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        # The host mixes cgroup v1 and v2 and has no systemd: cgroupfs, each node under its own root
        # so that no kubelet cleans up another's pods.
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "podLogsDir": str(node.dir / "pod-logs"),
        "registerWithTaints": node.spec.taints,
        "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
        "nodeStatusReportFrequency": "10s",
        # Every node sees the whole machine's disk: no image GC or disk-pressure eviction of the
        # images that cannot be pulled again; memory pressure still evicts.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "resolvConf": "",
    }
    return json.dumps(config, indent=2)


def node_labels(spec: NodeSpec) -> dict[str, str]:
    return {"topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": spec.zone, **spec.labels}


def _ensure_cgroup_root(node: Node) -> None:
    """The kubelet wants its cgroup root to exist in every hierarchy it uses."""
    for hierarchy in CGROUP_FS.iterdir():
        if (hierarchy / "cgroup.procs").exists():
            (hierarchy / node.cgroup_root.lstrip("/")).mkdir(exist_ok=True)


def _credentials(node: Node, pki: Path) -> tuple[Path, tuple[Path, Path]]:
    """The node's client certificate (as the Node authorizer wants it) and its kubelet's serving one."""
    crt, key = certs.ensure_cert(pki, f"node-{node.spec.short}",
                                 subject=f"/O=system:nodes/CN=system:node:{node.spec.name}", client=True)
    path = kubeconfig.write(node.dir / "kubelet.kubeconfig", server=node.layout.api_server, ca=pki / "ca.crt",
                            user={"client-certificate": str(crt), "client-key": str(key)})
    serving = certs.ensure_cert(pki, "kubelet-serving", subject="/CN=kubelet",
                                server_names=[f"IP:{node.layout.network.gateway}"])
    return path, serving


def up(layout: Layout, pki: Path) -> None:
    run_build(REPO / "dev" / "build" / "node-packages.sh", what="installing the nodes' packages", timeout=900)
    archives = images.build(layout)
    for node in nodes(layout):
        for d in (node.dir, node.run_dir, node.dir / "cni", node.dir / "pod-logs", node.dir / "kubelet"):
            d.mkdir(parents=True, exist_ok=True)
        if not node.containerd.running():
            config = node.dir / "containerd.toml"
            config.write_text(render_containerd_config(node))
            (node.dir / "cni" / "10-csvkafka.conflist").write_text(render_cni_config(node))
            node.socket.unlink(missing_ok=True)
            node.containerd.start(["containerd", "--config", str(config)])
            wait_until(node.containerd, node.socket.exists, timeout=30, what=f"its socket {node.socket}")
        images.load(node.socket, node.dir, archives)
        if not node.kubelet.running():
            _ensure_cgroup_root(node)
            client_config, serving = _credentials(node, pki)
            config = node.dir / "kubelet.json"
            config.write_text(render_kubelet_config(node, serving, pki / "ca.crt"))
            labels = ",".join(f"{k}={v}" for k, v in node_labels(node.spec).items())
            node.kubelet.start([
                str(layout.bin / "kubelet"), f"--config={config}", f"--kubeconfig={client_config}",
                f"--root-dir={node.dir / 'kubelet'}", f"--cert-dir={node.dir / 'kubelet' / 'pki'}",
                f"--hostname-override={node.spec.name}", f"--node-ip={layout.network.gateway}",
                f"--node-labels={labels}", "--v=1",
            ])
    for node in nodes(layout):
        wait_until(node.kubelet, lambda n=node: _ready(layout, n.spec.name), timeout=120,  # type: ignore[misc]
                   what=f"node {node.spec.name} Ready")


def _ready(layout: Layout, name: str) -> bool:
    probe = subprocess.run([str(layout.bin / "kubectl"), f"--kubeconfig={layout.admin_kubeconfig}", "get", "node",
                            name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
                           capture_output=True, text=True, check=False, timeout=30)
    return probe.stdout.strip() == "True"


def down(layout: Layout) -> list[str]:
    """Stops the kubelets, then every pod through CRI (their network goes with them), then the
    containerds; unmounts what was left mounted under the nodes' dirs. Returns what it stopped."""
    stopped = []
    for node in nodes(layout):
        if node.kubelet.stop():
            stopped.append(node.kubelet.name)
    for node in nodes(layout):
        if node.containerd.running():
            _remove_pods(layout, node)
        if node.containerd.stop():
            stopped.append(node.containerd.name)
        _kill_cgroup(node)
    _unmount_under([layout.state / "nodes", *(node.run_dir for node in nodes(layout))])
    for node in nodes(layout):
        shutil.rmtree(node.run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        nodes(layout)[0].run_dir.parent.rmdir()
    # The kubelets link each container's log into /var/log/containers, whatever their log dir.
    for link in Path("/var/log/containers").glob("*.log"):
        if link.is_symlink() and str(link.readlink()).startswith(f"{layout.state / 'nodes'}/"):
            link.unlink()
    return stopped


def lose(layout: Layout, short: str) -> Node:
    """Takes a node away as a terminated instance would: its kubelet, containerd, shims and every
    container SIGKILLed, nothing told. `up` brings a fresh one back under the same name."""
    [node] = [n for n in nodes(layout) if n.spec.short == short]
    for managed in (node.kubelet, node.containerd):
        pid = managed.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, 9)
    subprocess.run(["pkill", "-9", "-f", f"-address {node.socket}( |$)"], check=False)
    _kill_cgroup(node)
    return node


def _remove_pods(layout: Layout, node: Node) -> None:
    crictl = [str(layout.bin / "crictl"), f"--runtime-endpoint=unix://{node.socket}", "--timeout=20s"]
    # Best effort: `down` goes on to stop the containerd and kill what is left in the node's cgroups.
    with contextlib.suppress(subprocess.TimeoutExpired):
        listed = subprocess.run([*crictl, "pods", "-q"], capture_output=True, text=True, check=False, timeout=30)
        for pod in listed.stdout.split():
            subprocess.run([*crictl, "stopp", pod], capture_output=True, check=False, timeout=60)
            subprocess.run([*crictl, "rmp", "--force", pod], capture_output=True, check=False, timeout=60)


def _kill_cgroup(node: Node) -> None:
    """Whatever still runs under the node's cgroup root (a pod whose shim was lost) is killed, and the
    cgroups are removed, deepest first."""
    for hierarchy in CGROUP_FS.iterdir():
        root = hierarchy / node.cgroup_root.lstrip("/")
        if not root.is_dir():
            continue
        # os.walk, not rglob: cgroups vanish while it walks (their processes exit, their kubelet
        # cleans up), and os.walk skips what is gone.
        for where, _, files in os.walk(root, topdown=False):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    for pid in Path(where, "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), 9)
            if where != str(root):
                with contextlib.suppress(OSError):
                    os.rmdir(where)
        with contextlib.suppress(OSError):
            root.rmdir()


def _unmount_under(prefixes: list[Path]) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted(mounts, key=len, reverse=True):
        if any(target.startswith(str(prefix) + "/") or target == str(prefix) for prefix in prefixes):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def status(layout: Layout) -> list[tuple[Managed, str]]:
    return [(svc, where) for node in nodes(layout) for svc, where in (
        (node.containerd, f"{node.spec.name}: containerd {node.socket}"),
        (node.kubelet, f"{node.spec.name}: kubelet :{node.kubelet_port}, runtime containerd"),
    )]

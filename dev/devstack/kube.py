"""A real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Started the way envtest starts it, plus what a Job-running cluster needs: RBAC, the PodSecurity and
ServiceAccount admission plugins, and the controller-manager's token and ServiceAccount controllers.
No kubelet can run here: the node agent (devstack.node_agent) registers EKS-like nodes and runs pods
as local processes. Its heartbeat stands in for the node-lifecycle controller, which is off, as is the
TaintNodesByCondition admission plugin that would taint fresh nodes until that controller clears it.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from pathlib import Path

from devstack import certs
from devstack.layout import HOST, REPO, Layout
from devstack.processes import Managed, run_checked, wait_until

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node-agent")


def services(layout: Layout) -> dict[str, Managed]:
    return {name: Managed(name, layout.run, layout.logs) for name in COMPONENTS}


def pki(layout: Layout) -> Path:
    return layout.kube_dir / "pki"


def server_url(layout: Layout) -> str:
    return f"https://{HOST}:{layout.ports.apiserver}"


def write_kubeconfig(path: Path, *, server: str, ca: Path, user: dict[str, str]) -> Path:
    user_lines = "".join(f"      {k}: {v}\n" for k, v in user.items())
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: csvkafka-dev\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: user\n  user:\n{user_lines}"
        "contexts:\n- name: csvkafka-dev\n  context:\n    cluster: csvkafka-dev\n    user: user\n"
        "current-context: csvkafka-dev\n"
    )
    path.chmod(0o600)
    return path


def ensure_pki(layout: Layout) -> None:
    d = pki(layout)
    certs.ensure_ca(d, "csvkafka-dev-kubernetes-ca")
    certs.ensure_cert(
        d, "apiserver", subject="/CN=kube-apiserver",
        server_names=["IP:127.0.0.1", "IP:10.0.0.1", "DNS:localhost", "DNS:kubernetes",
                      "DNS:kubernetes.default", "DNS:kubernetes.default.svc"],
    )
    admin_crt, admin_key = certs.ensure_cert(
        d, "admin", subject="/O=system:masters/CN=csvkafka-admin", client=True
    )
    certs.ensure_rsa_keypair(d / "sa.key", d / "sa.pub")
    write_kubeconfig(
        layout.admin_kubeconfig, server=server_url(layout), ca=d / "ca.crt",
        user={"client-certificate": str(admin_crt), "client-key": str(admin_key)},
    )


def apiserver_ready(layout: Layout) -> bool:
    d = pki(layout)
    context = ssl.create_default_context(cafile=str(d / "ca.crt"))
    context.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
    try:
        with urllib.request.urlopen(f"{server_url(layout)}/readyz", context=context, timeout=2) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


def up(layout: Layout, *, with_node_agent: bool = True) -> None:
    run_checked([str(REPO / "dev" / "build" / "kubernetes.sh")], what="building Kubernetes")
    run_checked([str(REPO / "dev" / "build" / "helm.sh")], what="building helm")
    ensure_pki(layout)
    svc = services(layout)
    d, p, b = pki(layout), layout.ports, layout.bin
    kubeconfig = str(layout.admin_kubeconfig)

    if not svc["etcd"].running():
        svc["etcd"].start([
            str(b / "etcd"), "--name=default", f"--data-dir={layout.kube_dir / 'etcd'}",
            f"--listen-client-urls=http://{HOST}:{p.etcd}", f"--advertise-client-urls=http://{HOST}:{p.etcd}",
            f"--listen-peer-urls=http://{HOST}:{p.etcd_peer}",
            f"--initial-advertise-peer-urls=http://{HOST}:{p.etcd_peer}",
            f"--initial-cluster=default=http://{HOST}:{p.etcd_peer}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ])
        wait_until(svc["etcd"], lambda: _http_ok(f"http://{HOST}:{p.etcd}/health"), timeout=60, what="/health")

    if not svc["kube-apiserver"].running():
        svc["kube-apiserver"].start([
            str(b / "kube-apiserver"), f"--etcd-servers=http://{HOST}:{p.etcd}",
            f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={p.apiserver}",
            f"--cert-dir={d}", f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}", f"--client-ca-file={d / 'ca.crt'}",
            "--authorization-mode=RBAC", "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true", "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--disable-admission-plugins=TaintNodesByCondition", "--profiling=false", "-v=0",
        ])
        wait_until(svc["kube-apiserver"], lambda: apiserver_ready(layout), timeout=120, what="/readyz")

    if not svc["kube-controller-manager"].running():
        svc["kube-controller-manager"].start([
            str(b / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--controllers=*,-node-lifecycle-controller", f"--service-account-private-key-file={d / 'sa.key'}",
            f"--root-ca-file={d / 'ca.crt'}", "--use-service-account-credentials=true",
            f"--bind-address={HOST}", f"--secure-port={p.controller_manager}", "--profiling=false",
        ])
    if not svc["kube-scheduler"].running():
        svc["kube-scheduler"].start([
            str(b / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            f"--bind-address={HOST}", f"--secure-port={p.scheduler}", "--profiling=false",
        ])
    if with_node_agent and not svc["node-agent"].running():
        env = {**os.environ, "PYTHONPATH": str(REPO / "dev")}
        svc["node-agent"].start(
            [sys.executable, "-m", "devstack.node_agent", f"--kubeconfig={kubeconfig}",
             f"--state-dir={layout.state / 'pods'}", f"--extra-path={layout.bin}",
             f"--extra-path={layout.venv_bin}"],
            env=env,
        )
    _wait_for_default_serviceaccount(layout, svc["kube-controller-manager"])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


def _wait_for_default_serviceaccount(layout: Layout, kcm: Managed) -> None:
    kubectl = [str(layout.bin / "kubectl"), f"--kubeconfig={layout.admin_kubeconfig}"]

    def ready() -> bool:
        import subprocess

        probe = subprocess.run([*kubectl, "get", "serviceaccount", "default", "-n", "default"],
                               capture_output=True, check=False)
        return probe.returncode == 0

    wait_until(kcm, ready, timeout=90, what="the default ServiceAccount")

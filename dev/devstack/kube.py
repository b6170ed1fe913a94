"""A real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Started the way envtest starts it, plus what a Job-running cluster needs: the Node and RBAC
authorizers, the PodSecurity, ServiceAccount and NodeRestriction admission plugins, the
controller-manager's token, ServiceAccount and node-lifecycle controllers, and a client certificate
to reach the kubelets (devstack.nodes) whose serving certificates it verifies. A lost node is
noticed and its pods evicted within seconds (EKS: minutes), so the node-loss tests stay short.
"""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

from devstack import certs, kubeconfig, nodes
from devstack.layout import LOOPBACK, REPO, Layout
from devstack.processes import Managed, run_build, wait_until

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# How long a NotReady / unreachable node keeps its pods (the default tolerations the API server adds).
TOLERATION_SECONDS = 15


def services(layout: Layout) -> dict[str, Managed]:
    return {name: Managed(name, layout.run, layout.logs) for name in COMPONENTS}


def pki(layout: Layout) -> Path:
    return layout.kube_dir / "pki"


def ensure_pki(layout: Layout) -> None:
    d = pki(layout)
    certs.ensure_ca(d, "csvkafka-dev-kubernetes-ca")
    certs.ensure_cert(
        d, "apiserver", subject="/CN=kube-apiserver",
        server_names=[f"IP:{layout.host}", f"IP:{layout.network.kubernetes_service_ip}", "IP:127.0.0.1",
                      "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc"],
    )
    certs.ensure_cert(d, "apiserver-kubelet-client", subject="/O=system:masters/CN=kube-apiserver-kubelet-client",
                      client=True)
    admin_crt, admin_key = certs.ensure_cert(
        d, "admin", subject="/O=system:masters/CN=csvkafka-admin", client=True
    )
    certs.ensure_rsa_keypair(d / "sa.key", d / "sa.pub")
    kubeconfig.write(
        layout.admin_kubeconfig, server=layout.api_server, ca=d / "ca.crt",
        user={"client-certificate": str(admin_crt), "client-key": str(admin_key)},
    )


def apiserver_ready(layout: Layout) -> bool:
    d = pki(layout)
    context = ssl.create_default_context(cafile=str(d / "ca.crt"))
    context.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
    try:
        with urllib.request.urlopen(f"{layout.api_server}/readyz", context=context, timeout=2) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


def up(layout: Layout, *, with_nodes: bool = True) -> None:
    run_build(REPO / "dev" / "build" / "kubernetes.sh", what="building Kubernetes")
    run_build(REPO / "dev" / "build" / "helm.sh", what="building helm")
    ensure_pki(layout)
    svc = services(layout)
    d, p, b = pki(layout), layout.ports, layout.bin
    admin = str(layout.admin_kubeconfig)

    if not svc["etcd"].running():
        svc["etcd"].start([
            str(b / "etcd"), "--name=default", f"--data-dir={layout.kube_dir / 'etcd'}",
            f"--listen-client-urls=http://{LOOPBACK}:{p.etcd}", f"--advertise-client-urls=http://{LOOPBACK}:{p.etcd}",
            f"--listen-peer-urls=http://{LOOPBACK}:{p.etcd_peer}",
            f"--initial-advertise-peer-urls=http://{LOOPBACK}:{p.etcd_peer}",
            f"--initial-cluster=default=http://{LOOPBACK}:{p.etcd_peer}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ])
        wait_until(svc["etcd"], lambda: _http_ok(f"http://{LOOPBACK}:{p.etcd}/health"), timeout=60, what="/health")

    if not svc["kube-apiserver"].running():
        svc["kube-apiserver"].start([
            str(b / "kube-apiserver"), f"--etcd-servers=http://{LOOPBACK}:{p.etcd}",
            f"--bind-address={layout.host}", f"--advertise-address={layout.host}", f"--secure-port={p.apiserver}",
            f"--cert-dir={d}", f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}", f"--client-ca-file={d / 'ca.crt'}",
            "--authorization-mode=Node,RBAC", f"--service-cluster-ip-range={layout.network.service_cidr}",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={d / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={d / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={d / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--default-not-ready-toleration-seconds={TOLERATION_SECONDS}",
            f"--default-unreachable-toleration-seconds={TOLERATION_SECONDS}",
            "--allow-privileged=true", "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--profiling=false", "-v=0",
        ])
        wait_until(svc["kube-apiserver"], lambda: apiserver_ready(layout), timeout=120, what="/readyz")

    if not svc["kube-controller-manager"].running():
        svc["kube-controller-manager"].start([
            str(b / "kube-controller-manager"), f"--kubeconfig={admin}", "--leader-elect=false",
            f"--service-account-private-key-file={d / 'sa.key'}",
            # A node whose lease is this old is NotReady (the kubelets renew every few seconds).
            "--node-monitor-grace-period=20s", "--node-monitor-period=2s",
            f"--root-ca-file={d / 'ca.crt'}", "--use-service-account-credentials=true",
            f"--bind-address={LOOPBACK}", f"--secure-port={p.controller_manager}", "--profiling=false",
        ])
    if not svc["kube-scheduler"].running():
        svc["kube-scheduler"].start([
            str(b / "kube-scheduler"), f"--kubeconfig={admin}", "--leader-elect=false",
            f"--bind-address={LOOPBACK}", f"--secure-port={p.scheduler}", "--profiling=false",
        ])
    _wait_for_default_serviceaccount(layout, svc["kube-controller-manager"])
    if with_nodes:
        nodes.up(layout, d)


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

"""dev/stack: the local real stack (Kafka, S3/DynamoDB, a Kubernetes control plane, three EKS-like nodes,
and for the fault tests a three-broker Kafka cluster behind Toxiproxy).

    dev/stack up [--without operator|kube|...]     start what is not running (idempotent)
    dev/stack down [--purge]                       stop what `up` started; --purge also wipes data
    dev/stack status                               what runs where
    dev/stack env                                  export lines: eval "$(dev/stack env)"
    dev/stack kubeconfig-for NAMESPACE SA          mint a kubeconfig acting as that ServiceAccount
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from devstack import aws, kafka, kafka_ha, kube, network, nodes, operator, toxiproxy
from devstack.layout import LOOPBACK, Layout
from devstack.processes import Managed, StackError

PARTS = ("kafka", "aws", "faults", "kube", "nodes", "operator")


def environment(layout: Layout) -> dict[str, str]:
    user = kafka.SCRAM_USERS[0]
    path = os.pathsep.join([*(str(p) for p in layout.tool_path()), os.environ.get("PATH", "")])
    return {
        "KUBECONFIG": str(layout.admin_kubeconfig),
        "AWS_ENDPOINT_URL": aws.endpoint(layout),
        **aws.CREDENTIALS,
        "KAFKA_BOOTSTRAP_SERVERS": f"{layout.host}:{layout.ports.kafka}",
        "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS": f"{layout.host}:{layout.ports.kafka_sasl_ssl}",
        "KAFKA_CA_PEM": str(layout.kafka_ca_pem),
        "KAFKA_SCRAM_USERNAME": user.name,
        "KAFKA_SCRAM_PASSWORD": user.password,
        "CSVKAFKA_KAFKA_HA_BOOTSTRAP": kafka_ha.bootstrap(layout),
        "CSVKAFKA_TOXIPROXY_URL": toxiproxy.url(layout),
        "CSVKAFKA_S3_PROXY_URL": toxiproxy.s3_endpoint(layout),
        "CSVKAFKA_DYNAMODB_PROXY_URL": toxiproxy.dynamodb_endpoint(layout),
        "CSVKAFKA_IAM_GATE_URL": aws.gate_endpoint(layout),
        "CSVKAFKA_CACHE": str(layout.cache),
        "CSVKAFKA_STATE": str(layout.state),
        "CSVKAFKA_PORT_OFFSET": os.environ.get("CSVKAFKA_PORT_OFFSET", "0"),
        "PATH": path,
    }


def all_services(layout: Layout) -> list[tuple[Managed, str]]:
    p = layout.ports
    where = {
        "kafka": f"PLAINTEXT {layout.host}:{p.kafka}, SASL_SSL {layout.host}:{p.kafka_sasl_ssl}",
        "moto": aws.endpoint(layout),
        "iam-gate": f"{aws.gate_endpoint(layout)} (moto, with IAM enforced per access key)",
        "toxiproxy": f"API {toxiproxy.url(layout)}, S3 {toxiproxy.s3_endpoint(layout)}, "
        f"DynamoDB {toxiproxy.dynamodb_endpoint(layout)}",
        **{b.name: f"{b.advertised} through toxiproxy to {b.client_listener}" for b in kafka_ha.brokers(layout)},
        "etcd": f"http://{LOOPBACK}:{p.etcd}",
        "kube-apiserver": layout.api_server,
        "kube-controller-manager": "",
        "kube-scheduler": "",
        "operator": f"csvkafka operator, liveness {operator.liveness_url(layout)}",
    }
    services = [kafka.service(layout), aws.service(layout), aws.gate_service(layout), toxiproxy.service(layout),
                *kafka_ha.services(layout), *kube.services(layout).values()]
    return [*((s, where[s.name]) for s in services), *nodes.status(layout),
            (operator.service(layout), where["operator"])]


def cmd_up(layout: Layout, without: set[str]) -> None:
    started = time.monotonic()
    network.up(layout)
    if "aws" not in without:
        aws.up(layout)
    if "kafka" not in without:
        kafka.up(layout)
    if "faults" not in without:
        toxiproxy.up(layout, [*kafka_ha.proxies(layout), *toxiproxy.aws_proxies(layout)])
        kafka_ha.up(layout)
    if "kube" not in without:
        kube.up(layout, with_nodes="nodes" not in without)
        if "operator" not in without:
            operator.up(layout)
    print(f"stack up in {time.monotonic() - started:.1f}s", file=sys.stderr)
    cmd_status(layout, stream=sys.stderr)


def cmd_down(layout: Layout, purge: bool) -> None:
    # Reverse order: the operator, the nodes (their pods first), the controllers before the
    # apiserver, etcd last; then the network and what the kubelets changed on the host.
    if operator.service(layout).stop():
        print("stopped operator", file=sys.stderr)
    for name in nodes.down(layout):
        print(f"stopped {name}", file=sys.stderr)
    for svc, _ in reversed(all_services(layout)):
        if svc.stop():
            print(f"stopped {svc.name}", file=sys.stderr)
    for what in network.down(layout, last_stack=not _other_stacks(layout)):
        print(f"removed {what}", file=sys.stderr)
    if purge and layout.state.exists():
        shutil.rmtree(layout.state)
        print(f"removed {layout.state}", file=sys.stderr)


def _other_stacks(layout: Layout) -> bool:
    """Another stack's bridge on this machine (CSVKAFKA_PORT_OFFSET) means its kubelets still run."""
    return any(p.name.startswith("csvkafka") and p.name != layout.network.bridge
               for p in Path("/sys/class/net").iterdir())


def cmd_status(layout: Layout, stream: TextIO = sys.stdout) -> int:
    down = 0
    for svc, where in all_services(layout):
        pid = svc.pid()
        state = f"running (pid {pid})" if pid else "stopped"
        down += pid is None
        print(f"{svc.name:<24} {state:<20} {where}", file=stream)
    return 0 if down == 0 else 3


def cmd_env(layout: Layout) -> None:
    for key, value in environment(layout).items():
        print(f"export {key}={shlex.quote(value)}")


def cmd_kubeconfig_for(layout: Layout, namespace: str, service_account: str) -> None:
    from kubernetes import client, config

    from devstack.tokens import write_serviceaccount_kubeconfig

    api = client.CoreV1Api(config.new_client_from_config(str(layout.admin_kubeconfig)))  # type: ignore[no-untyped-call]
    target = layout.kube_dir / "serviceaccounts" / f"{namespace}.{service_account}.kubeconfig"
    target.parent.mkdir(parents=True, exist_ok=True)
    path = write_serviceaccount_kubeconfig(
        api, namespace, service_account, target, server=layout.api_server, ca_file=kube.pki(layout) / "ca.crt"
    )
    print(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev/stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (idempotent)")
    up.add_argument("--without", action="append", default=[], choices=PARTS,
                    help="leave a part out (repeatable)")
    down = sub.add_parser("down", help="stop what up started")
    down.add_argument("--purge", action="store_true", help="also delete the stack's data")
    sub.add_parser("status", help="what runs where")
    sub.add_parser("env", help="print export lines for eval")
    kc = sub.add_parser("kubeconfig-for", help="mint a kubeconfig for a ServiceAccount")
    kc.add_argument("namespace")
    kc.add_argument("service_account")
    args = parser.parse_args(argv)

    layout = Layout.from_env()
    try:
        if args.command == "up":
            cmd_up(layout, set(args.without))
        elif args.command == "down":
            cmd_down(layout, args.purge)
        elif args.command == "status":
            return cmd_status(layout)
        elif args.command == "env":
            cmd_env(layout)
        elif args.command == "kubeconfig-for":
            cmd_kubeconfig_for(layout, args.namespace, args.service_account)
    except StackError as error:
        print(f"dev/stack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

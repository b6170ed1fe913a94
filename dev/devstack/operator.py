"""The csvkafka operator as a local process (`csvkafka operator`), its CRD applied first.

Its workers run the image built from the Dockerfile on the stack's nodes; the operator hands them the
stack's AWS endpoint (on the bridge, which their network namespace reaches) and test credentials — in
EKS, IRSA gives them real ones. The Helm chart's test runs the operator itself in a pod.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from devstack import aws, images
from devstack.layout import LOOPBACK, REPO, Layout, Ports
from devstack.processes import Managed, run_checked, wait_until

CRD = REPO / "crds" / "csvkafka.io_csvkafkaimports.yaml"
LIVENESS_PORT = 8089


def service(layout: Layout) -> Managed:
    return Managed("operator", layout.run, layout.logs)


def liveness_url(layout: Layout) -> str:
    # Moves with CSVKAFKA_PORT_OFFSET, as every port of a second stack does.
    offset = layout.ports.kafka - Ports().kafka
    return f"http://{LOOPBACK}:{LIVENESS_PORT + offset}/healthz"


def environment(layout: Layout) -> dict[str, str]:
    stack_aws = {"AWS_ENDPOINT_URL": aws.endpoint(layout), **aws.CREDENTIALS}
    return {
        **os.environ,
        "KUBECONFIG": str(layout.admin_kubeconfig),
        **stack_aws,
        "CSVKAFKA_WORKER_ENV": json.dumps(stack_aws),
        "CSVKAFKA_WORKER_IMAGE": images.CSVKAFKA,
        # Every namespace has it; there is no IRSA role to attach here anyway.
        "CSVKAFKA_WORKER_SERVICE_ACCOUNT": "default",
        "CSVKAFKA_INTERVAL_SECONDS": "2",
    }


def up(layout: Layout) -> None:
    kubectl = [str(layout.bin / "kubectl"), f"--kubeconfig={layout.admin_kubeconfig}"]
    run_checked([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(CRD)],
                what="applying the CsvKafkaImport CRD")
    run_checked([*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "crd/csvimports.csvkafka.io"],
                what="waiting for the CsvKafkaImport CRD")
    svc = service(layout)
    if svc.running():
        return
    url = liveness_url(layout)
    svc.start([str(layout.venv_bin / "csvkafka"), "operator", "--liveness", url, "--log-format", "plain"],
              env=environment(layout))
    wait_until(svc, lambda: _alive(url), timeout=60, what=f"its liveness endpoint {url}")


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False

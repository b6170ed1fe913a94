"""S3 and DynamoDB through moto's HTTP server: the AWS endpoint of the local stack.

Beside it, the IAM gate (devstack.iamgate): the same moto behind a proxy that
enforces IAM policies per access key, for the tests that run with the Terraform roles' permissions.
moto itself keeps IAM off, so every other test is unaffected.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from devstack.layout import REPO, Layout
from devstack.processes import Managed, wait_until

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def endpoint(layout: Layout) -> str:
    return f"http://{layout.host}:{layout.ports.aws}"


def gate_endpoint(layout: Layout) -> str:
    return f"http://{layout.host}:{layout.ports.aws_gate}"


def service(layout: Layout) -> Managed:
    return Managed("moto", layout.run, layout.logs)


def gate_service(layout: Layout) -> Managed:
    return Managed("iam-gate", layout.run, layout.logs)


def up(layout: Layout) -> None:
    svc = service(layout)
    if not svc.running():
        svc.start([str(layout.venv_bin / "moto_server"), "-H", layout.host, "-p", str(layout.ports.aws)])
        wait_until(svc, lambda: _answers(f"{endpoint(layout)}/moto-api/data.json"), timeout=60,
                   what=f"HTTP on {endpoint(layout)}")
    gate = gate_service(layout)
    if not gate.running():
        gate.start([str(layout.venv_bin / "python"), "-m", "devstack.iamgate", "--host", layout.host,
                    "--port", str(layout.ports.aws_gate), "--upstream", endpoint(layout)],
                   env={**os.environ, "PYTHONPATH": str(REPO / "dev")})
        wait_until(gate, lambda: _answers(f"{gate_endpoint(layout)}/iam-gate/decisions/none"), timeout=30,
                   what=f"HTTP on {gate_endpoint(layout)}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False

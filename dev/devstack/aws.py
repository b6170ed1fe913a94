"""S3 and DynamoDB through moto's HTTP server: the AWS endpoint of the local stack."""

from __future__ import annotations

import urllib.error
import urllib.request

from devstack.layout import Layout
from devstack.processes import Managed, wait_until

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def endpoint(layout: Layout) -> str:
    return f"http://{layout.host}:{layout.ports.aws}"


def service(layout: Layout) -> Managed:
    return Managed("moto", layout.run, layout.logs)


def up(layout: Layout) -> None:
    svc = service(layout)
    if svc.running():
        return
    svc.start([str(layout.venv_bin / "moto_server"), "-H", layout.host, "-p", str(layout.ports.aws)])
    wait_until(svc, lambda: _answers(layout), timeout=60, what=f"HTTP on {endpoint(layout)}")


def _answers(layout: Layout) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint(layout)}/moto-api/data.json", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False

"""Toxiproxy, the stack's TCP fault proxy, built from the Go module proxy (dev/build/toxiproxy.sh).

Its API listens on loopback (only the host's tests inject faults); its proxies listen on the bridge's
gateway, so pods reach the services behind them as well: one per broker of the three-broker cluster
(devstack.kafka_ha), one for S3 and one for DynamoDB in front of moto. The other services stay
reachable directly: a fault injected here touches only clients that chose the proxied addresses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from devstack import aws
from devstack.faults import Proxy, Toxiproxy, ToxiproxyError
from devstack.layout import LOOPBACK, REPO, Layout
from devstack.processes import Managed, StackError, run_build, wait_until


def service(layout: Layout) -> Managed:
    return Managed("toxiproxy", layout.run, layout.logs)


def url(layout: Layout) -> str:
    return f"http://{LOOPBACK}:{layout.ports.toxiproxy}"


def client(layout: Layout) -> Toxiproxy:
    return Toxiproxy(url(layout))


def s3_endpoint(layout: Layout) -> str:
    return f"http://{layout.host}:{layout.ports.s3_proxy}"


def dynamodb_endpoint(layout: Layout) -> str:
    return f"http://{layout.host}:{layout.ports.dynamodb_proxy}"


def aws_proxies(layout: Layout) -> list[Proxy]:
    moto = aws.endpoint(layout).removeprefix("http://")
    return [Proxy("s3", listen=s3_endpoint(layout).removeprefix("http://"), upstream=moto),
            Proxy("dynamodb", listen=dynamodb_endpoint(layout).removeprefix("http://"), upstream=moto)]


def up(layout: Layout, proxies: Sequence[Proxy]) -> None:
    """Starts Toxiproxy if it is not running, then makes sure each of `proxies` exists (a running
    proxy keeps its toxics)."""
    svc = service(layout)
    if not svc.running():
        run_build(REPO / "dev" / "build" / "toxiproxy.sh", what="building toxiproxy")
        # Its info level logs every connection; warnings and errors are what a failed start shows.
        svc.start([str(layout.bin / "toxiproxy-server"), "-host", LOOPBACK, "-port", str(layout.ports.toxiproxy)],
                  env={**os.environ, "LOG_LEVEL": "warn"})
        wait_until(svc, lambda: _answers(layout), timeout=30, what=f"its API on {url(layout)}")
    try:
        client(layout).populate(proxies)
    except ToxiproxyError as error:
        raise StackError(f"creating the fault proxies failed: {error}; see {svc.log_file}") from error


def _answers(layout: Layout) -> bool:
    try:
        client(layout).version()
    except ToxiproxyError:
        return False
    return True

"""What importing 100M rows would cost on AWS Fargate Spot, from the measured rows per vCPU.

A contender's rows/s per vCPU is its rows/s divided by the CPU cores it kept busy (CPU seconds over
wall seconds), i.e. rows per CPU second. A pod with `vcpu` cores is assumed to run at that rate times
min(vcpu, max(1, cores the contender used here)): CPU-bound, so it keeps one vCPU busy when it has
one to itself (here it shares two cores with the broker and moto, so it often shows fewer than 1),
and it uses more than one only as far as it did here (a process that used 1.3 cores gains nothing
from a 2nd vCPU beyond those 0.3). S3, the broker and the network are assumed not to be the limit.
Fargate bills vCPU and memory per second, with a one-minute minimum, for the pod's requests,
whatever it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# AWS Fargate, us-east-1 (N. Virginia), Linux/x86, USD, from https://aws.amazon.com/fargate/pricing/.
# On-demand: $0.04048 per vCPU-hour and $0.004445 per GB-hour (unchanged since the January 2019 price
# cut; as last known to us, 2024-2025). Fargate Spot has no fixed price: AWS moves it with supply and
# demand, at "up to 70 %" off on-demand. The Spot figures below are on-demand less 70 %, which is the
# figure we know best for us-east-1 (believed current as of 2024-2025), NOT a quote: check the current
# price list ("Fargate Spot pricing" on the page above) before relying on them.
PRICE_SOURCE = ("AWS Fargate pricing page, us-east-1, Linux/x86; Spot = on-demand less 70 %, believed current "
                "as of 2024-2025, not verified: check the current price list")
ON_DEMAND_VCPU_HOUR = 0.04048
ON_DEMAND_GB_HOUR = 0.004445
SPOT_VCPU_HOUR = 0.012144  # 0.04048 x 0.3
SPOT_GB_HOUR = 0.0013335  # 0.004445 x 0.3
MINIMUM_BILLED_S = 60.0
ROWS = 100_000_000


@dataclass(frozen=True)
class Pod:
    vcpu: float
    gb: float

    @property
    def spot_per_hour(self) -> float:
        return self.vcpu * SPOT_VCPU_HOUR + self.gb * SPOT_GB_HOUR

    @property
    def on_demand_per_hour(self) -> float:
        return self.vcpu * ON_DEMAND_VCPU_HOUR + self.gb * ON_DEMAND_GB_HOUR

    def __str__(self) -> str:
        return f"{self.vcpu:g} vCPU / {self.gb:g} GB"


PODS = (Pod(1, 2), Pod(2, 4))  # the worker pod's request (1 vCPU, 2 GB), and twice that


@dataclass(frozen=True)
class Estimate:
    pod: Pod
    rows_per_s: float  # the pod's rate
    hours: float

    @property
    def spot_usd(self) -> float:
        return self.pod.spot_per_hour * max(self.hours, MINIMUM_BILLED_S / 3600)

    @property
    def on_demand_usd(self) -> float:
        return self.pod.on_demand_per_hour * max(self.hours, MINIMUM_BILLED_S / 3600)


def estimate(rows_per_vcpu_s: float, cores_used: float, pod: Pod, rows: int = ROWS) -> Estimate:
    """Importing `rows` on one `pod`, at `rows_per_vcpu_s` per core, on at most `cores_used` cores."""
    rate = rows_per_vcpu_s * min(pod.vcpu, max(1.0, cores_used))
    return Estimate(pod, rate, rows / rate / 3600)


@dataclass(frozen=True)
class Measured:
    """What the cost needs from one contender's runs (medians)."""

    name: str
    rows_per_vcpu_s: float
    cores_used: float
    peak_rss_bytes: int
    ok: bool = True


def table(measured: Sequence[Measured], pods: Sequence[Pod] = PODS, rows: int = ROWS) -> str:
    """The markdown cost section: one line per contender, hours and USD per pod size."""
    head = ["contender", "rows/s per vCPU", "cores used here", "peak RSS MB"]
    for pod in pods:
        head += [f"{pod}: rows/s", f"{pod}: hours", f"{pod}: Spot USD"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for m in measured:
        if not m.ok or not m.rows_per_vcpu_s > 0 or not m.cores_used > 0:
            continue
        cells = [m.name, f"{m.rows_per_vcpu_s:,.0f}", f"{m.cores_used:.2f}", f"{m.peak_rss_bytes / 1e6:,.0f}"]
        for pod in pods:
            found = estimate(m.rows_per_vcpu_s, m.cores_used, pod, rows)
            fits = "" if m.peak_rss_bytes < pod.gb * 2**30 else " (peak RSS above the pod's memory)"
            cells += [f"{found.rows_per_s:,.0f}", f"{found.hours:.2f}", f"${found.spot_usd:.4f}{fits}"]
        lines.append("| " + " | ".join(cells) + " |")
    pod_prices = "; ".join(f"{pod}: ${pod.spot_per_hour:.5f}/h Spot, ${pod.on_demand_per_hour:.5f}/h on-demand"
                           for pod in pods)
    notes = [
        f"{rows / 1e6:,.0f}M rows on one pod. Prices: Fargate Spot ${SPOT_VCPU_HOUR} per vCPU-hour and "
        f"${SPOT_GB_HOUR} per GB-hour ({PRICE_SOURCE}); {pod_prices}. On-demand costs "
        f"{ON_DEMAND_VCPU_HOUR / SPOT_VCPU_HOUR:.2f}x the Spot figure.",
        "rows/s per vCPU = rows per CPU second of the contender's process tree (user + system), i.e. rows/s "
        "divided by the cores it used (CPU s / wall s). The pod's rows/s = rows/s per vCPU x min(pod vCPU, "
        "max(1, cores used here)): CPU-bound, one vCPU kept busy, more only as far as it used more here (where "
        "it shared 2 cores with the broker and moto). Billed per second, one minute minimum, for the pod's "
        "requests: a second vCPU that the contender cannot use doubles the bill.",
        "Start-up is included, as measured: a worker's ~1 s of imports, connections and claims weighs on a "
        "1M-row run about 100 times more than on 100M rows, so the worker figures are on the high side "
        "(the runs table's 'rows/s after start' shows the rate without it).",
        "Not counted: the broker's and S3's CPU (on this machine they share the same cores, and S3 is moto), "
        "data transfer, and kcat reading a local file where the worker reads S3.",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes)

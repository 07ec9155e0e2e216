"""Monthly cost estimate of a plan from the dated price table in `prices.py`.

Pure: a plan in, lines out. Anything billed by usage (S3, log ingestion, requests, Batch
jobs that scale to zero) is listed as "depends on usage" rather than guessed; anything we
cannot price (an instance type missing from the table) is a warning, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops.plan import Plan, PlanResource
from mlops.review import prices
from mlops.review.prices import HOURS_PER_MONTH


@dataclass(frozen=True)
class CostLine:
    urn: str
    name: str
    type: str
    category: str
    monthly_usd: float
    basis: str
    usage_based: bool = False


@dataclass(frozen=True)
class CostEstimate:
    stack: str
    lines: list[CostLine]
    warnings: list[str] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return round(sum(line.monthly_usd for line in self.lines), 2)

    def by_category(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.category] = round(out.get(line.category, 0.0) + line.monthly_usd, 2)
        return dict(sorted(out.items()))

    def by_urn(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.urn] = round(out.get(line.urn, 0.0) + line.monthly_usd, 2)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "hours_per_month": HOURS_PER_MONTH,
            "region": prices.REGION,
            "total_monthly_usd": self.total_usd,
            "by_category": self.by_category(),
            "lines": [line.__dict__ for line in self.lines],
            "warnings": self.warnings,
            "assumptions": ASSUMPTIONS,
        }


ASSUMPTIONS = [
    f"us-east-1 on-demand list prices as of {prices.AS_OF}; {HOURS_PER_MONTH} hours a month.",
    f"Spot capacity assumed {int(prices.SPOT_DISCOUNT * 100)} % under on-demand "
    f"({prices.SPOT_DISCOUNT_SOURCE}).",
    "Batch compute environments with min vCPUs 0 cost nothing when idle: usage-based.",
    "Node groups are priced at their desired size with their first instance type.",
    "NAT data processing ($0.045/GB), S3 storage and requests, log ingestion, Step Functions "
    "transitions and data transfer depend on usage and are not included.",
]

_USAGE_BASED: dict[str, tuple[str, str]] = {
    "aws:s3/bucket:Bucket": ("storage", "S3 storage and requests: depends on usage"),
    "aws:cloudwatch/logGroup:LogGroup": ("monitoring", "log ingestion and storage: usage"),
    "aws:sfn/stateMachine:StateMachine": ("pipeline", "state transitions: depends on usage"),
    "aws:sns/topic:Topic": ("monitoring", "notifications: depends on usage"),
    "aws:ec2/flowLog:FlowLog": ("network", "flow log delivery: depends on usage"),
    "aws:ecr/repository:Repository": ("registry", "image storage: depends on usage"),
}


def _line(r: PlanResource, category: str, monthly: float, basis: str) -> CostLine:
    return CostLine(r.urn, r.name, r.type, category, round(monthly, 2), basis)


def _usage(r: PlanResource, category: str, basis: str) -> CostLine:
    return CostLine(r.urn, r.name, r.type, category, 0.0, basis, usage_based=True)


def _hourly(r: PlanResource, category: str, key: str, count: float, what: str) -> CostLine:
    price = prices.FLAT[key]
    monthly = count * price.usd * HOURS_PER_MONTH
    qty = f"{count:g} × " if count != 1 else ""
    return _line(r, category, monthly, f"{qty}{what} × {HOURS_PER_MONTH} h × ${price.usd}/h")


def _node_group(r: PlanResource) -> tuple[list[CostLine], list[str]]:
    scaling = r.inputs.get("scalingConfig") or {}
    desired = int(scaling.get("desiredSize", scaling.get("minSize", 0)) or 0)
    types = r.inputs.get("instanceTypes") or []
    if not types:
        return [_line(r, "compute", 0.0, "instance type set in the launch template")], [
            f"{r.name}: node group instance type is not in its inputs; not priced"
        ]
    itype = str(types[0])
    price = prices.EC2_ON_DEMAND.get(itype)
    if price is None:
        return [_line(r, "compute", 0.0, f"{desired} × {itype}: price unknown")], [
            f"{r.name}: instance type {itype!r} is not in the price table; not priced"
        ]
    spot = r.inputs.get("capacityType") == "SPOT"
    factor = (1 - prices.SPOT_DISCOUNT) if spot else 1.0
    monthly = desired * price.usd_per_hour * HOURS_PER_MONTH * factor
    basis = f"{desired} × {itype} × {HOURS_PER_MONTH} h × ${price.usd_per_hour}/h"
    if spot:
        basis += f" × {1 - prices.SPOT_DISCOUNT:.2f} (spot)"
    return [_line(r, "compute", monthly, basis)], []


def _batch(r: PlanResource) -> tuple[list[CostLine], list[str]]:
    compute = r.inputs.get("computeResources") or {}
    types = [str(t) for t in compute.get("instanceTypes") or []]
    warnings = [
        f"{r.name}: instance type {t!r} is not in the price table"
        for t in types
        if t not in prices.EC2_ON_DEMAND
    ]
    known = [prices.EC2_ON_DEMAND[t] for t in types if t in prices.EC2_ON_DEMAND]
    spot = compute.get("type") in ("SPOT", "FARGATE_SPOT")
    factor = (1 - prices.SPOT_DISCOUNT) if spot else 1.0
    per_vcpu = min((p.usd_per_hour / p.vcpus for p in known), default=None)
    min_vcpus = int(compute.get("minVcpus", 0) or 0)
    max_vcpus = int(compute.get("maxVcpus", 0) or 0)
    kind = "spot" if spot else "on-demand"
    if per_vcpu is None:
        return [_line(r, "training", 0.0, "no priced instance type")], warnings or [
            f"{r.name}: no instance types to price"
        ]
    rate = per_vcpu * factor
    if min_vcpus == 0:
        basis = (
            f"usage-based ({kind}, scales to zero): ≈ ${rate:.4f}/vCPU-h, "
            f"ceiling {max_vcpus} vCPUs ≈ ${max_vcpus * rate * HOURS_PER_MONTH:,.0f}/month"
        )
        return [_usage(r, "training", basis)], warnings
    monthly = min_vcpus * rate * HOURS_PER_MONTH
    basis = f"min {min_vcpus} vCPUs always on × ${rate:.4f}/vCPU-h ({kind}) × {HOURS_PER_MONTH} h"
    return [_line(r, "training", monthly, basis)], warnings


def _rds(r: PlanResource) -> tuple[list[CostLine], list[str]]:
    cls = str(r.inputs.get("instanceClass", ""))
    multi = bool(r.inputs.get("multiAz", False))
    copies = 2 if multi else 1
    lines: list[CostLine] = []
    warnings: list[str] = []
    price = prices.RDS_POSTGRES_SINGLE_AZ.get(cls)
    if price is None:
        lines.append(_line(r, "database", 0.0, f"{cls}: price unknown"))
        warnings.append(f"{r.name}: RDS instance class {cls!r} is not in the price table")
    else:
        monthly = copies * price.usd_per_hour * HOURS_PER_MONTH
        az = " × 2 (multi-AZ)" if multi else ""
        basis = f"{cls} × {HOURS_PER_MONTH} h × ${price.usd_per_hour}/h{az}"
        lines.append(_line(r, "database", monthly, basis))
    storage = int(r.inputs.get("allocatedStorage", 0) or 0)
    if storage:
        sp = prices.FLAT["rds_gp3_storage_single_az"]
        basis = f"{storage} GiB × ${sp.usd}/GiB-month" + (" × 2 (multi-AZ)" if multi else "")
        lines.append(_line(r, "database", copies * storage * sp.usd, basis))
    return lines, warnings


def _eks(r: PlanResource) -> tuple[list[CostLine], list[str]]:
    support = (r.inputs.get("upgradePolicy") or {}).get("supportType")
    if support == "STANDARD":
        return [_hourly(r, "cluster", "eks_control_plane_standard", 1, "control plane")], []
    line = _hourly(r, "cluster", "eks_control_plane_extended", 1, "control plane (EXTENDED)")
    if support is None:
        return [line], [
            f"{r.name}: upgradePolicy.supportType unset: EKS defaults to EXTENDED support "
            "($0.60/h, 6× STANDARD); set it to STANDARD"
        ]
    return [line], []


def resource_cost(r: PlanResource) -> tuple[list[CostLine], list[str]]:
    """Cost lines and warnings for one resource; empty when it is free."""
    t = r.type
    if t == "aws:eks/cluster:Cluster":
        return _eks(r)
    if t == "aws:eks/nodeGroup:NodeGroup":
        return _node_group(r)
    if t == "aws:batch/computeEnvironment:ComputeEnvironment":
        return _batch(r)
    if t == "aws:rds/instance:Instance":
        return _rds(r)
    if t == "aws:ec2/natGateway:NatGateway":
        if r.inputs.get("connectivityType") == "private":
            return [_hourly(r, "network", "nat_gateway", 1, "private NAT gateway")], []
        return [_hourly(r, "network", "nat_gateway", 1, "NAT gateway (+ data, usage)")], []
    if t == "aws:ec2/eip:Eip":
        return [_hourly(r, "network", "public_ipv4", 1, "public IPv4")], []
    if t == "aws:ec2/vpcEndpoint:VpcEndpoint":
        if r.inputs.get("vpcEndpointType") != "Interface":
            return [], []  # gateway endpoints (S3, DynamoDB) are free
        azs = max(1, len(r.inputs.get("subnetIds") or []))
        return [_hourly(r, "network", "interface_endpoint_per_az", azs, "AZ")], []
    if t == "aws:kms/key:Key":
        p = prices.FLAT["kms_key"]
        return [_line(r, "security", p.usd, f"1 key × ${p.usd}/month")], []
    if t == "aws:cloudwatch/metricAlarm:MetricAlarm":
        p = prices.FLAT["cloudwatch_alarm"]
        return [_line(r, "monitoring", p.usd, f"1 alarm × ${p.usd}/month")], []
    if t == "aws:cloudwatch/dashboard:Dashboard":
        p = prices.FLAT["cloudwatch_dashboard"]
        return [_line(r, "monitoring", p.usd, f"1 dashboard × ${p.usd}/month")], []
    if t in _USAGE_BASED:
        category, basis = _USAGE_BASED[t]
        return [_usage(r, category, basis)], []
    return [], []


def estimate(plan: Plan) -> CostEstimate:
    lines: list[CostLine] = []
    warnings: list[str] = []
    for r in sorted(plan.resources, key=lambda r: r.urn):
        got, warn = resource_cost(r)
        lines += got
        warnings += warn
    lines.sort(key=lambda line: (line.category, -line.monthly_usd, line.urn))
    return CostEstimate(plan.stack, lines, warnings)


def render_table(est: CostEstimate) -> str:
    rows = [
        (line.category, line.name, f"${line.monthly_usd:,.2f}", line.basis) for line in est.lines
    ]
    headers = ("category", "resource", "monthly", "basis")
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    out += ["", f"total ≈ ${est.total_usd:,.2f}/month (fixed costs; usage-based lines excluded)"]
    for category, usd in est.by_category().items():
        out.append(f"  {category:<12} ${usd:>10,.2f}")
    if est.warnings:
        out += ["", "warnings:", *(f"  ! {w}" for w in est.warnings)]
    out += ["", "assumptions:", *(f"  - {a}" for a in ASSUMPTIONS)]
    return "\n".join(out)


@dataclass(frozen=True)
class CostDelta:
    base_total: float
    head_total: float
    by_category: list[tuple[str, float, float]]  # category, base, head
    warnings: list[str]

    @property
    def delta(self) -> float:
        return round(self.head_total - self.base_total, 2)


def delta(base: CostEstimate, head: CostEstimate) -> CostDelta:
    b, h = base.by_category(), head.by_category()
    rows = [(c, b.get(c, 0.0), h.get(c, 0.0)) for c in sorted(set(b) | set(h))]
    new_warnings = [w for w in head.warnings if w not in base.warnings]
    return CostDelta(base.total_usd, head.total_usd, rows, new_warnings)

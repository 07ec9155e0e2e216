"""Estimated time to `pulumi up` from scratch: the critical path of the dependency graph.

Pulumi creates a resource as soon as everything it depends on exists, so the wall time of a
fresh `up` is the longest chain of explicit `dependencies` weighted by how long AWS takes to
create each resource. Durations are typical creation times, not guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops.plan import Plan

# type → (seconds, source). Ranges are from the service documentation or provider timeouts;
# we use the midpoint an engineer would quote.
DURATIONS_S: dict[str, tuple[float, str]] = {
    "aws:eks/cluster:Cluster": (
        12 * 60,
        "9–15 min; https://docs.aws.amazon.com/eks/latest/userguide/create-cluster.html",
    ),
    "aws:eks/nodeGroup:NodeGroup": (
        4 * 60,
        "3–5 min; https://docs.aws.amazon.com/eks/latest/userguide/create-managed-node-group.html",
    ),
    "aws:eks/addon:Addon": (90, "1–2 min; EKS add-on reaching ACTIVE"),
    "aws:ec2/natGateway:NatGateway": (
        90,
        "1–2 min; https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-working-with.html",
    ),
    "aws:rds/instance:Instance": (
        12 * 60,
        "8–15 min (multi-AZ at the upper end); RDS instance reaching available",
    ),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (90, "1–2 min; interface endpoint reaching available"),
    "kubernetes:helm.sh/v3:Release": (180, "≈3 min; kube-prometheus-stack install with wait"),
    "aws:batch/computeEnvironment:ComputeEnvironment": (30, "≈30 s; VALID state"),
    "aws:cloudfront/distribution:Distribution": (5 * 60, "3–8 min"),
    "aws:kms/key:Key": (10, "≈10 s"),
    "aws:iam/role:Role": (8, "≈5–10 s with IAM propagation retries"),
    "kubernetes:apps/v1:Deployment": (60, "≈1 min; rollout wait for ready replicas"),
}
DEFAULT_S = 3.0  # quick API resources: 2-5 s
DEFAULT_SOURCE = "2–5 s; a single control-plane API call"
ZERO_TYPES_PREFIX = (
    "mlops:",
    "pulumi:pulumi:Stack",
)  # also matches StackReference (a read)  # components take no time of their own


def duration(type_: str) -> float:
    if type_.startswith(ZERO_TYPES_PREFIX) or type_.startswith("pulumi:providers:"):
        return 0.0
    return DURATIONS_S.get(type_, (DEFAULT_S, DEFAULT_SOURCE))[0]


@dataclass(frozen=True)
class CriticalPath:
    seconds: float
    path: list[tuple[str, float]]  # (urn, seconds of that step), in creation order

    def human(self) -> str:
        return format_duration(self.seconds)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def critical_path(plan: Plan) -> CriticalPath:
    """Longest duration-weighted chain through `dependencies` (ties broken by urn)."""
    by_urn = plan.by_urn()
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}

    def visit(urn: str, stack: frozenset[str]) -> float:
        if urn in finish:
            return finish[urn]
        resource = by_urn[urn]
        best, best_dep = 0.0, None
        for dep in sorted(set(resource.dependencies)):
            if dep not in by_urn or dep in stack:  # outside the plan, or a cycle: ignore
                continue
            t = visit(dep, stack | {urn})
            if t > best:
                best, best_dep = t, dep
        finish[urn] = best + duration(resource.type)
        via[urn] = best_dep
        return finish[urn]

    for urn in sorted(by_urn):
        visit(urn, frozenset())
    if not finish:
        return CriticalPath(0.0, [])
    end = max(sorted(finish), key=lambda u: finish[u])
    chain: list[tuple[str, float]] = []
    cursor: str | None = end
    while cursor is not None:
        chain.append((cursor, duration(by_urn[cursor].type)))
        cursor = via[cursor]
    chain.reverse()
    return CriticalPath(finish[end], chain)


def render(cp: CriticalPath) -> str:
    steps = " → ".join(f"{urn.rsplit('::', 1)[-1]} ({format_duration(s)})" for urn, s in cp.path)
    return f"estimated time to `pulumi up` from scratch: {cp.human()} (critical path: {steps})"

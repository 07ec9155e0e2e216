"""VPC: every network records flow logs (a FlowLog is its own resource: a stack rule)."""

from __future__ import annotations

from collections.abc import Sequence

from infra.policy.core import Resource, stack_rule

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"


@stack_rule(
    id="MLOPS-VPC-001",
    title="VPC flow logs",
    severity="low",
    enforcement="advisory",
    category="security",
    checkov=("CKV2_AWS_11",),
    cis=("3.0 3.7",),
    description="Every VPC records flow logs.",
    remediation="Enable network.flow_logs.",
)
def _vpc_flow_logs(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    out = []
    for vpc in resources:
        if vpc.type != VPC:
            continue
        if not any(r.type == FLOW_LOG and vpc.urn in r.dependencies for r in resources):
            out.append((vpc, "no VPC flow log"))
    return out

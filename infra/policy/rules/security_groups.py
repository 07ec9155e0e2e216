"""Security groups, in all three shapes (inline rules, SecurityGroupRule, the vpc.* rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, ResourceCheck, Rule, per_type, register, resource_rule
from infra.policy.documents import OPEN_CIDRS, as_list, open_ingress

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_TYPES = (
    SECURITY_GROUP,
    DEFAULT_SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
)
EGRESS_TYPES = (
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
)


def _sg_ingress(type_: str) -> ResourceCheck:
    return lambda inputs, ctx: open_ingress(type_, inputs)


register(
    Rule(
        id="MLOPS-SG-001",
        title="No ingress from the internet",
        severity="critical",
        enforcement="mandatory",
        category="security",
        description="No security group admits 0.0.0.0/0 or ::/0.",
        remediation="Admit the VPC CIDR or a source security group instead.",
        checkov=("CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260"),
        cis=("3.0 5.2", "3.0 5.3"),
        types=INGRESS_TYPES,
        check_typed=per_type(_sg_ingress, INGRESS_TYPES),
    )
)


def _all_ports_open_egress(type_: str) -> ResourceCheck:
    def check(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        rules: list[Mapping[str, Any]]
        if type_ == SECURITY_GROUP:
            rules = as_list(inputs.get("egress"))
        elif type_ == SECURITY_GROUP_RULE:
            rules = [inputs] if inputs.get("type") == "egress" else []
        else:  # aws:vpc/securityGroupEgressRule
            rules = [{"protocol": inputs.get("ipProtocol"), "cidrBlocks": [inputs.get("cidrIpv4")]}]
        out = []
        for r in rules:
            if str(r.get("protocol")) in ("-1", "all") and any(
                c in OPEN_CIDRS for c in as_list(r.get("cidrBlocks"))
            ):
                out.append("egress on all ports and protocols to 0.0.0.0/0")
        return out

    return check


register(
    Rule(
        id="MLOPS-SG-002",
        title="Egress restricted",
        severity="low",
        enforcement="advisory",
        category="security",
        description="Egress is limited to the ports needed rather than all ports to anywhere.",
        remediation="List the egress ports (e.g. 443) or use VPC endpoints.",
        checkov=("CKV_AWS_382",),
        types=EGRESS_TYPES,
        check_typed=per_type(_all_ports_open_egress, EGRESS_TYPES),
    )
)


@resource_rule(
    id="MLOPS-SG-003",
    title="Default security group allows nothing",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=(DEFAULT_SECURITY_GROUP,),
    checkov=("CKV2_AWS_12",),
    cis=("3.0 5.4",),
    description="The VPC's default security group has no rules.",
    remediation="Manage it with DefaultSecurityGroup and no ingress/egress.",
)
def _default_sg(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if as_list(inputs.get("ingress")) or as_list(inputs.get("egress")):
        return ["the VPC's default security group has rules; it should allow nothing"]
    return []

"""EC2 launch templates (Batch and EKS nodes): IMDSv2, hop limit 1, encrypted EBS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule
from infra.policy.documents import as_list, get, truthy

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@resource_rule(
    id="MLOPS-EC2-001",
    title="IMDSv2 required",
    severity="high",
    enforcement="mandatory",
    category="security",
    types=(LAUNCH_TEMPLATE,),
    checkov=("CKV_AWS_79",),
    cis=("3.0 5.6",),
    description="Instances only accept session-token metadata requests.",
    remediation="Set metadataOptions.httpTokens required.",
)
def _imdsv2(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    tokens = get(inputs, "metadataOptions.httpTokens")
    if tokens != "required":
        return [f"metadataOptions.httpTokens is {tokens!r}; allowed 'required' (IMDSv2)"]
    return []


@resource_rule(
    id="MLOPS-EC2-002",
    title="IMDS hop limit 1",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=(LAUNCH_TEMPLATE,),
    description="Containers cannot reach the node's metadata (and its role) through an extra hop.",
    remediation="Set metadataOptions.httpPutResponseHopLimit 1.",
)
def _hop_limit(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    hops = get(inputs, "metadataOptions.httpPutResponseHopLimit")
    if hops != 1:
        return [
            f"metadataOptions.httpPutResponseHopLimit is {hops!r}; allowed 1 "
            "(containers must use pod identity, not the node's role)"
        ]
    return []


@resource_rule(
    id="MLOPS-EC2-003",
    title="Encrypted EBS volumes",
    severity="high",
    enforcement="mandatory",
    category="security",
    types=(LAUNCH_TEMPLATE,),
    checkov=("CKV_AWS_8",),
    cis=("3.0 2.2.1",),
    description="Every EBS volume in a launch template is encrypted.",
    remediation="Set blockDeviceMappings[].ebs.encrypted true (and kmsKeyId).",
)
def _ebs_encrypted(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    out = []
    for m in as_list(inputs.get("blockDeviceMappings")):
        ebs = m.get("ebs")
        if ebs is not None and not truthy(ebs.get("encrypted")):
            out.append(f"EBS volume {m.get('deviceName', '?')} is not encrypted")
    return out

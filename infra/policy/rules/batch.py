"""AWS Batch (training jobs): managed compute environments cost nothing while idle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule
from infra.policy.documents import get


@resource_rule(
    id="MLOPS-BATCH-001",
    title="Batch scales to zero",
    severity="low",
    enforcement="advisory",
    category="cost",
    types=("aws:batch/computeEnvironment:ComputeEnvironment",),
    description="Managed compute environments keep min vCPUs at 0 so idle costs nothing.",
    remediation="Set computeResources.minVcpus 0.",
)
def _batch_min_vcpus(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if inputs.get("type") == "UNMANAGED":
        return []
    vcpus = get(inputs, "computeResources.minVcpus", 0)
    return [] if vcpus == 0 else [f"computeResources.minVcpus is {vcpus}: paid while idle"]

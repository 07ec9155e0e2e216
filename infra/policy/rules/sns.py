"""SNS: alert topics are encrypted at rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule


@resource_rule(
    id="MLOPS-SNS-001",
    title="SNS topic encrypted",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=("aws:sns/topic:Topic",),
    checkov=("CKV_AWS_26",),
    description="Alert topics are encrypted at rest.",
    remediation="Set kmsMasterKeyId.",
)
def _sns_kms(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return [] if inputs.get("kmsMasterKeyId") else ["kmsMasterKeyId unset: topic not encrypted"]

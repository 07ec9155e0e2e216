"""KMS: customer keys rotate, and a scheduled deletion can be cancelled in time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule
from infra.policy.documents import truthy

KEY = "aws:kms/key:Key"


@resource_rule(
    id="MLOPS-KMS-001",
    title="KMS key rotation",
    severity="high",
    enforcement="mandatory",
    category="security",
    types=(KEY,),
    checkov=("CKV_AWS_7",),
    cis=("3.0 3.6",),
    description="Symmetric customer keys rotate yearly.",
    remediation="Set enableKeyRotation true.",
)
def _kms_rotation(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    spec = inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT")
    if spec == "SYMMETRIC_DEFAULT" and not truthy(inputs.get("enableKeyRotation")):
        return ["enableKeyRotation is not true on a symmetric key"]
    return []


@resource_rule(
    id="MLOPS-KMS-002",
    title="KMS deletion window",
    severity="medium",
    enforcement="mandatory",
    category="resilience",
    types=(KEY,),
    description="A scheduled key deletion can be cancelled for at least 7 days (30 in prod).",
    remediation="Set deletionWindowInDays to 30 (storage.kms_deletion_window_days).",
)
def _kms_window(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    days = inputs.get("deletionWindowInDays", 30)  # AWS default when unset
    need = 30 if ctx.protected else 7
    if not isinstance(days, int) or days < need:
        return [f"deletionWindowInDays is {days!r}; at least {need} in {ctx.environment or 'any'}"]
    return []

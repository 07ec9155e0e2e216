"""CloudWatch Logs: log groups expire their data and encrypt it with the platform key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


@resource_rule(
    id="MLOPS-LOG-001",
    title="Log retention set",
    severity="medium",
    enforcement="mandatory",
    # Logs kept forever keep what they hold (request data, identities) longer than needed.
    category="security",
    types=(LOG_GROUP,),
    checkov=("CKV_AWS_66",),
    description="Log groups expire their data.",
    remediation="Set retentionInDays.",
)
def _log_retention(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    days = inputs.get("retentionInDays", 0)
    return (
        [] if isinstance(days, int) and days > 0 else ["retentionInDays unset: logs kept forever"]
    )


@resource_rule(
    id="MLOPS-LOG-002",
    title="Log groups KMS-encrypted",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=(LOG_GROUP,),
    checkov=("CKV_AWS_158",),
    description="Log data is encrypted with the platform key.",
    remediation="Set kmsKeyId.",
)
def _log_kms(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return [] if inputs.get("kmsKeyId") else ["kmsKeyId unset: log data encrypted with an AWS key"]

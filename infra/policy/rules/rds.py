"""RDS (the tracking database): encrypted, backed up, private; protected and multi-AZ in prod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule
from infra.policy.documents import truthy

INSTANCE = "aws:rds/instance:Instance"


@resource_rule(
    id="MLOPS-RDS-001",
    title="RDS storage encrypted",
    severity="high",
    enforcement="mandatory",
    category="security",
    types=(INSTANCE,),
    checkov=("CKV_AWS_16",),
    cis=("3.0 2.3.1",),
    description="Database storage, backups and snapshots are encrypted.",
    remediation="Set storageEncrypted true with kmsKeyId (replaces the instance).",
)
def _rds_encrypted(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return [] if truthy(inputs.get("storageEncrypted")) else ["storageEncrypted is not true"]


@resource_rule(
    id="MLOPS-RDS-002",
    title="RDS backups",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    types=(INSTANCE,),
    checkov=("CKV_AWS_133",),
    description="Automated backups are kept at least 1 day (7 in prod).",
    remediation="Set backupRetentionPeriod (tracking.db_backup_retention_days).",
)
def _rds_backups(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    days = inputs.get("backupRetentionPeriod", 1)
    need = 7 if ctx.retained else 1
    if not isinstance(days, int) or days < need:
        return [f"backupRetentionPeriod is {days!r}; at least {need} in {ctx.environment or 'any'}"]
    return []


@resource_rule(
    id="MLOPS-RDS-003",
    title="RDS deletion protection in prod",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    types=(INSTANCE,),
    checkov=("CKV_AWS_293",),
    description="The production tracking database cannot be deleted by accident.",
    remediation="Set deletionProtection true (tracking.db_deletion_protection).",
)
def _rds_deletion_protection(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.retained and not truthy(inputs.get("deletionProtection")):
        return [f"deletionProtection is not true in {ctx.environment}"]
    return []


@resource_rule(
    id="MLOPS-RDS-004",
    title="RDS not publicly accessible",
    severity="critical",
    enforcement="mandatory",
    category="security",
    types=(INSTANCE,),
    checkov=("CKV_AWS_17",),
    cis=("3.0 2.3.3",),
    description="The database has no public address.",
    remediation="Set publiclyAccessible false.",
)
def _rds_public(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return ["publiclyAccessible is true"] if truthy(inputs.get("publiclyAccessible")) else []


@resource_rule(
    id="MLOPS-RDS-005",
    title="RDS multi-AZ in prod",
    severity="medium",
    enforcement="advisory",
    category="resilience",
    types=(INSTANCE,),
    checkov=("CKV_AWS_157",),
    description="The production database has a standby in a second AZ.",
    remediation="Set multiAz true (tracking.db_multi_az).",
)
def _rds_multi_az(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.retained and not truthy(inputs.get("multiAz")):
        return [f"multiAz is not true in {ctx.environment}: one AZ outage stops tracking"]
    return []

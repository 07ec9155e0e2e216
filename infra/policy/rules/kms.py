"""KMS: customer keys rotate, and a scheduled deletion can be cancelled in time."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.policy.core import Context, Resource, resource_rule, stack_rule
from infra.policy.documents import (
    allowing_statement,
    as_list,
    get,
    policy_document,
    statements,
    truthy,
)

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
    need = 30 if ctx.retained else 7
    if not isinstance(days, int) or days < need:
        return [f"deletionWindowInDays is {days!r}; at least {need} in {ctx.environment or 'any'}"]
    return []


# --- who uses a customer-managed key, and whether its policy lets them ----------------

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
COMPUTE_ENVIRONMENT = "aws:batch/computeEnvironment:ComputeEnvironment"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
ADDON = "aws:eks/addon:Addon"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TOPIC = "aws:sns/topic:Topic"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
BUDGET = "aws:budgets/budget:Budget"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
# The service-linked roles that launch instances (and so attach their encrypted volumes),
# as the EC2 Auto Scaling guide's "Required AWS KMS key policy for use with encrypted
# volumes" names them: Auto Scaling for managed node groups and Batch's on-demand
# instances, Spot for Batch's Spot instances.
AUTOSCALING_ROLE = "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
SPOT_ROLE = "role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
EBS_CSI_ADDON = "aws-ebs-csi-driver"
VOLUME_ACTIONS = ("kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt")
PUBLISH_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def _key_of(r: Resource, keys: Mapping[str, Resource]) -> Resource | None:
    """The plan's customer-managed key a resource names (it depends on it)."""
    return next((keys[d] for d in r.dependencies if d in keys), None)


def _account(doc: Mapping[str, Any] | None) -> str | None:
    for s in statements(doc):
        for principal in as_list((s.get("Principal") or {}).get("AWS")):
            found = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):root$", str(principal))
            if found:
                return found[1]
    return None


def _missing(doc: Mapping[str, Any] | None, actions: Sequence[str], **principal: str) -> list[str]:
    return [a for a in actions if allowing_statement(doc, a, **principal) is None]


def _launching_roles(template: Resource, resources: Sequence[Resource]) -> set[str]:
    """The service-linked roles that launch instances from this launch template."""
    roles = set()
    for r in resources:
        if template.urn not in r.dependencies:
            continue
        if r.type == NODE_GROUP:
            roles.add(AUTOSCALING_ROLE)
            if r.inputs.get("capacityType") == "SPOT":
                roles.add(SPOT_ROLE)
        elif r.type == COMPUTE_ENVIRONMENT:
            kind = get(r.inputs, "computeResources.type")
            roles.add(SPOT_ROLE if kind == "SPOT" else AUTOSCALING_ROLE)
            if kind == "SPOT":
                roles.add(AUTOSCALING_ROLE)
    return roles


def _role_policies(role_arn: str, resources: Sequence[Resource]) -> list[dict[str, Any]]:
    """The inline policies of the plan's role with this ARN (matched through its name)."""
    name = role_arn.rsplit("/", 1)[-1]
    roles = [r for r in resources if r.type == ROLE and r.inputs.get("name") == name]
    urns = {r.urn for r in roles}
    docs = []
    for r in resources:
        if r.type == ROLE_POLICY and urns & set(r.dependencies):
            doc = policy_document(r.inputs.get("policy"))
            if doc:
                docs.append(doc)
    return docs


@stack_rule(
    id="MLOPS-KMS-003",
    title="Everyone who uses a customer-managed key is allowed by it",
    severity="critical",
    enforcement="mandatory",
    category="security",
    description="A customer-managed key's users are allowed: the EC2 Auto Scaling and Spot "
    "service-linked roles that launch instances from a launch template encrypting volumes "
    "with it (else node groups end CREATE_FAILED and Batch jobs stay RUNNABLE), the EBS CSI "
    "driver's role for a StorageClass that names it (else volume claims stay Pending), the "
    "services that publish to a topic it encrypts (CloudWatch alarms, EventBridge, AWS "
    "Budgets; EventBridge without source conditions, which it does not send) and CloudWatch "
    "Logs for the log groups it encrypts.",
    remediation="Add the key-policy statements (infra/planning/iam.py kms_key_policy), the "
    "CSI role's KMS policy (ebs_csi_kms_policy), or use the AWS-managed key for the user.",
)
def _key_users(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    keys = {r.urn: r for r in resources if r.type == KEY}
    out: list[tuple[Resource, str]] = []
    for r in resources:
        key = _key_of(r, keys)
        if key is None:
            continue
        doc = policy_document(key.inputs.get("policy"))
        account = _account(doc)
        if r.type == LAUNCH_TEMPLATE and any(
            get(m, "ebs.kmsKeyId") for m in as_list(r.inputs.get("blockDeviceMappings"))
        ):
            for role in sorted(_launching_roles(r, resources)):
                arn = f"arn:aws:iam::{account}:{role}"
                missing = _missing(doc, VOLUME_ACTIONS, aws_principal=arn)
                if missing:
                    out.append(
                        (r, f"encrypts volumes with {key.name}, whose policy does not let "
                            f"{role.rsplit('/', 1)[-1]} (it launches the instances) "
                            f"{', '.join(missing)}")
                    )  # fmt: skip
        elif r.type == STORAGE_CLASS and get(r.inputs, "parameters.kmsKeyId"):
            out += _csi_driver_allowed(r, key, resources)
        elif r.type == TOPIC and r.inputs.get("kmsMasterKeyId"):
            out += _publishers_allowed(r, key, doc, resources)
        elif r.type == LOG_GROUP and r.inputs.get("kmsKeyId"):
            region = str(key.inputs.get("region") or _region(r) or "")
            service = f"logs.{region}.amazonaws.com"
            missing = _missing(doc, ("kms:Encrypt", "kms:GenerateDataKey"), service=service)
            if missing:
                out.append((r, f"{key.name}'s policy does not let {service} {', '.join(missing)}"))
    return out


def _region(r: Resource) -> str | None:
    found = re.search(r"arn:aws[a-z-]*:kms:([a-z0-9-]+):", str(r.inputs.get("kmsKeyId", "")))
    return found[1] if found else None


def _csi_driver_allowed(
    storage_class: Resource, key: Resource, resources: Sequence[Resource]
) -> list[tuple[Resource, str]]:
    key_arn = str(get(storage_class.inputs, "parameters.kmsKeyId"))
    drivers = [
        r for r in resources if r.type == ADDON and r.inputs.get("addonName") == EBS_CSI_ADDON
    ]
    addon = drivers[0] if drivers else None
    roles = [
        str(a.get("roleArn"))
        for a in as_list((addon.inputs if addon else {}).get("podIdentityAssociations"))
    ]
    if not roles:
        return [(storage_class, f"names {key.name}, but no EBS CSI driver role is in the plan")]
    out = []
    for role in roles:
        docs = _role_policies(role, resources)
        missing = [
            a
            for a in ("kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt")
            if not any(allowing_statement(d, a, key_arn) for d in docs)
        ]
        if missing:
            out.append(
                (storage_class, f"encrypts volumes with {key.name}, but the EBS CSI driver's "
                                f"role {role.rsplit('/', 1)[-1]} may not {', '.join(missing)}")
            )  # fmt: skip
    return out


def _publishers_allowed(
    topic: Resource, key: Resource, doc: Mapping[str, Any] | None, resources: Sequence[Resource]
) -> list[tuple[Resource, str]]:
    topic_refs = {topic.urn}
    publishers: set[str] = set()
    for r in resources:
        if not topic_refs & set(r.dependencies):
            continue
        if r.type == ALARM:
            publishers.add("cloudwatch.amazonaws.com")
        elif r.type == EVENT_TARGET:
            publishers.add("events.amazonaws.com")
        elif r.type == BUDGET:
            publishers.add("budgets.amazonaws.com")
    out = []
    for service in sorted(publishers):
        missing = _missing(doc, PUBLISH_ACTIONS, service=service)
        if missing:
            out.append(
                (topic, f"encrypted with {key.name}, whose policy does not let {service} "
                        f"(it publishes here) {', '.join(missing)}")
            )  # fmt: skip
            continue
        statement = allowing_statement(doc, "kms:GenerateDataKey", service=service) or {}
        conditions = json.dumps(statement.get("Condition") or {})
        if service == "events.amazonaws.com" and "aws:Source" in conditions:
            out.append(
                (topic, f"{key.name} allows {service} only under {conditions}: EventBridge "
                        "sends no source condition keys, so every delivery is refused")
            )  # fmt: skip
    return out

"""The least-privilege report of a local run: per role of the plan, the calls its sessions
made as the emulator's IAM enforcement decided them, against the policies the plan gives
the role.

    denied               calls made but not granted: in AWS the workload fails there
    granted, never used  statements no call needed: candidates to remove (a short run
                         does not exercise every path, so they are shown, not failed)

The decisions are the emulator's own (mlops_local.moto_host logs each one); the unused
grants are found by matching the allowed calls to the plan's statements (mlops_local.iam).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from mlops_local.iam import Access
from mlops_local.iam import report as role_report
from mlops_local.moto_host import read_calls
from mlops_local.platform import LocalPlatform

ROLE_POLICY: Final = "aws:iam/rolePolicy:RolePolicy"
ROLE: Final = "aws:iam/role:Role"
ATTACHMENT: Final = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ENCRYPTION: Final = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
# What S3 asks KMS, as the caller, for an object in a bucket encrypted with a KMS key
# (the emulator's S3 asks nothing, so these are added from the plan's encryption config).
SSE_KMS_ACTIONS: Final = {
    "s3:PutObject": "kms:GenerateDataKey",
    "s3:GetObject": "kms:Decrypt",
    "s3:GetObjectVersion": "kms:Decrypt",
}


class LeastPrivilegeError(Exception):
    """A workload made a call its role does not grant; names the role's plan resource."""


@dataclass
class RoleUse:
    role: str  # the IAM role name
    resource: str  # the plan resource that declares it
    allowed: set[tuple[str, str]] = field(default_factory=set)
    denied: set[tuple[str, str]] = field(default_factory=set)
    unused: list[str] = field(default_factory=list)
    managed: list[str] = field(default_factory=list)
    calls: set[Access] = field(default_factory=set)


@dataclass
class Report:
    roles: list[RoleUse]
    operator_calls: int

    @property
    def denied(self) -> list[tuple[RoleUse, str, str]]:
        return [(r, a, res) for r in self.roles for a, res in sorted(r.denied)]

    def summary(self) -> dict[str, Any]:
        return {
            "roles": len(self.roles),
            "calls_allowed": sum(len(r.allowed) for r in self.roles),
            "denied": [f"{r.resource}: {a} on {res}" for r, a, res in self.denied],
            "granted_never_used": sum(len(r.unused) for r in self.roles),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "roles": [
                {
                    "role": r.role,
                    "plan_resource": r.resource,
                    "calls": [f"{a} {res}" for a, res in sorted(r.allowed)],
                    "denied": [f"{a} {res}" for a, res in sorted(r.denied)],
                    "granted_never_used": r.unused,
                    "managed_policies": r.managed,
                }
                for r in self.roles
            ],
            "operator_calls": self.operator_calls,
        }

    def render(self) -> str:
        lines = ["least privilege (every call each role's sessions made, as IAM decided it):"]
        for r in self.roles:
            actions = sorted({a for a, _ in r.allowed})
            lines.append(
                f"  {r.resource:<44} {len(r.allowed):>3} distinct calls, {len(r.denied)} denied, "
                f"{len(r.unused)} grants unused"
            )
            if actions:
                lines.append(f"      used: {', '.join(actions)}")
            for action, resource in sorted(r.denied):
                lines.append(f"      DENIED {action} on {resource}")
            for unused in r.unused:
                lines.append(f"      unused: {unused}")
        if not self.denied:
            lines.append("  no call was made that the plan does not grant")
        return "\n".join(lines)

    def check(self) -> None:
        if self.denied:
            raise LeastPrivilegeError(
                "calls made but not granted by the plan:\n"
                + "\n".join(f"  {r.resource} ({r.role}): {a} on {res}" for r, a, res in self.denied)
            )


def _role_of(principal: str) -> str | None:
    """`arn:aws:sts::<account>:assumed-role/<role>/<session>` → the role name."""
    _, _, rest = principal.partition(":assumed-role/")
    return rest.split("/", 1)[0] if rest else None


def bucket_keys(platform: LocalPlatform) -> dict[str, str]:
    """Bucket → the KMS key ARN its default encryption uses (the emulator's ARN)."""
    keys = {}
    for config in platform.plan.plan.of_type(ENCRYPTION):
        inputs = platform.applied.resolve(config.inputs)
        for rule in inputs.get("rules") or []:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            if default.get("sseAlgorithm") == "aws:kms" and default.get("kmsMasterKeyId"):
                keys[str(inputs["bucket"])] = str(default["kmsMasterKeyId"])
    return keys


def implied(call: Access, keys: dict[str, str]) -> list[Access]:
    """The KMS use AWS authorizes along with an S3 object call on an SSE-KMS bucket."""
    kms = SSE_KMS_ACTIONS.get(call.action)
    if kms is None or not call.resource.startswith("arn:aws:s3:::"):
        return []
    bucket = call.resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
    return [Access(kms, keys[bucket])] if bucket in keys else []


def build(platform: LocalPlatform) -> Report:
    plan = platform.plan.plan
    names = {}  # role name → plan resource name
    for declared in plan.of_type(ROLE):
        names[str(declared.inputs["name"])] = declared.name
    documents: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for policy in plan.of_type(ROLE_POLICY):
        role = str(platform.applied.resolve(policy.inputs["role"])).rsplit("/", 1)[-1]
        documents[role].append(json.loads(platform.applied.resolve(str(policy.inputs["policy"]))))
    managed: dict[str, list[str]] = defaultdict(list)
    for attachment in plan.of_type(ATTACHMENT):
        role = str(platform.applied.resolve(attachment.inputs["role"])).rsplit("/", 1)[-1]
        managed[role].append(str(attachment.inputs["policyArn"]))

    keys = bucket_keys(platform)
    uses: dict[str, RoleUse] = {}
    operator = 0
    for call in read_calls(platform.calls_path):
        role_name = _role_of(str(call["principal"]))
        if role_name is None:
            operator += 1  # the operator (the emulator's admin user): not a workload
            continue
        use = uses.setdefault(
            role_name, RoleUse(role_name, names.get(role_name, f"(not in the plan) {role_name}"))
        )
        access = Access(
            str(call["action"]),
            str(call["resource"]),
            tuple(sorted((call.get("context") or {}).items())),
        )
        if not call["allowed"]:
            use.denied.add((access.action, access.resource))
            continue
        use.calls.add(access)
        use.calls.update(implied(access, keys))
    for role, use in uses.items():
        checked = role_report(role, documents.get(role, []), sorted(use.calls))
        use.allowed = {(a.action, a.resource) for a in checked.used}
        use.unused = checked.unused
        use.managed = managed.get(role, [])
        if not use.managed:
            # Allowed by the emulator, not by the plan: a condition moto does not
            # evaluate, or the KMS use S3 implies. AWS would deny these.
            use.denied |= {(a.action, a.resource) for a in checked.denied}
    return Report(roles=sorted(uses.values(), key=lambda u: u.resource), operator_calls=operator)

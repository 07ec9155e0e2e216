"""IAM: identity policies grant named actions on named resources; trust names the principal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, ResourceCheck, Rule, per_type, register, resource_rule
from infra.policy.documents import (
    WILDCARD_RESOURCE_EXCEPTIONS,
    allowed_pairs,
    as_list,
    is_write_action,
    policy_document,
    statements,
)

ROLE = "aws:iam/role:Role"
# The types that carry identity policy documents (a role's inline policies included).
DOCUMENT_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", ROLE)
BROAD_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
    "arn:aws:iam::aws:policy/AmazonS3FullAccess",
)


def _policy_docs(type_: str, inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    if type_ == ROLE:
        docs = [policy_document(p.get("policy")) for p in as_list(inputs.get("inlinePolicies"))]
    else:
        docs = [policy_document(inputs.get("policy"))]
    return [d for d in docs if d]


def _iam_no_star_action(type_: str) -> ResourceCheck:
    def check(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        out = []
        for doc in _policy_docs(type_, inputs):
            for action, _ in sorted(allowed_pairs(doc)):
                if action == "*" or action.endswith(":*"):
                    out.append(f"Allow of action {action!r}")
        return sorted(set(out))

    return check


register(
    Rule(
        id="MLOPS-IAM-001",
        title="No wildcard IAM actions",
        severity="critical",
        enforcement="mandatory",
        category="identity",
        description="No Allow of '*' or 'service:*' (or NotAction) in identity policies.",
        remediation="List the actions the workload calls.",
        checkov=("CKV_AWS_1", "CKV_AWS_62", "CKV_AWS_63"),
        cis=("3.0 1.16",),
        types=DOCUMENT_TYPES,
        check_typed=per_type(_iam_no_star_action, DOCUMENT_TYPES),
    )
)


def _iam_star_resource(type_: str) -> ResourceCheck:
    def check(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        bad = set()
        for doc in _policy_docs(type_, inputs):
            for action, resource in allowed_pairs(doc):
                exempt = action in WILDCARD_RESOURCE_EXCEPTIONS
                if resource == "*" and is_write_action(action) and not exempt:
                    bad.add(action)
        if not bad:
            return []
        return [f"write actions on Resource '*': {', '.join(sorted(bad))}"]

    return check


register(
    Rule(
        id="MLOPS-IAM-002",
        title="No write actions on Resource '*'",
        severity="high",
        enforcement="mandatory",
        category="identity",
        description="Write actions are scoped to ARNs, except actions AWS cannot scope "
        "(WILDCARD_RESOURCE_EXCEPTIONS).",
        remediation="Replace Resource '*' with the ARNs (or ARN patterns) the action acts on.",
        checkov=("CKV_AWS_111", "CKV_AWS_290"),
        types=DOCUMENT_TYPES,
        check_typed=per_type(_iam_star_resource, DOCUMENT_TYPES),
    )
)


@resource_rule(
    id="MLOPS-IAM-003",
    title="Restricted assume-role policy",
    severity="critical",
    enforcement="mandatory",
    category="identity",
    types=(ROLE,),
    checkov=("CKV_AWS_60",),
    description="Trust policies name the principal; web identity is conditioned on the token.",
    remediation="Name the service or role principal; add sub/aud conditions for OIDC.",
)
def _assume_role(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    doc = policy_document(inputs.get("assumeRolePolicy"))
    out = []
    for s in statements(doc):
        if s.get("Effect") != "Allow":
            continue
        principal = s.get("Principal")
        aws = as_list(principal.get("AWS")) if isinstance(principal, dict) else []
        if (principal == "*" or "*" in aws) and not s.get("Condition"):
            out.append("trust policy allows any principal ('*') without a condition")
        federated = as_list(principal.get("Federated")) if isinstance(principal, dict) else []
        if federated and not s.get("Condition"):
            out.append("web-identity trust without a condition on the token's sub/aud")
    return out


@resource_rule(
    id="MLOPS-IAM-004",
    title="No broad managed policies",
    severity="high",
    enforcement="mandatory",
    category="identity",
    types=("aws:iam/rolePolicyAttachment:RolePolicyAttachment",),
    checkov=("CKV_AWS_274",),
    cis=("3.0 1.16",),
    description="Roles do not get AdministratorAccess, PowerUserAccess, IAMFullAccess or S3 "
    "full access.",
    remediation="Write a least-privilege inline policy instead.",
)
def _broad_attachment(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    arn = str(inputs.get("policyArn", ""))
    return [f"attaches the broad managed policy {arn}"] if arn in BROAD_MANAGED_POLICIES else []

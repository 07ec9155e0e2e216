"""EKS Pod Identity roles: one shape for every workload that calls AWS from a pod."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.planning import iam
from infra.planning.tags import resource_tags


@dataclass(frozen=True)
class ServiceAccountRef:
    cluster_name: pulumi.Input[str]
    namespace: str
    service_account: str


def pod_identity_role(
    prefix: str,
    *,
    parent: pulumi.Resource,
    tags: dict[str, str],
    policy: pulumi.Input[str] | None = None,
    managed_policy_arn: str | None = None,
    bind_to: ServiceAccountRef | None = None,
) -> aws.iam.Role:
    """`<prefix>-role` assumable by the Pod Identity agent, its policy (inline or managed)
    as `<prefix>-policy`, and the association to a service account as `<prefix>-identity`."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{prefix}-role",
        assume_role_policy=json.dumps(iam.pod_identity_trust_policy()),
        tags=resource_tags(f"{prefix}-role", tags),
        opts=child,
    )
    if policy is not None:
        aws.iam.RolePolicy(f"{prefix}-policy", role=role.id, policy=policy, opts=child)
    if managed_policy_arn is not None:
        aws.iam.RolePolicyAttachment(
            f"{prefix}-policy", role=role.name, policy_arn=managed_policy_arn, opts=child
        )
    if bind_to is not None:
        aws.eks.PodIdentityAssociation(
            f"{prefix}-identity",
            cluster_name=bind_to.cluster_name,
            namespace=bind_to.namespace,
            service_account=bind_to.service_account,
            role_arn=role.arn,
            tags=resource_tags(f"{prefix}-identity", tags),
            opts=child,
        )
    return role


def service_role(
    prefix: str,
    *,
    service: str,
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
    tags: dict[str, str],
) -> aws.iam.Role:
    """`<prefix>-role` an AWS service assumes, with its one inline policy `<prefix>-policy`."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{prefix}-role",
        assume_role_policy=json.dumps(iam.assume_role_policy(service)),
        tags=resource_tags(f"{prefix}-role", tags),
        opts=child,
    )
    aws.iam.RolePolicy(f"{prefix}-policy", role=role.id, policy=policy, opts=child)
    return role

"""EKS Pod Identity roles: one shape for every workload that calls AWS from a pod."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.planning import iam
from infra.planning.tags import resource_tags

# What a service account says it runs as on a cluster without Pod Identity (an existing
# cluster, e.g. the local stack's): the role the local platform hands its pods.
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class ServiceAccountRef:
    cluster_name: pulumi.Input[str] | None  # None: no EKS, no association (see ROLE_ANNOTATION)
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
    if bind_to is not None and bind_to.cluster_name is not None:
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


def service_account_metadata(
    name: str, namespace: str, role: aws.iam.Role, cluster_name: pulumi.Input[str] | None
) -> k8s.meta.v1.ObjectMetaArgs:
    """A workload's service account; on a cluster without Pod Identity it names its role."""
    annotations = {ROLE_ANNOTATION: role.arn} if cluster_name is None else None
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, annotations=annotations)


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

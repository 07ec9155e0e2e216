"""ECR: scanned, immutable, KMS-encrypted repositories that expire old images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.policy.core import Context, Resource, resource_rule, stack_rule
from infra.policy.documents import as_list, get, truthy

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


@resource_rule(
    id="MLOPS-ECR-001",
    title="ECR scan on push",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=(REPOSITORY,),
    checkov=("CKV_AWS_163",),
    description="Images are scanned for vulnerabilities on push.",
    remediation="Set imageScanningConfiguration.scanOnPush true.",
)
def _ecr_scan(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if not truthy(get(inputs, "imageScanningConfiguration.scanOnPush")):
        return ["imageScanningConfiguration.scanOnPush is not true"]
    return []


@resource_rule(
    id="MLOPS-ECR-002",
    title="ECR immutable tags",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=(REPOSITORY,),
    checkov=("CKV_AWS_51",),
    description="Tags cannot be moved: a deployed tag always means the same image.",
    remediation="Set imageTagMutability IMMUTABLE.",
)
def _ecr_immutable(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    value = inputs.get("imageTagMutability", "MUTABLE")
    if not str(value).startswith("IMMUTABLE"):
        return [f"imageTagMutability is {value!r}; allowed IMMUTABLE"]
    return []


@resource_rule(
    id="MLOPS-ECR-003",
    title="ECR KMS encryption",
    severity="low",
    enforcement="advisory",
    category="hardening",
    types=(REPOSITORY,),
    checkov=("CKV_AWS_136",),
    description="Repositories encrypt with the platform KMS key.",
    remediation="Set encryptionConfigurations [{encryptionType: KMS, kmsKey: <key arn>}] "
    "(replaces the repository).",
)
def _ecr_kms(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    kinds = [c.get("encryptionType") for c in as_list(inputs.get("encryptionConfigurations"))]
    if "KMS" not in kinds:
        return [
            f"encryptionConfigurations.encryptionType is {kinds or 'AES256 (default)'}; use KMS"
        ]
    return []


@stack_rule(
    id="MLOPS-ECR-004",
    title="ECR lifecycle policy",
    severity="low",
    enforcement="advisory",
    category="cost",
    description="Every repository has a lifecycle policy so images do not accumulate.",
    remediation="Add an ecr.LifecyclePolicy (registry.keep_last_images).",
)
def _ecr_lifecycle(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    out = []
    for repo in resources:
        if repo.type != REPOSITORY:
            continue
        name = repo.inputs.get("name")
        if not any(
            r.type == LIFECYCLE_POLICY
            and (repo.urn in r.dependencies or (name and r.inputs.get("repository") == name))
            for r in resources
        ):
            out.append((repo, "no ECR lifecycle policy: images accumulate"))
    return out


@resource_rule(
    id="MLOPS-ECR-005",
    title="No force_delete in prod",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    types=(REPOSITORY,),
    description="Staging and production registries must not drop images on delete.",
    remediation="Set forceDelete false.",
)
def _ecr_force_delete(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.guarded and truthy(inputs.get("forceDelete")):
        return [f"forceDelete is true in {ctx.environment}: a delete drops every image"]
    return []

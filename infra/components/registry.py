"""Registry: ECR repositories for the jobs image and the model server image."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import defaults
from infra.planning.tags import resource_tags
from training_jobs import contract


@dataclass(frozen=True)
class RegistryArgs:
    base_name: str
    tags: dict[str, str]
    kms_key_arn: pulumi.Input[str]
    repository_roles: tuple[str, ...]
    keep_last_images: int
    untagged_expiry_days: int
    ephemeral_image_expiry_days: int
    force_delete: bool
    protect: bool


def lifecycle_policy(
    *, keep_last_images: int, untagged_expiry_days: int, ephemeral_image_expiry_days: int
) -> dict[str, object]:
    """Expire untagged images, then the per-PR stacks' images, then keep only the newest.

    An image is matched by at most one rule, in priority order, so the PR images (tags
    `pr-<n>-...`, pushed by ephemeral stacks into their base stack's repositories) never
    count against the images a long-lived stack keeps.
    """
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"expire untagged images after {untagged_expiry_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": "expire per-PR stack images after "
                f"{ephemeral_image_expiry_days} days",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": [contract.EPHEMERAL_STACK_PREFIX],
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": ephemeral_image_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 3,
                "description": f"keep the last {keep_last_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_last_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }


class Registry(pulumi.ComponentResource):
    repository_urls: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:registry:Registry", name, None, opts)
        policy = json.dumps(
            lifecycle_policy(
                keep_last_images=args.keep_last_images,
                untagged_expiry_days=args.untagged_expiry_days,
                ephemeral_image_expiry_days=args.ephemeral_image_expiry_days,
            )
        )
        urls: dict[str, pulumi.Output[str]] = {}
        arns: dict[str, pulumi.Output[str]] = {}
        for role in args.repository_roles:
            repo_name = f"{args.base_name}-{role}"
            repo = aws.ecr.Repository(
                repo_name,
                image_tag_mutability=defaults.IMAGE_TAG_MUTABILITY,
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(
                        encryption_type="KMS", kms_key=args.kms_key_arn
                    )
                ],
                force_delete=args.force_delete,
                tags=resource_tags(repo_name, args.tags),
                opts=defaults.stateful_options(self, protect=args.protect),
            )
            aws.ecr.LifecyclePolicy(
                f"{repo_name}-lifecycle",
                repository=repo.name,
                policy=policy,
                opts=pulumi.ResourceOptions(parent=self),
            )
            urls[role] = repo.repository_url
            arns[role] = repo.arn
        self.repository_urls = urls
        self.repository_arns = arns
        self.register_outputs({"repository_urls": urls, "repository_arns": arns})

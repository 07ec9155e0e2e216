"""Secure defaults in one place: what every stateful resource gets, by environment.

Components take these decisions as data instead of re-deciding them; a reviewer reads this
file to know what the platform guarantees.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def block_all_public_access(bucket: pulumi.Input[str]) -> aws.s3.BucketPublicAccessBlockArgs:
    """All four public-access-block flags, on every bucket (CKV_AWS_53..56)."""
    return aws.s3.BucketPublicAccessBlockArgs(
        bucket=bucket,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )


# ECR: tags can never be overwritten, so a deployed digest is what review saw (CKV_AWS_51).
IMAGE_TAG_MUTABILITY = "IMMUTABLE"

KMS_KEY_SPEC = "SYMMETRIC_DEFAULT"


def stateful_options(parent: pulumi.Resource, *, protect: bool) -> pulumi.ResourceOptions:
    """Options for resources that hold data; `protect` is on in prod.

    `protect` makes `pulumi destroy` refuse; `retain_on_delete` keeps the cloud resource if
    it is ever removed from the program, so data outlives a refactoring mistake.
    """
    return pulumi.ResourceOptions(parent=parent, protect=protect, retain_on_delete=protect)


def hardened_launch_template(
    name: str,
    *,
    volume_size_gib: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    instance_tags: dict[str, str] | None = None,
) -> aws.ec2.LaunchTemplate:
    """IMDSv2 only with one hop (pods and containers cannot borrow the instance's
    credentials, CKV_AWS_341) and an encrypted gp3 root volume.

    The root volume uses the account's EBS key (aws/ebs), not the platform key, on purpose:
    instances are launched by the EC2 Auto Scaling and Spot service-linked roles, which a
    customer-managed key's policy must name — and on a fresh account those roles do not
    exist yet, so such a key policy is refused, while declaring them fails where they do
    exist. Root volumes hold the OS, images and scratch space; the platform's data lives in
    S3 under the platform key. MLOPS-KMS-003 checks the key policy whenever a launch
    template does name a customer-managed key.
    """
    return aws.ec2.LaunchTemplate(
        name,
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    encrypted="true",
                    volume_size=volume_size_gib,
                    volume_type="gp3",
                    delete_on_termination="true",
                ),
            )
        ],
        tag_specifications=(
            [
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type="instance", tags=instance_tags
                )
            ]
            if instance_tags
            else None
        ),
        tags=tags,
        opts=opts,
    )

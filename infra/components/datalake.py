"""DataLake: the platform KMS key and the versioned, encrypted, private data buckets."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import defaults
from infra.planning import iam
from infra.planning.tags import resource_tags

ACCESS_LOGS_ROLE = "access-logs"
_SseByDefault = (
    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
)


@dataclass(frozen=True)
class DataLakeArgs:
    base_name: str
    tags: dict[str, str]
    account_id: pulumi.Input[str]
    region: str
    bucket_roles: tuple[str, ...]
    versioning: bool
    force_destroy: bool
    noncurrent_version_expiration_days: int
    infrequent_access_transition_days: int
    abort_incomplete_multipart_days: int
    access_log_retention_days: int
    kms_deletion_window_days: int
    protect: bool  # protect + retain_on_delete on the key and buckets (retained environments)


class DataLake(pulumi.ComponentResource):
    kms_key_arn: pulumi.Output[str]
    kms_key_id: pulumi.Output[str]
    bucket_names: dict[str, pulumi.Output[str]]
    bucket_arns: dict[str, pulumi.Output[str]]
    access_log_bucket_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: DataLakeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:datalake:DataLake", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = defaults.stateful_options(self, protect=args.protect)
        base = args.base_name

        key = aws.kms.Key(
            f"{base}-data-key",
            description=f"{base}: data lake, logs and registry encryption",
            enable_key_rotation=True,
            deletion_window_in_days=args.kms_deletion_window_days,
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec=defaults.KMS_KEY_SPEC,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: json.dumps(
                    iam.kms_key_policy(account_id=account, region=args.region)
                )
            ),
            tags=resource_tags(f"{base}-data-key", args.tags),
            opts=stateful,
        )
        aws.kms.Alias(
            f"{base}-data-key-alias",
            name=f"alias/{base}-data",
            target_key_id=key.key_id,
            opts=child,
        )

        # S3 delivers server access logs only to buckets encrypted with SSE-S3 (AES256):
        # SSE-KMS is not supported for log target buckets, so this one bucket differs.
        logs = self._bucket(
            f"{base}-{ACCESS_LOGS_ROLE}",
            args,
            stateful,
            sse_kms_key_arn=None,
            expiration_days=args.access_log_retention_days,
        )

        names: dict[str, pulumi.Output[str]] = {}
        arns: dict[str, pulumi.Output[str]] = {}
        for role in args.bucket_roles:
            bucket = self._bucket(f"{base}-{role}", args, stateful, sse_kms_key_arn=key.arn)
            aws.s3.BucketLogging(
                f"{base}-{role}-logging",
                bucket=bucket.id,
                target_bucket=logs.id,
                target_prefix=f"{role}/",
                opts=child,
            )
            names[role] = bucket.bucket
            arns[role] = bucket.arn

        aws.s3.BucketPolicy(
            f"{base}-{ACCESS_LOGS_ROLE}-policy",
            bucket=logs.id,
            policy=pulumi.Output.all(logs.arn, args.account_id, *arns.values()).apply(
                lambda a: json.dumps(iam.access_log_bucket_policy(a[0], list(a[2:]), a[1]))
            ),
            opts=child,
        )

        self.kms_key_arn = key.arn
        self.kms_key_id = key.key_id
        self.bucket_names = names
        self.bucket_arns = arns
        self.access_log_bucket_name = logs.bucket
        self.register_outputs(
            {
                "kms_key_arn": key.arn,
                "bucket_names": names,
                "access_log_bucket_name": logs.bucket,
            }
        )

    def _bucket(
        self,
        name: str,
        args: DataLakeArgs,
        stateful: pulumi.ResourceOptions,
        *,
        sse_kms_key_arn: pulumi.Output[str] | None,
        expiration_days: int | None = None,
    ) -> aws.s3.Bucket:
        """A bucket with the platform's guarantees; the TLS policy is added by the caller
        for the log bucket (which also admits log delivery) and here for the others."""
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            name,
            force_destroy=args.force_destroy,
            tags=resource_tags(name, args.tags),
            opts=stateful,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", defaults.block_all_public_access(bucket.id), opts=child
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled" if args.versioning else "Suspended"
            ),
            opts=child,
        )
        if sse_kms_key_arn is not None:
            sse = _SseByDefault(sse_algorithm="aws:kms", kms_master_key_id=sse_kms_key_arn)
        else:
            sse = _SseByDefault(sse_algorithm="AES256")
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=sse,
                    # Bucket keys cut KMS request costs by ~99% for busy buckets.
                    bucket_key_enabled=sse_kms_key_arn is not None,
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=_lifecycle_rules(args, expiration_days),
            opts=child,
        )
        if sse_kms_key_arn is not None:
            aws.s3.BucketPolicy(
                f"{name}-policy",
                bucket=bucket.id,
                policy=bucket.arn.apply(lambda arn: json.dumps(iam.tls_only_bucket_policy(arn))),
                # A policy put while the public-access block is being applied can be refused.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
            )
        return bucket


def _lifecycle_rules(
    args: DataLakeArgs, expiration_days: int | None
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    whole_bucket = aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix="")
    rules = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart",
            status="Enabled",
            filter=whole_bucket,
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=args.abort_incomplete_multipart_days
            ),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-noncurrent-versions",
            status="Enabled",
            filter=whole_bucket,
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=args.noncurrent_version_expiration_days
            ),
        ),
    ]
    if expiration_days is None:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="infrequent-access-tiering",
                status="Enabled",
                filter=whole_bucket,
                transitions=[
                    aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                        days=args.infrequent_access_transition_days, storage_class="STANDARD_IA"
                    )
                ],
            )
        )
    else:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-objects",
                status="Enabled",
                filter=whole_bucket,
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    days=expiration_days
                ),
            )
        )
    return rules

"""IAM and resource policy documents as plain dicts; components only serialise them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PolicyDocument = dict[str, Any]


def tls_only_bucket_policy(bucket_arn: str) -> PolicyDocument:
    """Deny every request to the bucket or its objects that does not use TLS (CKV_AWS_70)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def access_log_bucket_policy(
    bucket_arn: str, source_bucket_arns: list[str], account_id: str
) -> PolicyDocument:
    """TLS only, plus S3's log delivery service writing logs for the platform's buckets."""
    policy = tls_only_bucket_policy(bucket_arn)
    policy["Statement"].append(
        {
            "Sid": "S3ServerAccessLogsDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {
                "ArnLike": {"aws:SourceArn": sorted(source_bucket_arns)},
                "StringEquals": {"aws:SourceAccount": account_id},
            },
        }
    )
    return policy


def kms_key_policy(*, account_id: str, region: str, partition: str = "aws") -> PolicyDocument:
    """Account administration plus CloudWatch Logs using the key for the platform's groups.

    Without the root statement the key becomes unmanageable; the logs statement is limited
    to log groups of this account and region by encryption context.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsEncryption",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": [
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{partition}:logs:{region}:{account_id}:log-group:*"
                        )
                    }
                },
            },
            {
                # Alarms and budgets publish to the KMS-encrypted alert topic (the SNS guide,
                # "Enable compatibility between event sources from AWS services and
                # encrypted topics"); both send the source account.
                "Sid": "AlertPublishers",
                "Effect": "Allow",
                "Principal": {"Service": ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                # EventBridge (the pipeline's and Batch's failure rules) sends no source
                # condition keys to KMS: a condition here would refuse every delivery.
                "Sid": "EventBridgeAlerts",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
            },
        ],
    }


def ebs_csi_kms_policy(key_arn: str) -> PolicyDocument:
    """What the EBS CSI driver needs besides AmazonEBSCSIDriverPolicy to create and attach
    volumes encrypted with a customer-managed key (EKS user guide, "Amazon EBS CSI driver",
    KMS encryption): grants for the attachment, and the data-key operations."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GrantsForAttachedVolumes",
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": [key_arn],
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Sid": "EncryptVolumes",
                "Effect": "Allow",
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                "Resource": [key_arn],
            },
        ],
    }


def assume_role_policy(service: str) -> PolicyDocument:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def flow_logs_policy(log_group_arn: str) -> PolicyDocument:
    """What the VPC flow-logs service needs to write to its one log group."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            }
        ],
    }


def job_role_policy(
    *,
    bucket_arns: list[str],
    kms_key_arn: str,
    log_group_arn: str,
    metric_namespace: str,
) -> PolicyDocument:
    """What the job containers may do: the platform's buckets, its key, its metrics.

    No wildcard actions. PutMetricData has no resource-level permissions, so it is scoped
    by namespace instead.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListPlatformBuckets",
                "Effect": "Allow",
                # GetBucketVersioning: prepare refuses an unversioned bucket (manifests pin
                # object versions).
                "Action": [
                    "s3:ListBucket",
                    "s3:ListBucketVersions",
                    "s3:GetBucketLocation",
                    "s3:GetBucketVersioning",
                ],
                "Resource": sorted(bucket_arns),
            },
            {
                "Sid": "ReadWritePlatformObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:PutObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": sorted(f"{arn}/*" for arn in bucket_arns),
            },
            {
                "Sid": "UsePlatformKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                "Resource": [kms_key_arn],
            },
            {
                "Sid": "WriteJobLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"{log_group_arn}:*"],
            },
            {
                "Sid": "PublishDriftMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": metric_namespace}},
            },
        ],
    }


def execution_role_policy(
    *,
    repository_arns: list[str],
    log_group_arn: str,
    secret_arns: Sequence[str] = (),
    secret_key_arns: Sequence[str] = (),
) -> PolicyDocument:
    """What the container agent needs to start a job: pull the image (from ECR, when the
    image is there), read the secrets the definition injects, write its logs."""
    statements: list[dict[str, Any]] = []
    if secret_arns:
        statements += [
            {
                "Sid": "ReadJobSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": sorted(secret_arns),
            },
            {
                "Sid": "DecryptJobSecrets",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": sorted(set(secret_key_arns)),
                # Only to open the secrets, through Secrets Manager (of any region).
                "Condition": {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
            },
        ]
    if repository_arns:
        statements += [
            {
                "Sid": "EcrLogin",
                "Effect": "Allow",
                # GetAuthorizationToken has no resource-level permissions.
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*",
            },
            {
                "Sid": "PullJobImages",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": sorted(repository_arns),
            },
        ]
    statements.append(
        {
            "Sid": "WriteJobLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:*"],
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


def pipeline_role_policy(
    *,
    region: str,
    account_id: str,
    job_queue_arns: list[str],
    job_definition_arns: list[str],
    decisions_object_arn: str,
    kms_key_arn: str,
    alert_topic_arn: str,
) -> PolicyDocument:
    """What the retrain state machine may do: run the platform's Batch jobs, read the
    evaluate decision, publish alerts, and manage the managed rule `.sync` relies on."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SubmitPlatformJobs",
                "Effect": "Allow",
                "Action": ["batch:SubmitJob"],
                "Resource": sorted(job_queue_arns) + sorted(job_definition_arns),
            },
            {
                "Sid": "TrackJobs",
                "Effect": "Allow",
                # DescribeJobs has no resource-level permissions.
                "Action": ["batch:DescribeJobs"],
                "Resource": "*",
            },
            {
                "Sid": "StopJobs",
                "Effect": "Allow",
                "Action": ["batch:TerminateJob"],
                "Resource": [f"arn:aws:batch:{region}:{account_id}:job/*"],
            },
            {
                "Sid": "BatchSyncIntegration",
                "Effect": "Allow",
                "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                "Resource": [
                    f"arn:aws:events:{region}:{account_id}:rule/"
                    "StepFunctionsGetEventsForBatchJobsRule"
                ],
            },
            {
                "Sid": "ReadDecision",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [decisions_object_arn],
            },
            {
                "Sid": "DecryptDecisionAndAlerts",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": [kms_key_arn],
            },
            {
                "Sid": "PublishAlerts",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [alert_topic_arn],
            },
            {
                "Sid": "DeliverExecutionLogs",
                "Effect": "Allow",
                # CloudWatch Logs delivery for Step Functions requires "*" resources.
                "Action": [
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                ],
                "Resource": "*",
            },
            {
                "Sid": "Tracing",
                "Effect": "Allow",
                # What the Step Functions guide lists for X-Ray tracing.
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                "Resource": "*",
            },
        ],
    }


def submit_job_policy(*, job_queue_arn: str, job_definition_arn: str) -> PolicyDocument:
    """What a scheduler may do: submit one job definition to one queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["batch:SubmitJob"],
                "Resource": sorted([job_queue_arn, job_definition_arn]),
            }
        ],
    }


def start_execution_policy(state_machine_arn: str) -> PolicyDocument:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": [state_machine_arn],
            }
        ],
    }


def pod_identity_trust_policy() -> PolicyDocument:
    """Trust for EKS Pod Identity: the agent assumes the role on a pod's behalf."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }


def bucket_access_policy(
    *, read_arns: list[str], write_arns: list[str], kms_key_arn: str
) -> PolicyDocument:
    """Read objects of some buckets, write objects of others, with the platform key."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": sorted(set(read_arns) | set(write_arns)),
        },
        {
            "Sid": "ReadObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": sorted(f"{arn}/*" for arn in set(read_arns) | set(write_arns)),
        },
        {
            "Sid": "UseKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": [kms_key_arn],
        },
    ]
    if write_arns:
        statements.append(
            {
                "Sid": "WriteObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"],
                "Resource": sorted(f"{arn}/*" for arn in write_arns),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def publish_alerts_policy(*, topic_arn: str, kms_key_arn: str) -> PolicyDocument:
    """Alertmanager publishing to the (KMS-encrypted) alert topic."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublishAlerts",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [topic_arn],
            },
            {
                "Sid": "EncryptForTheTopic",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": [kms_key_arn],
            },
        ],
    }


def cloudwatch_read_policy() -> PolicyDocument:
    """Grafana's CloudWatch datasource: read metrics and alarms (no resource-level scoping
    exists for these calls)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadMetrics",
                "Effect": "Allow",
                "Action": [
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:GetMetricData",
                    "cloudwatch:GetMetricStatistics",
                    "cloudwatch:ListMetrics",
                ],
                "Resource": "*",
            }
        ],
    }


def alert_topic_policy(*, topic_arn: str, account_id: str) -> PolicyDocument:
    """Who may publish to the alert topic: this account's alarms, rules and budgets."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountServicesPublish",
                "Effect": "Allow",
                "Principal": {
                    "Service": [
                        "budgets.amazonaws.com",
                        "cloudwatch.amazonaws.com",
                        "events.amazonaws.com",
                    ]
                },
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }

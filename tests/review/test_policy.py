"""Every rule: one passing and one failing case; shipped stacks pass every mandatory rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops.review import policy
from mlops.review.policy import RULES_BY_ID, Context, Resource
from tests.conftest import SHIPPED_STACKS
from tests.review.conftest import plan_for

TAGS = {"mlops:stack": "prod", "mlops:environment": "prod", "mlops:owner": "ml"}


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(action: Any, resource: Any = "arn:aws:s3:::b/*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


_LT_OK = {
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}],
}
_EKS_OK = {
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:k"}},
    "vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True},
    "enabledClusterLogTypes": ["api", "audit", "authenticator"],
    "upgradePolicy": {"supportType": "STANDARD"},
}
_RDS_OK = {
    "storageEncrypted": True,
    "backupRetentionPeriod": 14,
    "deletionProtection": True,
    "publiclyAccessible": False,
    "multiAz": True,
}
_SG = "aws:ec2/securityGroup:SecurityGroup"

# (rule, type, passing inputs, failing inputs, environment)
RESOURCE_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    (
        "MLOPS-S3-002",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
        {"rules": []},
        "dev",
    ),
    (
        "MLOPS-S3-006",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        {
            "blockPublicAcls": True,
            "blockPublicPolicy": False,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        "dev",
    ),
    (
        "MLOPS-S3-010",
        "aws:s3/bucket:Bucket",
        {"forceDestroy": False},
        {"forceDestroy": True},
        "prod",
    ),
    (
        "MLOPS-KMS-001",
        "aws:kms/key:Key",
        {"enableKeyRotation": True},
        {"enableKeyRotation": False},
        "dev",
    ),
    (
        "MLOPS-KMS-002",
        "aws:kms/key:Key",
        {"deletionWindowInDays": 30},
        {"deletionWindowInDays": 7},
        "prod",
    ),
    (
        "MLOPS-ECR-001",
        "aws:ecr/repository:Repository",
        {"imageScanningConfiguration": {"scanOnPush": True}},
        {},
        "dev",
    ),
    (
        "MLOPS-ECR-002",
        "aws:ecr/repository:Repository",
        {"imageTagMutability": "IMMUTABLE"},
        {"imageTagMutability": "MUTABLE"},
        "dev",
    ),
    (
        "MLOPS-ECR-003",
        "aws:ecr/repository:Repository",
        {"encryptionConfigurations": [{"encryptionType": "KMS"}]},
        {},
        "dev",
    ),
    (
        "MLOPS-ECR-005",
        "aws:ecr/repository:Repository",
        {"forceDelete": False},
        {"forceDelete": True},
        "prod",
    ),
    (
        "MLOPS-EKS-001",
        "aws:eks/cluster:Cluster",
        _EKS_OK,
        {**_EKS_OK, "encryptionConfig": None},
        "dev",
    ),
    (
        "MLOPS-EKS-002",
        "aws:eks/cluster:Cluster",
        _EKS_OK,
        {
            **_EKS_OK,
            "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
        },
        "dev",
    ),
    (
        "MLOPS-EKS-003",
        "aws:eks/cluster:Cluster",
        _EKS_OK,
        {**_EKS_OK, "enabledClusterLogTypes": ["api"]},
        "dev",
    ),
    (
        "MLOPS-EKS-004",
        "aws:eks/cluster:Cluster",
        _EKS_OK,
        {**_EKS_OK, "upgradePolicy": None},
        "dev",
    ),
    (
        "MLOPS-IAM-001",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": _doc(_allow("s3:GetObject"))},
        {"policy": _doc(_allow("s3:*"))},
        "dev",
    ),
    (
        "MLOPS-IAM-002",
        "aws:iam/rolePolicy:RolePolicy",
        {
            "policy": _doc(
                _allow(
                    ["s3:ListAllMyBuckets", "ecr:GetAuthorizationToken", "xray:PutTraceSegments"],
                    "*",
                )
            )
        },
        {"policy": _doc(_allow(["s3:PutObject"], "*"))},
        "dev",
    ),
    (
        "MLOPS-IAM-003",
        "aws:iam/role:Role",
        {
            "assumeRolePolicy": _doc(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            )
        },
        {
            "assumeRolePolicy": _doc(
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            )
        },
        "dev",
    ),
    (
        "MLOPS-IAM-004",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"policyArn": "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"},
        {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        "dev",
    ),
    (
        "MLOPS-EC2-001",
        "aws:ec2/launchTemplate:LaunchTemplate",
        _LT_OK,
        {**_LT_OK, "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}},
        "dev",
    ),
    (
        "MLOPS-EC2-002",
        "aws:ec2/launchTemplate:LaunchTemplate",
        _LT_OK,
        {**_LT_OK, "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}},
        "dev",
    ),
    (
        "MLOPS-EC2-003",
        "aws:ec2/launchTemplate:LaunchTemplate",
        _LT_OK,
        {
            **_LT_OK,
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}],
        },
        "dev",
    ),
    (
        "MLOPS-RDS-001",
        "aws:rds/instance:Instance",
        _RDS_OK,
        {**_RDS_OK, "storageEncrypted": False},
        "dev",
    ),
    (
        "MLOPS-RDS-002",
        "aws:rds/instance:Instance",
        _RDS_OK,
        {**_RDS_OK, "backupRetentionPeriod": 3},
        "prod",
    ),
    (
        "MLOPS-RDS-003",
        "aws:rds/instance:Instance",
        _RDS_OK,
        {**_RDS_OK, "deletionProtection": False},
        "prod",
    ),
    (
        "MLOPS-RDS-004",
        "aws:rds/instance:Instance",
        _RDS_OK,
        {**_RDS_OK, "publiclyAccessible": True},
        "dev",
    ),
    ("MLOPS-RDS-005", "aws:rds/instance:Instance", _RDS_OK, {**_RDS_OK, "multiAz": False}, "prod"),
    (
        "MLOPS-SG-001",
        _SG,
        {
            "ingress": [
                {"cidrBlocks": ["10.0.0.0/16"], "protocol": "tcp", "fromPort": 443, "toPort": 443}
            ]
        },
        {
            "ingress": [
                {"cidrBlocks": ["0.0.0.0/0"], "protocol": "tcp", "fromPort": 22, "toPort": 22}
            ]
        },
        "dev",
    ),
    (
        "MLOPS-SG-001",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"cidrIpv4": "10.0.0.0/16"},
        {"cidrIpv6": "::/0"},
        "dev",
    ),
    (
        "MLOPS-SG-002",
        _SG,
        {
            "egress": [
                {"cidrBlocks": ["0.0.0.0/0"], "protocol": "tcp", "fromPort": 443, "toPort": 443}
            ]
        },
        {"egress": [{"cidrBlocks": ["0.0.0.0/0"], "protocol": "-1", "fromPort": 0, "toPort": 0}]},
        "dev",
    ),
    (
        "MLOPS-SG-003",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        {},
        {"ingress": [{"self": True, "protocol": "-1"}]},
        "dev",
    ),
    (
        "MLOPS-LOG-001",
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 30, "kmsKeyId": "k"},
        {"kmsKeyId": "k"},
        "dev",
    ),
    (
        "MLOPS-LOG-002",
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 30, "kmsKeyId": "k"},
        {"retentionInDays": 30},
        "dev",
    ),
    ("MLOPS-SNS-001", "aws:sns/topic:Topic", {"kmsMasterKeyId": "alias/k"}, {}, "dev"),
    (
        "MLOPS-SFN-001",
        "aws:sfn/stateMachine:StateMachine",
        {"loggingConfiguration": {"level": "ERROR", "logDestination": "arn:aws:logs:x:*"}},
        {"loggingConfiguration": {"level": "OFF"}},
        "dev",
    ),
    (
        "MLOPS-SFN-002",
        "aws:sfn/stateMachine:StateMachine",
        {"tracingConfiguration": {"enabled": True}},
        {},
        "dev",
    ),
    (
        "MLOPS-BATCH-001",
        "aws:batch/computeEnvironment:ComputeEnvironment",
        {"computeResources": {"minVcpus": 0}},
        {"computeResources": {"minVcpus": 4}},
        "dev",
    ),
    ("MLOPS-TAG-001", "aws:s3/bucket:Bucket", {"tags": TAGS}, {"tags": {"Name": "x"}}, "dev"),
]


@pytest.mark.parametrize(("rule_id", "type_", "good", "bad", "env"), RESOURCE_CASES)
def test_resource_rule(
    rule_id: str, type_: str, good: dict[str, Any], bad: dict[str, Any], env: str
) -> None:
    rule = RULES_BY_ID[rule_id]
    ctx = Context(env)
    assert policy.check_resource(rule, type_, good, ctx) == []
    messages = policy.check_resource(rule, type_, bad, ctx)
    assert len(messages) >= 1, f"{rule_id} passed inputs it should fail: {bad}"


def test_environment_sensitive_rules_pass_outside_prod() -> None:
    ctx = Context("dev")
    assert (
        policy.check_resource(
            RULES_BY_ID["MLOPS-S3-010"], "aws:s3/bucket:Bucket", {"forceDestroy": True}, ctx
        )
        == []
    )
    assert (
        policy.check_resource(RULES_BY_ID["MLOPS-RDS-003"], "aws:rds/instance:Instance", {}, ctx)
        == []
    )


def test_untaggable_types_are_not_tag_checked() -> None:
    rule = RULES_BY_ID["MLOPS-TAG-001"]
    assert policy.check_resource(rule, "aws:s3/bucketPolicy:BucketPolicy", {}, Context("dev")) == []


# --- stack-scope rules -------------------------------------------------------------------

BUCKET_URN = "urn:pulumi:dev::p::aws:s3/bucket:Bucket::b"
LOGS_URN = "urn:pulumi:dev::p::aws:s3/bucket:Bucket::logs"


def _bucket_stack(**drop: bool) -> list[Resource]:
    deps = (BUCKET_URN,)
    tls = _doc(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    parts = {
        "sse": Resource(
            "u:sse",
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "b-sse",
            {
                "bucket": "b",
                "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}],
            },
            deps,
        ),
        "versioning": Resource(
            "u:v",
            "aws:s3/bucketVersioning:BucketVersioning",
            "b-v",
            {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}},
            deps,
        ),
        "pab": Resource(
            "u:pab",
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "b-pab",
            {"bucket": "b"},
            deps,
        ),
        "tls": Resource(
            "u:pol",
            "aws:s3/bucketPolicy:BucketPolicy",
            "b-pol",
            {"bucket": "b", "policy": tls},
            deps,
        ),
        "logging": Resource(
            "u:log",
            "aws:s3/bucketLogging:BucketLogging",
            "b-log",
            {"bucket": "b", "targetBucket": "logs"},
            deps,
        ),
        "lifecycle": Resource(
            "u:lc",
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            "b-lc",
            {
                "bucket": "b",
                "rules": [{"abortIncompleteMultipartUpload": {"daysAfterInitiation": 7}}],
            },
            deps,
        ),
    }
    bucket = Resource(BUCKET_URN, "aws:s3/bucket:Bucket", "b", {"bucket": "b"})
    return [bucket, *(r for key, r in parts.items() if not drop.get(key))]


@pytest.mark.parametrize(
    ("rule_id", "drop"),
    [
        ("MLOPS-S3-001", "sse"),
        ("MLOPS-S3-003", "sse"),
        ("MLOPS-S3-004", "versioning"),
        ("MLOPS-S3-005", "pab"),
        ("MLOPS-S3-007", "tls"),
        ("MLOPS-S3-008", "logging"),
        ("MLOPS-S3-009", "lifecycle"),
    ],
)
def test_bucket_stack_rule(rule_id: str, drop: str) -> None:
    rule = RULES_BY_ID[rule_id]
    assert rule.check_stack is not None
    assert rule.check_stack(_bucket_stack()) == []
    flagged = rule.check_stack(_bucket_stack(**{drop: True}))
    assert [(r.urn, bool(m)) for r, m in flagged] == [(BUCKET_URN, True)]


def test_access_log_target_is_exempt_from_kms_and_logging() -> None:
    logs = Resource(LOGS_URN, "aws:s3/bucket:Bucket", "logs", {"bucket": "logs"})
    sse = Resource(
        "u:lsse",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "logs-sse",
        {
            "bucket": "logs",
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
        },
        (LOGS_URN,),
    )
    resources = [*_bucket_stack(), logs, sse]
    for rule_id in ("MLOPS-S3-003", "MLOPS-S3-008"):
        check = RULES_BY_ID[rule_id].check_stack
        assert check is not None
        assert check(resources) == []


def test_ecr_lifecycle_and_flow_log_stack_rules() -> None:
    repo = Resource("u:repo", "aws:ecr/repository:Repository", "repo", {"name": "r"})
    lifecycle = Resource(
        "u:lcp", "aws:ecr/lifecyclePolicy:LifecyclePolicy", "lcp", {"repository": "r"}
    )
    ecr = RULES_BY_ID["MLOPS-ECR-004"].check_stack
    assert ecr is not None
    assert ecr([repo, lifecycle]) == []
    assert [r.name for r, _ in ecr([repo])] == ["repo"]
    vpc = Resource("u:vpc", "aws:ec2/vpc:Vpc", "vpc", {})
    flow = Resource("u:fl", "aws:ec2/flowLog:FlowLog", "fl", {}, ("u:vpc",))
    vpc_rule = RULES_BY_ID["MLOPS-VPC-001"].check_stack
    assert vpc_rule is not None
    assert vpc_rule([vpc, flow]) == []
    assert [r.name for r, _ in vpc_rule([vpc])] == ["vpc"]


def test_every_rule_has_a_case() -> None:
    tested = {case[0] for case in RESOURCE_CASES} | {
        "MLOPS-S3-001",
        "MLOPS-S3-003",
        "MLOPS-S3-004",
        "MLOPS-S3-005",
        "MLOPS-S3-007",
        "MLOPS-S3-008",
        "MLOPS-S3-009",
        "MLOPS-ECR-004",
        "MLOPS-VPC-001",
    }
    assert sorted(set(RULES_BY_ID) - tested) == []


def test_rules_are_well_formed() -> None:
    assert len(policy.RULES) >= 30
    assert len(RULES_BY_ID) == len(policy.RULES)
    for rule in policy.RULES:
        assert (rule.check_stack is None) != (rule.check is None and rule.check_typed is None), (
            rule.id
        )
        assert rule.description and rule.remediation, rule.id
        assert rule.enforcement in ("mandatory", "advisory")


# --- exceptions ----------------------------------------------------------------------------


def test_exceptions_parse_and_apply() -> None:
    raw = [
        {"rule": "MLOPS-KMS-001", "name": "k", "reason": "imported key, rotated by the HSM team"}
    ]
    exceptions = policy.parse_exceptions(json.dumps(raw))
    key = Resource(
        "urn:pulumi:dev::p::aws:kms/key:Key::k",
        "aws:kms/key:Key",
        "k",
        {"enableKeyRotation": False},
    )
    [finding] = [
        f
        for f in policy.evaluate([key], environment="dev", exceptions=exceptions)
        if f.rule_id == "MLOPS-KMS-001"
    ]
    assert finding.excepted == "imported key, rotated by the HSM team"
    assert not finding.blocking
    [plain] = [f for f in policy.evaluate([key], environment="dev") if f.rule_id == "MLOPS-KMS-001"]
    assert plain.blocking


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rule": "X"}, "expected a list"),
        (
            [{"rule": "MLOPS-NOPE-001", "name": "a", "reason": "long enough reason"}],
            "not a rule id; allowed MLOPS-BATCH-001",
        ),
        ([{"rule": "MLOPS-KMS-001", "name": "a", "reason": "short"}], "reason"),
        (
            [{"rule": "MLOPS-KMS-001", "reason": "long enough reason"}],
            "exactly one of urn_contains or name",
        ),
        (
            [{"rule": "MLOPS-KMS-001", "name": "a", "reason": "long enough reason", "why": 1}],
            "unknown keys",
        ),
    ],
)
def test_bad_exceptions_are_named(raw: Any, message: str) -> None:
    with pytest.raises(policy.ExceptionConfigError, match=message):
        policy.parse_exceptions(raw)


# --- shipped stacks ----------------------------------------------------------------------


def _blocking(stack: str) -> set[tuple[str, str]]:
    findings = policy.evaluate(policy.resources_from_plan(plan_for(stack)))
    return {(f.rule_id, f.name.removeprefix(f"mlops-{stack}-")) for f in findings if f.blocking}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stack_passes_every_mandatory_rule(stack: str) -> None:
    assert _blocking(stack) == set()

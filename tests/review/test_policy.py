"""Every rule: one passing and one failing case; shipped stacks pass every mandatory rule."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from infra import policy
from infra.policy import RULES_BY_ID, Context, Resource
from infra.policy.core import CATEGORY_MEANING, Category, Rule, RuleDefinitionError
from tests.conftest import ROOT, SHIPPED_STACKS
from tests.review.conftest import plan_for
from tests.review.test_policy_contracts import CASE_RULES

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
# A registry with a port: its colon is not a tag.
_REPO = "localhost:5001/mlops-jobs"


def _deployment(image: str) -> dict[str, Any]:
    pod = {"containers": [{"name": "c", "image": image}]}
    return {"kind": "Deployment", "spec": {"template": {"spec": pod}}}


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
    (
        "MLOPS-IMG-001",
        "aws:batch/jobDefinition:JobDefinition",
        {"containerProperties": json.dumps({"image": f"{_REPO}@sha256:{'a' * 64}"})},
        {"containerProperties": json.dumps({"image": f"{_REPO}:0.1.0"})},
        "dev",
    ),
    (
        "MLOPS-IMG-001",
        "kubernetes:apps/v1:Deployment",
        _deployment(f"{_REPO}@sha256:{'b' * 64}"),
        _deployment(f"{_REPO}:v1@sha256:{'b' * 64}"),  # a tag beside the digest
        "dev",
    ),
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


def _ecr_stack(*, lifecycle: bool) -> list[Resource]:
    repo = Resource("u:repo", "aws:ecr/repository:Repository", "repo", {"name": "r"})
    policy_ = Resource(
        "u:lcp", "aws:ecr/lifecyclePolicy:LifecyclePolicy", "lcp", {"repository": "r"}
    )
    return [repo, policy_] if lifecycle else [repo]


def _vpc_stack(*, flow_log: bool) -> list[Resource]:
    vpc = Resource("u:vpc", "aws:ec2/vpc:Vpc", "vpc", {})
    flow = Resource("u:fl", "aws:ec2/flowLog:FlowLog", "fl", {}, ("u:vpc",))
    return [vpc, flow] if flow_log else [vpc]


def _image_stack(*, wired: bool) -> list[Resource]:
    image = Resource(
        "u:img", "docker-build:index:Image", "img", {"tags": [f"{_REPO}:dev-0123456789abcdef"]}
    )
    definition = Resource(
        "u:jobs",
        "aws:batch/jobDefinition:JobDefinition",
        "jobs",
        {"containerProperties": json.dumps({"image": f"{_REPO}@sha256:{'c' * 64}"})},
        ("u:img",) if wired else (),
    )
    return [image, definition]


_BUCKET_DROPS = [
    ("MLOPS-S3-001", "sse"),
    ("MLOPS-S3-003", "sse"),
    ("MLOPS-S3-004", "versioning"),
    ("MLOPS-S3-005", "pab"),
    ("MLOPS-S3-007", "tls"),
    ("MLOPS-S3-008", "logging"),
    ("MLOPS-S3-009", "lifecycle"),
]
# (rule, passing stack, failing stack, names of the resources flagged in the failing one)
STACK_CASES: list[tuple[str, list[Resource], list[Resource], list[str]]] = [
    *((rule_id, _bucket_stack(), _bucket_stack(**{drop: True}), ["b"]) for rule_id, drop in _BUCKET_DROPS),
    ("MLOPS-ECR-004", _ecr_stack(lifecycle=True), _ecr_stack(lifecycle=False), ["repo"]),
    ("MLOPS-VPC-001", _vpc_stack(flow_log=True), _vpc_stack(flow_log=False), ["vpc"]),
    ("MLOPS-IMG-002", _image_stack(wired=True), _image_stack(wired=False), ["jobs"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule_id", "good", "bad", "flagged"), STACK_CASES, ids=[c[0] for c in STACK_CASES]
)
def test_stack_rule(
    rule_id: str, good: list[Resource], bad: list[Resource], flagged: list[str]
) -> None:
    check = RULES_BY_ID[rule_id].check_stack
    assert check is not None
    assert check(good) == []
    found = check(bad)
    assert [r.name for r, _ in found] == flagged
    assert all(message for _, message in found)


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


# --- the registry ------------------------------------------------------------------------


@pytest.mark.parametrize("rule", policy.RULES, ids=[r.id for r in policy.RULES])
def test_every_rule_has_metadata_a_category_and_both_cases(rule: Rule) -> None:
    for field in ("title", "description", "remediation"):
        assert getattr(rule, field).strip(), f"{rule.id}: {field} is empty"
    assert rule.severity in policy.SEVERITY_RANK
    assert rule.enforcement in ("mandatory", "advisory")
    assert rule.category in CATEGORY_MEANING
    assert all(c.startswith(("CKV_AWS_", "CKV2_AWS_")) for c in rule.checkov), rule.checkov
    if rule.check_stack is not None:
        cases = [c for c in STACK_CASES if c[0] == rule.id]
        assert rule.types == () and rule.check is None and rule.check_typed is None
    else:
        cases = [c for c in RESOURCE_CASES if c[0] == rule.id]
        assert rule.types and (rule.check is None) != (rule.check_typed is None)
    # Each case has a passing and a failing input (asserted by the case tests here, or by
    # the shipped plans and their broken copies in test_policy_contracts.py).
    assert cases or rule.id in CASE_RULES, f"{rule.id} has no passing/failing case"


def test_categories_are_the_declared_ones() -> None:
    assert list(CATEGORY_MEANING) == list(get_args(Category))
    used = {r.category for r in policy.RULES}
    assert used == set(CATEGORY_MEANING), "a category no rule uses should be dropped"
    assert policy.rules_in("identity") == tuple(
        r for r in policy.RULES if r.id.startswith("MLOPS-IAM-")
    )
    with pytest.raises(ValueError, match="unknown categories"):
        policy.rules_in("secrity")  # type: ignore[arg-type]


def test_rules_keep_their_order_and_ids_are_unique() -> None:
    ids = [r.id for r in policy.RULES]
    assert len(ids) == len(set(ids)) == len(RULES_BY_ID) == 53
    services = list(dict.fromkeys(i.split("-")[1] for i in ids))
    # The order `mlops policy --json` has always listed: services in this order (one module
    # each, contiguous), ids ascending within a service.
    assert services == [
        "S3", "KMS", "ECR", "EKS", "IAM", "EC2", "RDS", "SG", "VPC", "LOG", "SNS", "SFN", "BATCH", "TAG",
        "IMG", "K8S", "NET", "SUP",
    ]  # fmt: skip
    assert ids == sorted(ids, key=lambda i: (services.index(i.split("-")[1]), i))
    assert policy.registered() == policy.RULES


def _rule(**overrides: Any) -> Rule:
    fields: dict[str, Any] = {
        "id": "MLOPS-TEST-001",
        "title": "t",
        "severity": "low",
        "enforcement": "advisory",
        "category": "cost",
        "description": "d",
        "remediation": "r",
        "types": ("aws:s3/bucket:Bucket",),
        "check": lambda inputs, ctx: [],
    }
    return Rule(**(fields | overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": "S3-1"}, "id must look like"),
        ({"title": " "}, "title is empty"),
        ({"category": "security-ish"}, "category 'security-ish'; allowed security"),
        ({"checkov": ("CKV_19",)}, "checkov id 'CKV_19'"),
        ({"cis": ("2.1.1",)}, "CIS item '2.1.1'"),
        ({"types": ()}, "names the types"),
        ({"check_stack": lambda resources: []}, "exactly one of check"),
        ({"check": None, "check_stack": lambda resources: []}, "takes no types"),
    ],
)
def test_malformed_rules_fail_at_definition(overrides: dict[str, Any], message: str) -> None:
    assert _rule().check is not None  # the base is well formed
    with pytest.raises(RuleDefinitionError, match=message):
        _rule(**overrides)


def test_an_id_registers_once() -> None:
    with pytest.raises(RuleDefinitionError, match="registered twice"):
        policy.register(RULES_BY_ID["MLOPS-S3-001"])
    assert policy.registered() == policy.RULES


def test_importing_the_rules_needs_no_cli_sdk_or_components() -> None:
    # A fresh interpreter: what importing the rules loads from site-packages and from infra.
    code = (
        "import json, sys, sysconfig; before = set(sys.modules); import infra.policy; "
        "site = (sysconfig.get_path('purelib'), sysconfig.get_path('platlib')); "
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith('infra.') "
        "or (getattr(sys.modules[m], '__file__', None) or '').startswith(site))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert {m.split(".")[0] for m in loaded} <= {
        "infra", "pydantic", "pydantic_core", "typing_extensions", "annotated_types",
        "typing_inspection",
    }, loaded  # fmt: skip
    # Besides the rules, only the pure planning data they share with the program (the
    # MLflow footprint model): never the components or the config seam.
    assert [
        m for m in loaded if m.startswith("infra.") and not m.startswith(("infra.policy", "infra.planning"))
    ] == []  # fmt: skip
    assert "infra.policy.pack" not in loaded


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


def test_an_exception_matches_by_name_or_urn_substring_and_rule() -> None:
    finding = policy.Finding(
        "MLOPS-S3-008", "low", "advisory", "urn:pulumi:dev::p::aws:s3/bucket:Bucket::raw", "raw",
        "aws:s3/bucket:Bucket", "no BucketLogging",
    )  # fmt: skip
    [by_urn, by_name, other_rule] = policy.parse_exceptions(
        [
            {
                "rule": "MLOPS-S3-008",
                "urn_contains": "Bucket::r",
                "reason": "  served from a CDN  ",
            },
            {"rule": "MLOPS-S3-008", "name": "logs", "reason": "the access-log bucket itself"},
            {"rule": "MLOPS-S3-009", "name": "raw", "reason": "lifecycle managed by the data team"},
        ]
    )
    assert by_urn.matches(finding) and by_urn.reason == "served from a CDN"
    assert not by_name.matches(finding) and not other_rule.matches(finding)
    with pytest.raises(ValidationError, match="frozen"):
        by_urn.reason = "changed afterwards"  # type: ignore[misc]


_OK = {"rule": "MLOPS-KMS-001", "name": "a", "reason": "long enough reason"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rule": "X"}, "policy_exceptions: expected a list, got dict"),
        ("[{", "policy_exceptions: not a list"),
        (["MLOPS-KMS-001"], r"policy_exceptions\[0\]: expected a mapping with rule, reason"),
        (
            [_OK | {"rule": "MLOPS-NOPE-001"}],
            r"policy_exceptions\[0\]\.rule: 'MLOPS-NOPE-001' is not a rule id; allowed MLOPS-BATCH-001, ",
        ),
        (
            [{"name": "a", "reason": "long enough reason"}],
            r"policy_exceptions\[0\]\.rule: missing; allowed MLOPS-BATCH-001",
        ),
        (
            [_OK | {"reason": " short    "}],
            r"policy_exceptions\[0\]\.reason: ' short    ' is too short; say why, at least 10",
        ),
        ([_OK | {"reason": 12345678901}], r"\.reason: 12345678901: Input should be a valid string"),
        (
            [{"rule": "MLOPS-KMS-001", "reason": "long enough reason"}],
            r"policy_exceptions\[0\]: give exactly one of urn_contains or name",
        ),
        (
            [_OK | {"urn_contains": "x"}],
            r"policy_exceptions\[0\]: give exactly one of urn_contains or name",
        ),
        (
            [_OK, _OK | {"why": 1, "owner": "me"}],
            r"policy_exceptions\[1\]: unknown keys \['owner', 'why'\]; allowed rule, reason, urn_contains, name",
        ),
    ],
)
def test_bad_exceptions_are_named(raw: Any, message: str) -> None:
    with pytest.raises(policy.ExceptionConfigError, match=message):
        policy.parse_exceptions(raw)


def test_every_bad_exception_is_listed_at_once() -> None:
    with pytest.raises(policy.ExceptionConfigError) as caught:
        policy.parse_exceptions([_OK | {"rule": "MLOPS-X-001"}, _OK, _OK | {"reason": "no"}])
    assert [i.split(":")[0] for i in caught.value.issues] == [
        "policy_exceptions[0].rule",
        "policy_exceptions[2].reason",
    ]
    assert str(caught.value) == "\n".join(caught.value.issues)


# --- shipped stacks ----------------------------------------------------------------------


def _blocking(stack: str) -> set[tuple[str, str]]:
    findings = policy.evaluate(policy.resources_from_plan(plan_for(stack)))
    return {(f.rule_id, f.name.removeprefix(f"mlops-{stack}-")) for f in findings if f.blocking}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stack_passes_every_mandatory_rule(stack: str) -> None:
    assert _blocking(stack) == set()

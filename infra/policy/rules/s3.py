"""S3: buckets, and what AWS models beside them (encryption, versioning, public-access block,
bucket policy, access logging, lifecycle) — those rules see the whole stack."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from infra.policy.core import Context, Resource, Rule, StackCheck, register, resource_rule
from infra.policy.documents import as_list, get, policy_document, statements, truthy

BUCKET = "aws:s3/bucket:Bucket"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"

# (companions of the bucket of that type, the bucket, every resource) -> violation or None
Problem = Callable[[list[Resource], Resource, Sequence[Resource]], str | None]


def _companions(resources: Sequence[Resource], bucket: Resource, type_: str) -> list[Resource]:
    """Resources of `type_` attached to `bucket`: by dependency, or by the bucket name."""
    name = bucket.inputs.get("bucket")
    return [
        r
        for r in resources
        if r.type == type_
        and (bucket.urn in r.dependencies or (name is not None and r.inputs.get("bucket") == name))
    ]


def _log_targets(resources: Sequence[Resource]) -> set[str]:
    return {str(r.inputs.get("targetBucket")) for r in resources if r.type == LOGGING}


def _each_bucket(type_: str, problem: Problem) -> StackCheck:
    def check(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
        out = []
        for bucket in resources:
            if bucket.type != BUCKET:
                continue
            message = problem(_companions(resources, bucket, type_), bucket, resources)
            if message:
                out.append((bucket, message))
        return out

    return check


def _need_sse(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    return None if found else "no BucketServerSideEncryptionConfiguration"


register(
    Rule(
        id="MLOPS-S3-001",
        title="S3 bucket default encryption",
        severity="high",
        enforcement="mandatory",
        category="security",
        description="Every bucket has a server-side encryption configuration.",
        remediation="Add a BucketServerSideEncryptionConfiguration (SSE-KMS for data, SSE-S3 "
        "for log targets).",
        checkov=("CKV_AWS_19",),
        cis=("1.4 2.1.1",),
        check_stack=_each_bucket(SSE, _need_sse),
    )
)


@resource_rule(
    id="MLOPS-S3-002",
    title="S3 encryption algorithm",
    severity="high",
    enforcement="mandatory",
    category="security",
    types=(SSE,),
    checkov=("CKV_AWS_19",),
    description="The encryption configuration names AES256 or aws:kms.",
    remediation="Set rules[].applyServerSideEncryptionByDefault.sseAlgorithm to aws:kms.",
)
def _sse_config(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    algos = [
        get(r, "applyServerSideEncryptionByDefault.sseAlgorithm")
        for r in as_list(inputs.get("rules"))
    ]
    if not any(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algos):
        return [f"no default encryption algorithm (got {algos!r}; allowed AES256, aws:kms)"]
    return []


def _need_kms(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    if b.inputs.get("bucket") in _log_targets(rs):
        return None  # S3 server access logs can only be delivered to SSE-S3 buckets
    algos = {
        get(rule, "applyServerSideEncryptionByDefault.sseAlgorithm")
        for r in found
        for rule in as_list(r.inputs.get("rules"))
    }
    return (
        None
        if algos & {"aws:kms", "aws:kms:dsse"}
        else f"default encryption {sorted(map(str, algos))}, not SSE-KMS"
    )


register(
    Rule(
        id="MLOPS-S3-003",
        title="S3 data buckets use SSE-KMS",
        severity="medium",
        enforcement="advisory",
        category="hardening",
        description="Data buckets use the platform KMS key (access-log targets are exempt: AWS "
        "requires SSE-S3 there).",
        remediation="Set sseAlgorithm aws:kms with kmsMasterKeyId the platform key, "
        "bucketKeyEnabled true.",
        checkov=("CKV_AWS_145",),
        check_stack=_each_bucket(SSE, _need_kms),
    )
)


def _need_versioning(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    statuses = [get(r.inputs, "versioningConfiguration.status") for r in found]
    return None if "Enabled" in statuses else f"versioning is {statuses or 'not configured'}"


register(
    Rule(
        id="MLOPS-S3-004",
        title="S3 versioning",
        severity="high",
        enforcement="mandatory",
        category="resilience",
        description="Every bucket has versioning Enabled, so an overwrite or delete is "
        "recoverable.",
        remediation="Add a BucketVersioning with versioningConfiguration.status Enabled.",
        checkov=("CKV_AWS_21",),
        check_stack=_each_bucket(VERSIONING, _need_versioning),
    )
)


def _need_pab(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    return None if found else "no BucketPublicAccessBlock"


register(
    Rule(
        id="MLOPS-S3-005",
        title="S3 public access block present",
        severity="critical",
        enforcement="mandatory",
        category="security",
        description="Every bucket has a public access block.",
        remediation="Add a BucketPublicAccessBlock with all four flags true.",
        checkov=("CKV2_AWS_6",),
        cis=("3.0 2.1.4",),
        check_stack=_each_bucket(PUBLIC_ACCESS_BLOCK, _need_pab),
    )
)


@resource_rule(
    id="MLOPS-S3-006",
    title="S3 public access block flags",
    severity="critical",
    enforcement="mandatory",
    category="security",
    types=(PUBLIC_ACCESS_BLOCK,),
    checkov=("CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56"),
    cis=("3.0 2.1.4",),
    description="All four public-access-block flags are true.",
    remediation="Set blockPublicAcls, blockPublicPolicy, ignorePublicAcls, "
    "restrictPublicBuckets to true.",
)
def _pab_flags(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [f for f in flags if not truthy(inputs.get(f))]
    return [f"public access block flags not true: {', '.join(off)}"] if off else []


def _need_tls(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    for r in found:
        for s in statements(policy_document(r.inputs.get("policy"))):
            cond = get(s, "Condition.Bool", {}) or {}
            if (
                s.get("Effect") == "Deny"
                and str(cond.get("aws:SecureTransport")).lower() == "false"
            ):
                return None
    return "no bucket policy denying aws:SecureTransport false"


register(
    Rule(
        id="MLOPS-S3-007",
        title="S3 TLS-only bucket policy",
        severity="high",
        enforcement="mandatory",
        category="security",
        description="The bucket policy denies requests without TLS.",
        remediation="Add a Deny statement on s3:* with Condition Bool aws:SecureTransport false.",
        cis=("3.0 2.1.1",),
        check_stack=_each_bucket(BUCKET_POLICY, _need_tls),
    )
)


def _need_logging(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    if found or b.inputs.get("bucket") in _log_targets(rs):
        return None
    return "no BucketLogging (server access logs)"


register(
    Rule(
        id="MLOPS-S3-008",
        title="S3 server access logging",
        severity="low",
        enforcement="advisory",
        category="security",
        description="Data buckets log access to the access-log bucket.",
        remediation="Add a BucketLogging targeting the access-log bucket.",
        checkov=("CKV_AWS_18",),
        check_stack=_each_bucket(LOGGING, _need_logging),
    )
)


def _need_lifecycle(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    rules = [rule for r in found for rule in as_list(r.inputs.get("rules"))]
    if not rules:
        return "no BucketLifecycleConfiguration"
    if not any(rule.get("abortIncompleteMultipartUpload") for rule in rules):
        return "lifecycle does not abort incomplete multipart uploads"
    return None


register(
    Rule(
        id="MLOPS-S3-009",
        title="S3 lifecycle configuration",
        severity="low",
        enforcement="advisory",
        category="cost",
        description="Every bucket has a lifecycle that at least aborts incomplete multipart "
        "uploads.",
        remediation="Add a BucketLifecycleConfiguration with abortIncompleteMultipartUpload.",
        checkov=("CKV2_AWS_61", "CKV_AWS_300"),
        check_stack=_each_bucket(LIFECYCLE, _need_lifecycle),
    )
)


@resource_rule(
    id="MLOPS-S3-010",
    title="No force_destroy in prod",
    severity="critical",
    enforcement="mandatory",
    category="resilience",
    types=(BUCKET,),
    description="Staging and production buckets must not be emptied by a delete.",
    remediation="Set forceDestroy false (storage.force_destroy only for ephemeral/local stacks).",
)
def _s3_force_destroy(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.guarded and truthy(inputs.get("forceDestroy")):
        return [f"forceDestroy is true in {ctx.environment}: a delete empties the bucket"]
    return []

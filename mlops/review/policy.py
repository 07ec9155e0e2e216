"""Policy rules: pure functions over `(type, inputs)`, shared by `mlops policy` and the pack.

This module imports only the standard library so the `pulumi_policy` pack in
`infra/policy/` can load it in its own virtualenv. Two scopes:

- resource rules see one resource's inputs and a small context (its environment, from the
  `mlops:environment` tag or the stack's config);
- stack rules see every resource, for properties that AWS models as separate resources
  (an S3 bucket's encryption, versioning, public-access block, TLS policy, logging,
  lifecycle; an ECR repository's lifecycle policy; a VPC's flow log).

Each rule has an id, a severity, an enforcement (mandatory rules fail `mlops policy` and
`pulumi preview`), cross-references (checkov ids, CIS AWS Foundations items), a
description and a remediation. Exceptions are explicit, per stack, with a reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "high", "medium", "low"]
Enforcement = Literal["mandatory", "advisory"]
SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}
PROTECTED_ENVIRONMENTS = ("prod",)
REQUIRED_TAGS = ("mlops:stack", "mlops:environment", "mlops:owner")
OPEN_CIDRS = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Resource:
    """What a rule sees of a resource: the same shape offline and in the pack."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    environment: str | None = None

    @property
    def protected(self) -> bool:
        return self.environment in PROTECTED_ENVIRONMENTS


ResourceCheck = Callable[[Mapping[str, Any], Context], list[str]]
StackCheck = Callable[[Sequence[Resource]], list[tuple[Resource, str]]]
TypedCheck = Callable[[str, Mapping[str, Any], Context], list[str]]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    enforcement: Enforcement
    description: str
    remediation: str
    checkov: tuple[str, ...] = ()
    cis: tuple[str, ...] = ()
    types: tuple[str, ...] = ()  # resource scope: the types `check` applies to
    check: ResourceCheck | None = None
    check_typed: TypedCheck | None = None
    check_stack: StackCheck | None = None

    @property
    def reference(self) -> str:
        return ", ".join([*self.checkov, *(f"CIS {c}" for c in self.cis)]) or "-"


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    enforcement: Enforcement
    urn: str
    name: str
    type: str
    message: str
    excepted: str | None = None  # the exception's reason when one applies

    @property
    def blocking(self) -> bool:
        return self.enforcement == "mandatory" and self.excepted is None

    def key(self) -> tuple[str, str]:
        """Identity across stacks and commits: rule and the urn's logical part."""
        return self.rule_id, self.urn.rsplit("::", 2)[-2] + "::" + self.name


@dataclass(frozen=True)
class PolicyException:
    rule: str
    reason: str
    urn_contains: str | None = None
    name: str | None = None

    def matches(self, finding: Finding) -> bool:
        if self.rule != finding.rule_id:
            return False
        if self.name is not None:
            return self.name == finding.name
        return self.urn_contains is not None and self.urn_contains in finding.urn


class ExceptionConfigError(ValueError):
    pass


# --------------------------------------------------------------------------------------
# Helpers


def get(data: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return current


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _truthy(value: Any) -> bool:
    # Some providers' inputs carry booleans as strings ("true") in nested blocks.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def policy_document(value: Any) -> dict[str, Any] | None:
    """An IAM/resource policy given as a JSON string or mapping; None when not known."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    return None


def statements(doc: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not doc:
        return []
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, dict)]


def _policy_docs(type_: str, inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    if type_ == "aws:iam/role:Role":
        docs = [policy_document(p.get("policy")) for p in _as_list(inputs.get("inlinePolicies"))]
    else:
        docs = [policy_document(inputs.get("policy"))]
    return [d for d in docs if d]


_READ_VERBS = re.compile(
    r"^(Get|List|Describe|BatchGet|Head|Check|Query|Scan|Search|Lookup|Select|View|"
    r"BatchCheck|Validate|Verify)",
    re.IGNORECASE,
)

# Actions that do not support resource-level permissions, so "*" is the only resource AWS
# accepts (Service Authorization Reference); each with where we need it.
WILDCARD_RESOURCE_EXCEPTIONS: dict[str, str] = {
    "ecr:getauthorizationtoken": "registry login token is account-wide",
    "logs:createlogdelivery": "vended log delivery (Step Functions logging)",
    "logs:getlogdelivery": "vended log delivery (Step Functions logging)",
    "logs:updatelogdelivery": "vended log delivery (Step Functions logging)",
    "logs:deletelogdelivery": "vended log delivery (Step Functions logging)",
    "logs:listlogdeliveries": "vended log delivery (Step Functions logging)",
    "logs:putresourcepolicy": "vended log delivery (Step Functions logging)",
    "logs:describeresourcepolicies": "vended log delivery (Step Functions logging)",
    "logs:describeloggroups": "vended log delivery (Step Functions logging)",
    "xray:puttracesegments": "X-Ray has no resource-level permissions",
    "xray:puttelemetryrecords": "X-Ray has no resource-level permissions",
    "xray:getsamplingrules": "X-Ray has no resource-level permissions",
    "xray:getsamplingtargets": "X-Ray has no resource-level permissions",
    "cloudwatch:putmetricdata": "no resource-level permissions; scope with cloudwatch:namespace",
    "sts:getcalleridentity": "no resource-level permissions",
}


def is_write_action(action: str) -> bool:
    verb = action.split(":", 1)[-1]
    return "*" in verb or not _READ_VERBS.match(verb)


def allowed_pairs(doc: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(action, resource) pairs granted by Allow statements, lower-cased actions."""
    pairs: set[tuple[str, str]] = set()
    for s in statements(doc):
        if s.get("Effect") != "Allow":
            continue
        actions = [str(a).lower() for a in _as_list(s.get("Action"))]
        if "NotAction" in s:
            actions.append("*")  # NotAction grants everything else: as broad as "*"
        resources = [str(r) for r in _as_list(s.get("Resource"))] or ["*"]
        if "NotResource" in s:
            resources.append("*")
        pairs |= {(a, r) for a in actions for r in resources}
    return pairs


# --------------------------------------------------------------------------------------
# Resource checks


def _s3_force_destroy(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.protected and _truthy(inputs.get("forceDestroy")):
        return [f"forceDestroy is true in {ctx.environment}: a delete empties the bucket"]
    return []


def _pab_flags(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [f for f in flags if not _truthy(inputs.get(f))]
    return [f"public access block flags not true: {', '.join(off)}"] if off else []


def _sse_config(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    algos = [
        get(r, "applyServerSideEncryptionByDefault.sseAlgorithm")
        for r in _as_list(inputs.get("rules"))
    ]
    if not any(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algos):
        return [f"no default encryption algorithm (got {algos!r}; allowed AES256, aws:kms)"]
    return []


def _kms_rotation(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    spec = inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT")
    if spec == "SYMMETRIC_DEFAULT" and not _truthy(inputs.get("enableKeyRotation")):
        return ["enableKeyRotation is not true on a symmetric key"]
    return []


def _kms_window(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    days = inputs.get("deletionWindowInDays", 30)  # AWS default when unset
    need = 30 if ctx.protected else 7
    if not isinstance(days, int) or days < need:
        return [f"deletionWindowInDays is {days!r}; at least {need} in {ctx.environment or 'any'}"]
    return []


def _ecr_scan(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if not _truthy(get(inputs, "imageScanningConfiguration.scanOnPush")):
        return ["imageScanningConfiguration.scanOnPush is not true"]
    return []


def _ecr_immutable(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    value = inputs.get("imageTagMutability", "MUTABLE")
    if not str(value).startswith("IMMUTABLE"):
        return [f"imageTagMutability is {value!r}; allowed IMMUTABLE"]
    return []


def _ecr_kms(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    kinds = [c.get("encryptionType") for c in _as_list(inputs.get("encryptionConfigurations"))]
    if "KMS" not in kinds:
        return [
            f"encryptionConfigurations.encryptionType is {kinds or 'AES256 (default)'}; use KMS"
        ]
    return []


def _ecr_force_delete(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.protected and _truthy(inputs.get("forceDelete")):
        return [f"forceDelete is true in {ctx.environment}: a delete drops every image"]
    return []


def _eks_secrets(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    configs = _as_list(inputs.get("encryptionConfig"))
    ok = any(
        "secrets" in _as_list(c.get("resources")) and get(c, "provider.keyArn") for c in configs
    )
    return [] if ok else ["encryptionConfig does not encrypt 'secrets' with a KMS key"]


def _eks_endpoint(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    vpc = inputs.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)  # the EKS API default is public
    if not _truthy(public):
        return []
    cidrs = [str(c) for c in _as_list(vpc.get("publicAccessCidrs"))] or ["0.0.0.0/0"]
    open_ = [c for c in cidrs if c in OPEN_CIDRS]
    if open_:
        return [
            f"public endpoint open to {', '.join(open_)}; set endpointPublicAccess false "
            "or restrict vpcConfig.publicAccessCidrs"
        ]
    if not _truthy(vpc.get("endpointPrivateAccess")):
        return ["endpointPrivateAccess is not true: nodes reach the API over the internet"]
    return []


EKS_LOG_TYPES = ("api", "audit", "authenticator")


def _eks_logs(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    enabled = set(_as_list(inputs.get("enabledClusterLogTypes")))
    missing = [t for t in EKS_LOG_TYPES if t not in enabled]
    return [f"enabledClusterLogTypes misses {', '.join(missing)}"] if missing else []


def _eks_support(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    support = get(inputs, "upgradePolicy.supportType")
    if support != "STANDARD":
        return [
            f"upgradePolicy.supportType is {support!r}: EXTENDED support costs 6× "
            "the control plane; allowed STANDARD"
        ]
    return []


def _iam_no_star_action(type_: str) -> ResourceCheck:
    def check(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        out = []
        for doc in _policy_docs(type_, inputs):
            for action, _ in sorted(allowed_pairs(doc)):
                if action == "*" or action.endswith(":*"):
                    out.append(f"Allow of action {action!r}")
        return sorted(set(out))

    return check


def _iam_star_resource(type_: str) -> ResourceCheck:
    def check(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        bad = set()
        for doc in _policy_docs(type_, inputs):
            for action, resource in allowed_pairs(doc):
                exempt = action in WILDCARD_RESOURCE_EXCEPTIONS
                if resource == "*" and is_write_action(action) and not exempt:
                    bad.add(action)
        if not bad:
            return []
        return [f"write actions on Resource '*': {', '.join(sorted(bad))}"]

    return check


def _assume_role(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    doc = policy_document(inputs.get("assumeRolePolicy"))
    out = []
    for s in statements(doc):
        if s.get("Effect") != "Allow":
            continue
        principal = s.get("Principal")
        aws = _as_list(principal.get("AWS")) if isinstance(principal, dict) else []
        if (principal == "*" or "*" in aws) and not s.get("Condition"):
            out.append("trust policy allows any principal ('*') without a condition")
        federated = _as_list(principal.get("Federated")) if isinstance(principal, dict) else []
        if federated and not s.get("Condition"):
            out.append("web-identity trust without a condition on the token's sub/aud")
    return out


BROAD_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
    "arn:aws:iam::aws:policy/AmazonS3FullAccess",
)


def _broad_attachment(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    arn = str(inputs.get("policyArn", ""))
    return [f"attaches the broad managed policy {arn}"] if arn in BROAD_MANAGED_POLICIES else []


def _imdsv2(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    tokens = get(inputs, "metadataOptions.httpTokens")
    if tokens != "required":
        return [f"metadataOptions.httpTokens is {tokens!r}; allowed 'required' (IMDSv2)"]
    return []


def _hop_limit(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    hops = get(inputs, "metadataOptions.httpPutResponseHopLimit")
    if hops != 1:
        return [
            f"metadataOptions.httpPutResponseHopLimit is {hops!r}; allowed 1 "
            "(containers must use pod identity, not the node's role)"
        ]
    return []


def _ebs_encrypted(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    out = []
    for m in _as_list(inputs.get("blockDeviceMappings")):
        ebs = m.get("ebs")
        if ebs is not None and not _truthy(ebs.get("encrypted")):
            out.append(f"EBS volume {m.get('deviceName', '?')} is not encrypted")
    return out


def _rds_encrypted(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return [] if _truthy(inputs.get("storageEncrypted")) else ["storageEncrypted is not true"]


def _rds_backups(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    days = inputs.get("backupRetentionPeriod", 1)
    need = 7 if ctx.protected else 1
    if not isinstance(days, int) or days < need:
        return [f"backupRetentionPeriod is {days!r}; at least {need} in {ctx.environment or 'any'}"]
    return []


def _rds_deletion_protection(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.protected and not _truthy(inputs.get("deletionProtection")):
        return [f"deletionProtection is not true in {ctx.environment}"]
    return []


def _rds_public(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return ["publiclyAccessible is true"] if _truthy(inputs.get("publiclyAccessible")) else []


def _rds_multi_az(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.protected and not _truthy(inputs.get("multiAz")):
        return [f"multiAz is not true in {ctx.environment}: one AZ outage stops tracking"]
    return []


def open_ingress(type_: str, inputs: Mapping[str, Any]) -> list[str]:
    """Ingress rules of any of the three SG shapes that admit 0.0.0.0/0 or ::/0."""
    out = []
    if type_ in (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    ):
        for rule in _as_list(inputs.get("ingress")):
            cidrs = _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks"))
            for c in cidrs:
                if c in OPEN_CIDRS:
                    ports = f"{rule.get('fromPort')}-{rule.get('toPort')}"
                    out.append(f"ingress {rule.get('protocol')} {ports} from {c}")
    elif type_ == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if inputs.get("type") == "ingress":
            for c in _as_list(inputs.get("cidrBlocks")) + _as_list(inputs.get("ipv6CidrBlocks")):
                if c in OPEN_CIDRS:
                    out.append(f"ingress {inputs.get('fromPort')}-{inputs.get('toPort')} from {c}")
    elif type_ == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        for key in ("cidrIpv4", "cidrIpv6"):
            if inputs.get(key) in OPEN_CIDRS:
                out.append(
                    f"ingress {inputs.get('fromPort')}-{inputs.get('toPort')} from {inputs[key]}"
                )
    return out


SG_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
)


def _sg_ingress(type_: str) -> ResourceCheck:
    return lambda inputs, ctx: open_ingress(type_, inputs)


def _all_ports_open_egress(type_: str) -> ResourceCheck:
    def check(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        rules: list[Mapping[str, Any]]
        if type_ == "aws:ec2/securityGroup:SecurityGroup":
            rules = _as_list(inputs.get("egress"))
        elif type_ == "aws:ec2/securityGroupRule:SecurityGroupRule":
            rules = [inputs] if inputs.get("type") == "egress" else []
        else:  # aws:vpc/securityGroupEgressRule
            rules = [{"protocol": inputs.get("ipProtocol"), "cidrBlocks": [inputs.get("cidrIpv4")]}]
        out = []
        for r in rules:
            if str(r.get("protocol")) in ("-1", "all") and any(
                c in OPEN_CIDRS for c in _as_list(r.get("cidrBlocks"))
            ):
                out.append("egress on all ports and protocols to 0.0.0.0/0")
        return out

    return check


def _default_sg(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if _as_list(inputs.get("ingress")) or _as_list(inputs.get("egress")):
        return ["the VPC's default security group has rules; it should allow nothing"]
    return []


def _log_retention(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    days = inputs.get("retentionInDays", 0)
    return (
        [] if isinstance(days, int) and days > 0 else ["retentionInDays unset: logs kept forever"]
    )


def _log_kms(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return [] if inputs.get("kmsKeyId") else ["kmsKeyId unset: log data encrypted with an AWS key"]


def _sns_kms(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    return [] if inputs.get("kmsMasterKeyId") else ["kmsMasterKeyId unset: topic not encrypted"]


def _sfn_logging(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    level = get(inputs, "loggingConfiguration.level", "OFF")
    if level == "OFF" or not get(inputs, "loggingConfiguration.logDestination"):
        return [f"loggingConfiguration.level is {level!r} or has no destination"]
    return []


def _sfn_tracing(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    ok = _truthy(get(inputs, "tracingConfiguration.enabled"))
    return [] if ok else ["tracingConfiguration.enabled is not true"]


def _batch_min_vcpus(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    if inputs.get("type") == "UNMANAGED":
        return []
    vcpus = get(inputs, "computeResources.minVcpus", 0)
    return [] if vcpus == 0 else [f"computeResources.minVcpus is {vcpus}: paid while idle"]


# Types that take no tags (AWS has no tagging API for them).
UNTAGGABLE = frozenset(
    {
        "aws:kms/alias:Alias",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketLogging:BucketLogging",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:cloudwatch/eventTarget:EventTarget",
        "aws:cloudwatch/dashboard:Dashboard",
        "aws:sns/topicSubscription:TopicSubscription",
        "aws:sns/topicPolicy:TopicPolicy",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:budgets/budget:Budget",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    }
)


def taggable(type_: str) -> bool:
    return type_.startswith("aws:") and type_ not in UNTAGGABLE


def _tags(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    tags = inputs.get("tags") or {}
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    return [f"missing tags: {', '.join(missing)}"] if missing else []


# --------------------------------------------------------------------------------------
# Stack checks (cross-resource)

BUCKET = "aws:s3/bucket:Bucket"


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
    return {
        str(r.inputs.get("targetBucket"))
        for r in resources
        if r.type == "aws:s3/bucketLogging:BucketLogging"
    }


def _each_bucket(
    type_: str, problem: Callable[[list[Resource], Resource, Sequence[Resource]], str | None]
) -> StackCheck:
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


def _need_kms(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    if b.inputs.get("bucket") in _log_targets(rs):
        return None  # S3 server access logs can only be delivered to SSE-S3 buckets
    algos = {
        get(rule, "applyServerSideEncryptionByDefault.sseAlgorithm")
        for r in found
        for rule in _as_list(r.inputs.get("rules"))
    }
    return (
        None
        if algos & {"aws:kms", "aws:kms:dsse"}
        else f"default encryption {sorted(map(str, algos))}, not SSE-KMS"
    )


def _need_versioning(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    statuses = [get(r.inputs, "versioningConfiguration.status") for r in found]
    return None if "Enabled" in statuses else f"versioning is {statuses or 'not configured'}"


def _need_pab(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    return None if found else "no BucketPublicAccessBlock"


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


def _need_logging(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    if found or b.inputs.get("bucket") in _log_targets(rs):
        return None
    return "no BucketLogging (server access logs)"


def _need_lifecycle(found: list[Resource], b: Resource, rs: Sequence[Resource]) -> str | None:
    rules = [rule for r in found for rule in _as_list(r.inputs.get("rules"))]
    if not rules:
        return "no BucketLifecycleConfiguration"
    if not any(rule.get("abortIncompleteMultipartUpload") for rule in rules):
        return "lifecycle does not abort incomplete multipart uploads"
    return None


def _ecr_lifecycle(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    out = []
    for repo in resources:
        if repo.type != "aws:ecr/repository:Repository":
            continue
        name = repo.inputs.get("name")
        if not any(
            r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy"
            and (repo.urn in r.dependencies or (name and r.inputs.get("repository") == name))
            for r in resources
        ):
            out.append((repo, "no ECR lifecycle policy: images accumulate"))
    return out


def _vpc_flow_logs(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    out = []
    for vpc in resources:
        if vpc.type != "aws:ec2/vpc:Vpc":
            continue
        if not any(
            r.type == "aws:ec2/flowLog:FlowLog" and vpc.urn in r.dependencies for r in resources
        ):
            out.append((vpc, "no VPC flow log"))
    return out


# --------------------------------------------------------------------------------------
# The rules

_IAM_DOC_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:iam/role:Role")


def _per_type(factory: Callable[[str], ResourceCheck], types: tuple[str, ...]) -> TypedCheck:
    """One check per type, for rules whose inputs differ in shape between types."""
    checks = {t: factory(t) for t in types}

    def check(type_: str, inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        fn = checks.get(type_)
        return fn(inputs, ctx) if fn else []

    return check


RULES: tuple[Rule, ...] = (
    Rule(
        "MLOPS-S3-001",
        "S3 bucket default encryption",
        "high",
        "mandatory",
        "Every bucket has a server-side encryption configuration.",
        "Add a BucketServerSideEncryptionConfiguration (SSE-KMS for data, SSE-S3 for log targets).",
        ("CKV_AWS_19",),
        ("1.4 2.1.1",),
        check_stack=_each_bucket(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            _need_sse,
        ),
    ),
    Rule(
        "MLOPS-S3-002",
        "S3 encryption algorithm",
        "high",
        "mandatory",
        "The encryption configuration names AES256 or aws:kms.",
        "Set rules[].applyServerSideEncryptionByDefault.sseAlgorithm to aws:kms.",
        ("CKV_AWS_19",),
        (),
        ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",),
        check=_sse_config,
    ),
    Rule(
        "MLOPS-S3-003",
        "S3 data buckets use SSE-KMS",
        "medium",
        "advisory",
        "Data buckets use the platform KMS key (access-log targets are exempt: AWS "
        "requires SSE-S3 there).",
        "Set sseAlgorithm aws:kms with kmsMasterKeyId the platform key, bucketKeyEnabled true.",
        ("CKV_AWS_145",),
        (),
        check_stack=_each_bucket(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            _need_kms,
        ),
    ),
    Rule(
        "MLOPS-S3-004",
        "S3 versioning",
        "high",
        "mandatory",
        "Every bucket has versioning Enabled, so an overwrite or delete is recoverable.",
        "Add a BucketVersioning with versioningConfiguration.status Enabled.",
        ("CKV_AWS_21",),
        (),
        check_stack=_each_bucket("aws:s3/bucketVersioning:BucketVersioning", _need_versioning),
    ),
    Rule(
        "MLOPS-S3-005",
        "S3 public access block present",
        "critical",
        "mandatory",
        "Every bucket has a public access block.",
        "Add a BucketPublicAccessBlock with all four flags true.",
        ("CKV2_AWS_6",),
        ("3.0 2.1.4",),
        check_stack=_each_bucket(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", _need_pab
        ),
    ),
    Rule(
        "MLOPS-S3-006",
        "S3 public access block flags",
        "critical",
        "mandatory",
        "All four public-access-block flags are true.",
        "Set blockPublicAcls, blockPublicPolicy, ignorePublicAcls, restrictPublicBuckets to true.",
        ("CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56"),
        ("3.0 2.1.4",),
        ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",),
        check=_pab_flags,
    ),
    Rule(
        "MLOPS-S3-007",
        "S3 TLS-only bucket policy",
        "high",
        "mandatory",
        "The bucket policy denies requests without TLS.",
        "Add a Deny statement on s3:* with Condition Bool aws:SecureTransport false.",
        (),
        ("3.0 2.1.1",),
        check_stack=_each_bucket("aws:s3/bucketPolicy:BucketPolicy", _need_tls),
    ),
    Rule(
        "MLOPS-S3-008",
        "S3 server access logging",
        "low",
        "advisory",
        "Data buckets log access to the access-log bucket.",
        "Add a BucketLogging targeting the access-log bucket.",
        ("CKV_AWS_18",),
        (),
        check_stack=_each_bucket("aws:s3/bucketLogging:BucketLogging", _need_logging),
    ),
    Rule(
        "MLOPS-S3-009",
        "S3 lifecycle configuration",
        "low",
        "advisory",
        "Every bucket has a lifecycle that at least aborts incomplete multipart uploads.",
        "Add a BucketLifecycleConfiguration with abortIncompleteMultipartUpload.",
        ("CKV2_AWS_61", "CKV_AWS_300"),
        (),
        check_stack=_each_bucket(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", _need_lifecycle
        ),
    ),
    Rule(
        "MLOPS-S3-010",
        "No force_destroy in prod",
        "critical",
        "mandatory",
        "Production buckets must not be emptied by a delete.",
        "Set forceDestroy false (storage.force_destroy only for ephemeral/local stacks).",
        (),
        (),
        (BUCKET,),
        check=_s3_force_destroy,
    ),
    Rule(
        "MLOPS-KMS-001",
        "KMS key rotation",
        "high",
        "mandatory",
        "Symmetric customer keys rotate yearly.",
        "Set enableKeyRotation true.",
        ("CKV_AWS_7",),
        ("3.0 3.6",),
        ("aws:kms/key:Key",),
        check=_kms_rotation,
    ),
    Rule(
        "MLOPS-KMS-002",
        "KMS deletion window",
        "medium",
        "mandatory",
        "A scheduled key deletion can be cancelled for at least 7 days (30 in prod).",
        "Set deletionWindowInDays to 30 (storage.kms_deletion_window_days).",
        (),
        (),
        ("aws:kms/key:Key",),
        check=_kms_window,
    ),
    Rule(
        "MLOPS-ECR-001",
        "ECR scan on push",
        "medium",
        "mandatory",
        "Images are scanned for vulnerabilities on push.",
        "Set imageScanningConfiguration.scanOnPush true.",
        ("CKV_AWS_163",),
        (),
        ("aws:ecr/repository:Repository",),
        check=_ecr_scan,
    ),
    Rule(
        "MLOPS-ECR-002",
        "ECR immutable tags",
        "medium",
        "mandatory",
        "Tags cannot be moved: a deployed tag always means the same image.",
        "Set imageTagMutability IMMUTABLE.",
        ("CKV_AWS_51",),
        (),
        ("aws:ecr/repository:Repository",),
        check=_ecr_immutable,
    ),
    Rule(
        "MLOPS-ECR-003",
        "ECR KMS encryption",
        "low",
        "advisory",
        "Repositories encrypt with the platform KMS key.",
        "Set encryptionConfigurations [{encryptionType: KMS, kmsKey: <key arn>}] "
        "(replaces the repository).",
        ("CKV_AWS_136",),
        (),
        ("aws:ecr/repository:Repository",),
        check=_ecr_kms,
    ),
    Rule(
        "MLOPS-ECR-004",
        "ECR lifecycle policy",
        "low",
        "advisory",
        "Every repository has a lifecycle policy so images do not accumulate.",
        "Add an ecr.LifecyclePolicy (registry.keep_last_images).",
        (),
        (),
        check_stack=_ecr_lifecycle,
    ),
    Rule(
        "MLOPS-ECR-005",
        "No force_delete in prod",
        "high",
        "mandatory",
        "Production registries must not drop images on delete.",
        "Set forceDelete false.",
        (),
        (),
        ("aws:ecr/repository:Repository",),
        check=_ecr_force_delete,
    ),
    Rule(
        "MLOPS-EKS-001",
        "EKS secrets encryption",
        "high",
        "mandatory",
        "Kubernetes secrets are envelope-encrypted with a KMS key.",
        "Set encryptionConfig {resources: [secrets], provider: {keyArn: <key arn>}}.",
        ("CKV_AWS_58",),
        (),
        ("aws:eks/cluster:Cluster",),
        check=_eks_secrets,
    ),
    Rule(
        "MLOPS-EKS-002",
        "EKS endpoint not open to the internet",
        "critical",
        "mandatory",
        "The API endpoint is private, or public only to listed CIDRs, with private access on.",
        "Set vpcConfig.endpointPublicAccess false, or publicAccessCidrs to office/VPN ranges "
        "(serving.public_access_cidrs) and endpointPrivateAccess true.",
        ("CKV_AWS_38", "CKV_AWS_39"),
        (),
        ("aws:eks/cluster:Cluster",),
        check=_eks_endpoint,
    ),
    Rule(
        "MLOPS-EKS-003",
        "EKS control-plane logs",
        "medium",
        "mandatory",
        "api, audit and authenticator logs go to CloudWatch.",
        "Set enabledClusterLogTypes to include api, audit, authenticator.",
        ("CKV_AWS_37",),
        (),
        ("aws:eks/cluster:Cluster",),
        check=_eks_logs,
    ),
    Rule(
        "MLOPS-EKS-004",
        "EKS standard support policy",
        "medium",
        "advisory",
        "Clusters created through the API default to EXTENDED support ($0.60/h vs $0.10/h).",
        "Set upgradePolicy.supportType STANDARD and upgrade Kubernetes on schedule.",
        (),
        (),
        ("aws:eks/cluster:Cluster",),
        check=_eks_support,
    ),
    Rule(
        "MLOPS-IAM-001",
        "No wildcard IAM actions",
        "critical",
        "mandatory",
        "No Allow of '*' or 'service:*' (or NotAction) in identity policies.",
        "List the actions the workload calls.",
        ("CKV_AWS_1", "CKV_AWS_62", "CKV_AWS_63"),
        ("3.0 1.16",),
        _IAM_DOC_TYPES,
        check_typed=_per_type(_iam_no_star_action, _IAM_DOC_TYPES),
    ),
    Rule(
        "MLOPS-IAM-002",
        "No write actions on Resource '*'",
        "high",
        "mandatory",
        "Write actions are scoped to ARNs, except actions AWS cannot scope "
        "(WILDCARD_RESOURCE_EXCEPTIONS).",
        "Replace Resource '*' with the ARNs (or ARN patterns) the action acts on.",
        ("CKV_AWS_111", "CKV_AWS_290"),
        (),
        _IAM_DOC_TYPES,
        check_typed=_per_type(_iam_star_resource, _IAM_DOC_TYPES),
    ),
    Rule(
        "MLOPS-IAM-003",
        "Restricted assume-role policy",
        "critical",
        "mandatory",
        "Trust policies name the principal; web identity is conditioned on the token.",
        "Name the service or role principal; add sub/aud conditions for OIDC.",
        ("CKV_AWS_60",),
        (),
        ("aws:iam/role:Role",),
        check=_assume_role,
    ),
    Rule(
        "MLOPS-IAM-004",
        "No broad managed policies",
        "high",
        "mandatory",
        "Roles do not get AdministratorAccess, PowerUserAccess, IAMFullAccess or S3 full access.",
        "Write a least-privilege inline policy instead.",
        ("CKV_AWS_274",),
        ("3.0 1.16",),
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",),
        check=_broad_attachment,
    ),
    Rule(
        "MLOPS-EC2-001",
        "IMDSv2 required",
        "high",
        "mandatory",
        "Instances only accept session-token metadata requests.",
        "Set metadataOptions.httpTokens required.",
        ("CKV_AWS_79",),
        ("3.0 5.6",),
        ("aws:ec2/launchTemplate:LaunchTemplate",),
        check=_imdsv2,
    ),
    Rule(
        "MLOPS-EC2-002",
        "IMDS hop limit 1",
        "medium",
        "mandatory",
        "Containers cannot reach the node's metadata (and its role) through an extra hop.",
        "Set metadataOptions.httpPutResponseHopLimit 1.",
        (),
        (),
        ("aws:ec2/launchTemplate:LaunchTemplate",),
        check=_hop_limit,
    ),
    Rule(
        "MLOPS-EC2-003",
        "Encrypted EBS volumes",
        "high",
        "mandatory",
        "Every EBS volume in a launch template is encrypted.",
        "Set blockDeviceMappings[].ebs.encrypted true (and kmsKeyId).",
        ("CKV_AWS_8",),
        ("3.0 2.2.1",),
        ("aws:ec2/launchTemplate:LaunchTemplate",),
        check=_ebs_encrypted,
    ),
    Rule(
        "MLOPS-RDS-001",
        "RDS storage encrypted",
        "high",
        "mandatory",
        "Database storage, backups and snapshots are encrypted.",
        "Set storageEncrypted true with kmsKeyId (replaces the instance).",
        ("CKV_AWS_16",),
        ("3.0 2.3.1",),
        ("aws:rds/instance:Instance",),
        check=_rds_encrypted,
    ),
    Rule(
        "MLOPS-RDS-002",
        "RDS backups",
        "high",
        "mandatory",
        "Automated backups are kept at least 1 day (7 in prod).",
        "Set backupRetentionPeriod (tracking.db_backup_retention_days).",
        ("CKV_AWS_133",),
        (),
        ("aws:rds/instance:Instance",),
        check=_rds_backups,
    ),
    Rule(
        "MLOPS-RDS-003",
        "RDS deletion protection in prod",
        "high",
        "mandatory",
        "The production tracking database cannot be deleted by accident.",
        "Set deletionProtection true (tracking.db_deletion_protection).",
        ("CKV_AWS_293",),
        (),
        ("aws:rds/instance:Instance",),
        check=_rds_deletion_protection,
    ),
    Rule(
        "MLOPS-RDS-004",
        "RDS not publicly accessible",
        "critical",
        "mandatory",
        "The database has no public address.",
        "Set publiclyAccessible false.",
        ("CKV_AWS_17",),
        ("3.0 2.3.3",),
        ("aws:rds/instance:Instance",),
        check=_rds_public,
    ),
    Rule(
        "MLOPS-RDS-005",
        "RDS multi-AZ in prod",
        "medium",
        "advisory",
        "The production database has a standby in a second AZ.",
        "Set multiAz true (tracking.db_multi_az).",
        ("CKV_AWS_157",),
        (),
        ("aws:rds/instance:Instance",),
        check=_rds_multi_az,
    ),
    Rule(
        "MLOPS-SG-001",
        "No ingress from the internet",
        "critical",
        "mandatory",
        "No security group admits 0.0.0.0/0 or ::/0.",
        "Admit the VPC CIDR or a source security group instead.",
        ("CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260"),
        ("3.0 5.2", "3.0 5.3"),
        SG_TYPES,
        check_typed=_per_type(_sg_ingress, SG_TYPES),
    ),
    Rule(
        "MLOPS-SG-002",
        "Egress restricted",
        "low",
        "advisory",
        "Egress is limited to the ports needed rather than all ports to anywhere.",
        "List the egress ports (e.g. 443) or use VPC endpoints.",
        ("CKV_AWS_382",),
        (),
        (
            "aws:ec2/securityGroup:SecurityGroup",
            "aws:ec2/securityGroupRule:SecurityGroupRule",
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        ),
        check_typed=_per_type(
            _all_ports_open_egress,
            (
                "aws:ec2/securityGroup:SecurityGroup",
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
            ),
        ),
    ),
    Rule(
        "MLOPS-SG-003",
        "Default security group allows nothing",
        "medium",
        "mandatory",
        "The VPC's default security group has no rules.",
        "Manage it with DefaultSecurityGroup and no ingress/egress.",
        ("CKV2_AWS_12",),
        ("3.0 5.4",),
        ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",),
        check=_default_sg,
    ),
    Rule(
        "MLOPS-VPC-001",
        "VPC flow logs",
        "low",
        "advisory",
        "Every VPC records flow logs.",
        "Enable network.flow_logs.",
        ("CKV2_AWS_11",),
        ("3.0 3.7",),
        check_stack=_vpc_flow_logs,
    ),
    Rule(
        "MLOPS-LOG-001",
        "Log retention set",
        "medium",
        "mandatory",
        "Log groups expire their data.",
        "Set retentionInDays.",
        ("CKV_AWS_66",),
        (),
        ("aws:cloudwatch/logGroup:LogGroup",),
        check=_log_retention,
    ),
    Rule(
        "MLOPS-LOG-002",
        "Log groups KMS-encrypted",
        "medium",
        "mandatory",
        "Log data is encrypted with the platform key.",
        "Set kmsKeyId.",
        ("CKV_AWS_158",),
        (),
        ("aws:cloudwatch/logGroup:LogGroup",),
        check=_log_kms,
    ),
    Rule(
        "MLOPS-SNS-001",
        "SNS topic encrypted",
        "medium",
        "mandatory",
        "Alert topics are encrypted at rest.",
        "Set kmsMasterKeyId.",
        ("CKV_AWS_26",),
        (),
        ("aws:sns/topic:Topic",),
        check=_sns_kms,
    ),
    Rule(
        "MLOPS-SFN-001",
        "Step Functions logging",
        "medium",
        "mandatory",
        "State machines log executions to CloudWatch.",
        "Set loggingConfiguration {level: ERROR or ALL, logDestination: <log group arn>:*}.",
        ("CKV_AWS_285",),
        (),
        ("aws:sfn/stateMachine:StateMachine",),
        check=_sfn_logging,
    ),
    Rule(
        "MLOPS-SFN-002",
        "Step Functions tracing",
        "low",
        "advisory",
        "X-Ray tracing is on.",
        "Set tracingConfiguration.enabled true.",
        ("CKV_AWS_284",),
        (),
        ("aws:sfn/stateMachine:StateMachine",),
        check=_sfn_tracing,
    ),
    Rule(
        "MLOPS-BATCH-001",
        "Batch scales to zero",
        "low",
        "advisory",
        "Managed compute environments keep min vCPUs at 0 so idle costs nothing.",
        "Set computeResources.minVcpus 0.",
        (),
        (),
        ("aws:batch/computeEnvironment:ComputeEnvironment",),
        check=_batch_min_vcpus,
    ),
    Rule(
        "MLOPS-TAG-001",
        "Platform tags",
        "medium",
        "mandatory",
        "Taggable resources carry mlops:stack, mlops:environment and mlops:owner.",
        "Merge the platform tag map into tags (infra/planning/tags.py).",
        (),
        (),
        ("*",),
        check=_tags,
    ),
)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


def applies(rule: Rule, type_: str) -> bool:
    if rule.check is None and rule.check_typed is None:
        return False
    if rule.types == ("*",):
        return taggable(type_)
    return type_ in rule.types


def check_resource(rule: Rule, type_: str, inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    """Violations of a resource-scope rule for one resource (empty when it passes)."""
    if not applies(rule, type_):
        return []
    if rule.check_typed is not None:
        return rule.check_typed(type_, inputs, ctx)
    return rule.check(inputs, ctx) if rule.check is not None else []


def environment_of(inputs: Mapping[str, Any]) -> str | None:
    tags = inputs.get("tags")
    if isinstance(tags, Mapping):
        value = tags.get("mlops:environment")
        return str(value) if value else None
    return None


def stack_environment(resources: Iterable[Resource]) -> str | None:
    """The environment most resources are tagged with (untagged ones inherit it)."""
    counts: dict[str, int] = {}
    for r in resources:
        env = environment_of(r.inputs)
        if env:
            counts[env] = counts.get(env, 0) + 1
    return max(sorted(counts), key=lambda e: counts[e]) if counts else None


def evaluate(
    resources: Sequence[Resource],
    *,
    environment: str | None = None,
    exceptions: Sequence[PolicyException] = (),
    rules: Sequence[Rule] = RULES,
) -> list[Finding]:
    """Every violation of every rule; excepted ones are kept, marked with the reason."""
    env = environment or stack_environment(resources)
    findings: list[Finding] = []
    for rule in rules:
        if rule.check_stack is not None:
            for r, message in rule.check_stack(resources):
                findings.append(_finding(rule, r, message))
            continue
        for r in resources:
            ctx = Context(environment_of(r.inputs) or env)
            for message in check_resource(rule, r.type, r.inputs, ctx):
                findings.append(_finding(rule, r, message))
    out = []
    for f in findings:
        reason = next((e.reason for e in exceptions if e.matches(f)), None)
        out.append(_with_exception(f, reason))
    out.sort(
        key=lambda f: (f.enforcement != "mandatory", SEVERITY_RANK[f.severity], f.rule_id, f.urn)
    )
    return out


def _finding(rule: Rule, r: Resource, message: str) -> Finding:
    return Finding(rule.id, rule.severity, rule.enforcement, r.urn, r.name, r.type, message)


def _with_exception(f: Finding, reason: str | None) -> Finding:
    if reason is None:
        return f
    return Finding(f.rule_id, f.severity, f.enforcement, f.urn, f.name, f.type, f.message, reason)


def parse_exceptions(raw: Any) -> list[PolicyException]:
    """`mlops:policy_exceptions` from a stack file; errors name the field, value and allowed."""
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ExceptionConfigError(f"policy_exceptions: not a list ({exc})") from None
    if not isinstance(raw, list):
        raise ExceptionConfigError(f"policy_exceptions: expected a list, got {type(raw).__name__}")
    out = []
    for i, item in enumerate(raw):
        where = f"policy_exceptions[{i}]"
        if not isinstance(item, dict):
            raise ExceptionConfigError(
                f"{where}: expected a mapping with rule, reason and urn_contains or name"
            )
        unknown = sorted(set(item) - {"rule", "reason", "urn_contains", "name"})
        if unknown:
            raise ExceptionConfigError(
                f"{where}: unknown keys {unknown}; allowed rule, reason, urn_contains, name"
            )
        rule = item.get("rule")
        if rule not in RULES_BY_ID:
            raise ExceptionConfigError(
                f"{where}.rule: {rule!r} is not a rule id; allowed {', '.join(sorted(RULES_BY_ID))}"
            )
        reason = item.get("reason")
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            raise ExceptionConfigError(
                f"{where}.reason: {reason!r}; say why, at least 10 characters"
            )
        selectors = [k for k in ("urn_contains", "name") if item.get(k)]
        if len(selectors) != 1:
            raise ExceptionConfigError(f"{where}: give exactly one of urn_contains or name")
        out.append(
            PolicyException(str(rule), reason.strip(), item.get("urn_contains"), item.get("name"))
        )
    return out


@dataclass(frozen=True)
class PolicyReport:
    findings: list[Finding]
    environment: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]


def render_table(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no findings: every rule passes"
    rows = [
        (
            f.rule_id,
            f.enforcement + (" (excepted)" if f.excepted else ""),
            f.severity,
            f.name,
            f.message + (f" — excepted: {f.excepted}" if f.excepted else ""),
        )
        for f in findings
    ]
    headers = ("rule", "enforcement", "severity", "resource", "finding")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    blocking = sum(f.blocking for f in findings)
    advisory = sum(f.enforcement == "advisory" for f in findings)
    lines += ["", f"{blocking} mandatory violation(s), {advisory} advisory finding(s)"]
    return "\n".join(lines)


def resources_from_plan(plan: Any) -> list[Resource]:
    """Views of an `mlops.plan.Plan`'s custom resources (duck-typed: no import of the plan)."""
    return [
        Resource(r.urn, r.type, r.name, r.inputs, tuple(r.dependencies))
        for r in plan.resources
        if r.custom
    ]

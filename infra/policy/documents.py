"""Reading rule inputs: dotted look-ups, policy documents, IAM grants, open ingress, tags.

Inputs arrive as the provider sends them: policy documents as JSON strings or mappings,
some booleans as "true" in nested blocks, scalars where a list is allowed. The rules and
`mlops diff` (which compares the same documents statement by statement) share these.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from typing import Any

OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def get(data: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """`get(inputs, "vpcConfig.endpointPublicAccess")`: `default` where a step is missing."""
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return current


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def truthy(value: Any) -> bool:
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
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


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
        actions = [str(a).lower() for a in as_list(s.get("Action"))]
        if "NotAction" in s:
            actions.append("*")  # NotAction grants everything else: as broad as "*"
        resources = [str(r) for r in as_list(s.get("Resource"))] or ["*"]
        if "NotResource" in s:
            resources.append("*")
        pairs |= {(a, r) for a in actions for r in resources}
    return pairs


def is_unknown(value: Any) -> bool:
    """A value the plan cannot know yet (a preview's computed output, or the offline
    plan's marker for an output its mock does not model)."""
    return isinstance(value, str) and value.startswith("[unknown")


def _principals(statement: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(AWS principals, service principals) a statement names; "*" stands for everyone."""
    principal = statement.get("Principal")
    if principal == "*":
        return {"*"}, {"*"}
    if not isinstance(principal, Mapping):
        return set(), set()
    aws = {str(p) for p in as_list(principal.get("AWS"))}
    services = {str(p) for p in as_list(principal.get("Service"))}
    return aws, services


def allowing_statement(
    doc: Mapping[str, Any] | None,
    action: str,
    resource: str = "*",
    *,
    aws_principal: str | None = None,
    service: str | None = None,
) -> dict[str, Any] | None:
    """The first Allow statement granting `action` on `resource` (to the principal, for a
    resource policy such as a key policy), or None. Conditions are not evaluated: the
    caller looks at the returned statement's `Condition` where it matters."""
    for s in statements(doc):
        if s.get("Effect") != "Allow" or "NotAction" in s or "NotPrincipal" in s:
            continue
        if aws_principal is not None or service is not None:
            aws, services = _principals(s)
            named = (aws_principal is not None and (aws_principal in aws or "*" in aws)) or (
                service is not None and (service in services or "*" in services)
            )
            if not named:
                continue
        actions = [str(a) for a in as_list(s.get("Action"))]
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        resources = [str(r) for r in as_list(s.get("Resource"))] or ["*"]
        if any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return s
    return None


def open_ingress(type_: str, inputs: Mapping[str, Any]) -> list[str]:
    """Ingress rules of any of the three SG shapes that admit 0.0.0.0/0 or ::/0."""
    out = []
    if type_ in (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    ):
        for rule in as_list(inputs.get("ingress")):
            cidrs = as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))
            for c in cidrs:
                if c in OPEN_CIDRS:
                    ports = f"{rule.get('fromPort')}-{rule.get('toPort')}"
                    out.append(f"ingress {rule.get('protocol')} {ports} from {c}")
    elif type_ == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if inputs.get("type") == "ingress":
            for c in as_list(inputs.get("cidrBlocks")) + as_list(inputs.get("ipv6CidrBlocks")):
                if c in OPEN_CIDRS:
                    out.append(f"ingress {inputs.get('fromPort')}-{inputs.get('toPort')} from {c}")
    elif type_ == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        for key in ("cidrIpv4", "cidrIpv6"):
            if inputs.get(key) in OPEN_CIDRS:
                out.append(
                    f"ingress {inputs.get('fromPort')}-{inputs.get('toPort')} from {inputs[key]}"
                )
    return out


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
        "aws:secretsmanager/secretVersion:SecretVersion",
        # Schedules take no tags (their schedule groups do).
        "aws:scheduler/schedule:Schedule",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:budgets/budget:Budget",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    }
)


def taggable(type_: str) -> bool:
    return type_.startswith("aws:") and type_ not in UNTAGGABLE

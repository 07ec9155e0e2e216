"""Which found resources a sweep may delete, and in which order. Pure: no AWS calls.

The safety rule comes first and no filter can override it: a resource whose
`mlops:environment` tag is anything but `ephemeral` (dev, staging, prod, local, or missing)
is never selected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mlops.expiry import ExpiryError, is_expired, parse_utc
from training_jobs import contract
from training_jobs.contract import TAG_ENVIRONMENT, TAG_EXPIRES_AT, TAG_STACK

EPHEMERAL = contract.ENV_EPHEMERAL


@dataclass(frozen=True)
class Found:
    """One resource a listing returned: `kind` is `service:type`, `name` what its API takes."""

    kind: str
    name: str
    arn: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "arn": self.arn, "tags": dict(self.tags)}


@dataclass(frozen=True)
class Selector:
    """`--stack pr-N` and/or `--expired` (both given: both must hold)."""

    now: datetime
    stack: str | None = None
    expired: bool = False

    def __post_init__(self) -> None:
        if self.stack is None and not self.expired:
            raise ValueError("a sweep needs --stack or --expired")

    def describe(self) -> str:
        parts = [f"mlops:stack={self.stack}"] if self.stack else []
        if self.expired:
            parts.append("expired")
        return " and ".join(parts)


@dataclass(frozen=True)
class Verdict:
    selected: bool
    reason: str


def verdict(resource: Found, selector: Selector) -> Verdict:
    env = resource.tags.get(TAG_ENVIRONMENT)
    if env != EPHEMERAL:
        shown = f"environment {env!r}" if env is not None else f"no {TAG_ENVIRONMENT} tag"
        return Verdict(False, f"{shown}: only ephemeral resources are ever swept")
    if selector.stack is not None and resource.tags.get(TAG_STACK) != selector.stack:
        return Verdict(False, f"belongs to stack {resource.tags.get(TAG_STACK)!r}")
    if selector.expired:
        raw = resource.tags.get(TAG_EXPIRES_AT)
        if raw is None:
            return Verdict(False, f"no {TAG_EXPIRES_AT} tag: expiry unknown")
        try:
            expiry = parse_utc(raw, what=TAG_EXPIRES_AT)
        except ExpiryError as exc:
            return Verdict(False, f"{exc}; left alone")
        if not is_expired(expiry, selector.now):
            return Verdict(False, f"expires at {raw}, not yet")
    return Verdict(True, f"ephemeral, {selector.describe()}")


def is_candidate(tags: Mapping[str, str], selector: Selector) -> bool:
    """Worth reporting at all: carries the stack asked for, or looks ephemeral for --expired.

    Broader than `verdict` on purpose, so a receipt shows the decoys a sweep left alone
    (e.g. a resource tagged with the PR's stack name but a prod environment).
    """
    if selector.stack is not None:
        return tags.get(TAG_STACK) == selector.stack
    return tags.get(TAG_ENVIRONMENT) == EPHEMERAL or TAG_EXPIRES_AT in tags


# Deletion order: things that point at others go first. Step Functions, rules, alarms and
# topics reference queues and roles; job queues must go before the compute environments
# they feed; the cluster before the roles it runs as; buckets, images and logs are
# independent; roles after everything that assumes them; KMS keys after everything
# encrypted with them; security groups last, once nothing (ENIs of Batch/EKS) uses them.
DELETION_ORDER: tuple[str, ...] = (
    "states:stateMachine",
    "events:rule",
    "cloudwatch:alarm",
    "sns:topic",
    "batch:job-queue",
    "batch:compute-environment",
    "eks:cluster",
    "s3:bucket",
    "ecr:image-tag",
    "ecr:repository",
    "logs:log-group",
    "iam:instance-profile",
    "iam:role",
    "iam:policy",
    "kms:key",
    "ec2:security-group",
)

# Kinds that cost money while they exist (storage, control planes, instances, key-months).
BILLING_KINDS: frozenset[str] = frozenset(
    {
        "s3:bucket",
        "ecr:image-tag",
        "ecr:repository",
        "logs:log-group",
        "batch:compute-environment",
        "eks:cluster",
        "kms:key",
        "cloudwatch:alarm",
        "ec2:instance",
        "ec2:natgateway",
        "ec2:elastic-ip",
        "elasticloadbalancing:loadbalancer",
        "rds:db",
    }
)


def deletion_rank(kind: str) -> int:
    """Known kinds in DELETION_ORDER; unknown ones after them all (they fail with a reason)."""
    try:
        return DELETION_ORDER.index(kind)
    except ValueError:
        return len(DELETION_ORDER)


def in_deletion_order(resources: list[Found]) -> list[Found]:
    return sorted(resources, key=lambda r: (deletion_rank(r.kind), r.kind, r.name))


def kind_and_name(arn: str) -> tuple[str, str]:
    """(`service:type`, the name or id its delete call takes) from an ARN.

    >>> kind_and_name("arn:aws:logs:us-east-1:1:log-group:/mlops/pr-7:*")
    ('logs:log-group', '/mlops/pr-7')
    """
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return ("unknown", arn)
    service, resource = parts[2], parts[5]
    if service == "s3" and "/" not in resource:
        return ("s3:bucket", resource)
    if service in ("logs", "states", "cloudwatch") and ":" in resource:
        kind, _, rest = resource.partition(":")
        if service == "logs":
            rest = rest.removesuffix(":*")
        if service == "states" and kind == "stateMachine":
            return ("states:stateMachine", arn)
        return (f"{service}:{kind}", rest)
    if service == "sns":
        return ("sns:topic", arn)
    if "/" in resource:
        kind, _, rest = resource.partition("/")
        # IAM names carry a path (role/service-role/x): the API wants the last segment.
        name = rest.rsplit("/", 1)[-1] if service == "iam" else rest
        if service == "iam" and kind == "policy":
            name = arn
        return (f"{service}:{kind}", name)
    return (f"{service}:{resource}", resource)

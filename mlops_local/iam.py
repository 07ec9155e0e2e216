"""Least privilege, measured: the AWS calls a workload made, as IAM sees them, against the
policy its role grants.

Every recorded API call becomes the IAM actions and resource ARNs AWS would authorize it
with (the Service Authorization Reference's mapping, for the operations the platform's
workloads use); then each is checked against the role's policy documents. The report has
the two halves iamlive gives against real AWS: calls made but not granted (the job would
fail in AWS), and grants never used (candidates to remove).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.policy.documents import as_list, statements


@dataclass(frozen=True, order=True)
class Access:
    """One IAM authorization: an action on a resource (with the request's context)."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()  # condition keys the request sets


class UnmappedCall(Exception):
    """A call this table does not know how IAM authorizes; add it (never guess)."""


def _bucket(params: Mapping[str, Any]) -> str:
    return f"arn:aws:s3:::{params['Bucket']}"


def _object(params: Mapping[str, Any]) -> str:
    return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"


def _read(params: Mapping[str, Any]) -> list[Access]:
    action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
    return [Access(action, _object(params))]


# S3 operation → the accesses IAM checks (Service Authorization Reference, Amazon S3).
_S3: dict[str, Any] = {
    "HeadBucket": lambda p: [Access("s3:ListBucket", _bucket(p))],
    "ListObjects": lambda p: [Access("s3:ListBucket", _bucket(p))],
    "ListObjectsV2": lambda p: [Access("s3:ListBucket", _bucket(p))],
    "ListObjectVersions": lambda p: [Access("s3:ListBucketVersions", _bucket(p))],
    "GetBucketVersioning": lambda p: [Access("s3:GetBucketVersioning", _bucket(p))],
    "GetBucketLocation": lambda p: [Access("s3:GetBucketLocation", _bucket(p))],
    "GetObject": _read,
    "HeadObject": _read,
    "PutObject": lambda p: [Access("s3:PutObject", _object(p))],
    "CreateMultipartUpload": lambda p: [Access("s3:PutObject", _object(p))],
    "UploadPart": lambda p: [Access("s3:PutObject", _object(p))],
    "CompleteMultipartUpload": lambda p: [Access("s3:PutObject", _object(p))],
    "AbortMultipartUpload": lambda p: [Access("s3:AbortMultipartUpload", _object(p))],
    "DeleteObject": lambda p: [Access("s3:DeleteObject", _object(p))],
    "CopyObject": lambda p: [
        Access("s3:PutObject", _object(p)),
        Access(
            "s3:GetObject",
            "arn:aws:s3:::" + str(p["CopySource"]).lstrip("/").split("?")[0]
            if isinstance(p["CopySource"], str)
            else f"arn:aws:s3:::{p['CopySource']['Bucket']}/{p['CopySource']['Key']}",
        ),
    ],
}
# Calls AWS authorizes for every caller, whatever its policy says.
UNAUTHORIZED_CALLS = frozenset({("sts", "GetCallerIdentity")})


def accesses(service: str, operation: str, params: Mapping[str, Any]) -> list[Access]:
    """What IAM authorizes for one API call (empty for calls every caller may make)."""
    if (service, operation) in UNAUTHORIZED_CALLS:
        return []
    if service == "s3" and operation in _S3:
        result: list[Access] = _S3[operation](params)
        return result
    if service == "cloudwatch" and operation == "PutMetricData":
        # No resource-level permissions; the namespace is the condition that scopes it.
        namespace = str(params.get("Namespace", ""))
        return [Access("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", namespace),))]
    if service == "batch" and operation in ("SubmitJob", "DescribeJobs", "TerminateJob"):
        resource = "*"
        if operation == "SubmitJob":
            resource = str(params.get("jobDefinition", "*"))
        return [Access(f"batch:{operation}", resource)]
    raise UnmappedCall(f"{service}:{operation} is not in mlops_local/iam.py's table")


def _conditions_hold(statement: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """The StringEquals/StringLike conditions a statement sets, on the request's keys."""
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            values = [str(v) for v in as_list(wanted)]
            given = context.get(key)
            if operator == "StringEquals" and given not in values:
                return False
            if operator == "StringLike" and not any(
                fnmatch.fnmatchcase(given or "", v) for v in values
            ):
                return False
            if operator not in ("StringEquals", "StringLike"):
                return False  # a condition this check cannot evaluate: not granted
    return True


def granting(documents: Sequence[Mapping[str, Any]], access: Access) -> tuple[int, int] | None:
    """(document, statement) indexes of the first Allow that grants `access`, else None.
    An explicit Deny matching it wins (returns None)."""
    context = dict(access.context)
    found = None
    for d, doc in enumerate(documents):
        for s, statement in enumerate(statements(doc)):
            actions = [str(a) for a in as_list(statement.get("Action"))]
            resources = [str(r) for r in as_list(statement.get("Resource"))] or ["*"]
            if not any(fnmatch.fnmatchcase(access.action.lower(), a.lower()) for a in actions):
                continue
            if not any(fnmatch.fnmatchcase(access.resource, r) for r in resources):
                continue
            if not _conditions_hold(statement, context):
                continue
            if statement.get("Effect") == "Deny":
                return None
            found = found or (d, s)
    return found


@dataclass
class Report:
    """Per role: what was used, what was denied, what was granted and never used."""

    role: str
    used: set[Access] = field(default_factory=set)
    denied: set[Access] = field(default_factory=set)
    unused: list[str] = field(default_factory=list)  # "Sid: action on resource"

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "used": [f"{a.action} {a.resource}" for a in sorted(self.used)],
            "denied": [f"{a.action} {a.resource}" for a in sorted(self.denied)],
            "granted_never_used": self.unused,
        }


def report(role: str, documents: Sequence[Mapping[str, Any]], calls: Iterable[Access]) -> Report:
    out = Report(role)
    hit: set[tuple[int, int, str]] = set()
    for access in calls:
        where = granting(documents, access)
        if where is None:
            out.denied.add(access)
        else:
            out.used.add(access)
            hit.add((*where, access.action.lower()))
    for d, doc in enumerate(documents):
        for s, statement in enumerate(statements(doc)):
            if statement.get("Effect") != "Allow":
                continue
            for action in as_list(statement.get("Action")):
                if not any(
                    (d, s) == (hd, hs) and fnmatch.fnmatchcase(a, str(action).lower())
                    for hd, hs, a in hit
                ):
                    out.unused.append(f"{statement.get('Sid', f'#{s}')}: {action}")
    return out

"""Seed the emulator from an offline plan (`mlops plan --stack local --json PATH`).

The plan is the Pulumi program's resource graph recorded under mocks. Seeding creates what
the jobs touch — every S3 bucket by its physical name, versioned when the plan's
BucketVersioning says Enabled — and the plan's stack outputs become the file the jobs read
through MLOPS_STACK_OUTPUTS. Nothing here imports `infra` or Pulumi: the plan is data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from training_jobs import contract

PLAN_SCHEMA: Final = 1
BUCKET_TYPES: Final = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
VERSIONING_TYPES: Final = frozenset(
    {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
)


class PlanError(Exception):
    """The plan file cannot seed the local platform; the message says why."""


class SeedResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    buckets: dict[str, bool]  # physical name → versioned
    created: tuple[str, ...]
    outputs: dict[str, Any]


def read_plan(path: Path) -> dict[str, Any]:
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PlanError(
            f"--plan: {str(path)!r} does not exist; write it with "
            "`mlops plan --stack local --json PATH`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"--plan: {str(path)!r} is not JSON ({exc.msg} at line {exc.lineno})"
        ) from exc
    if not isinstance(plan, dict):
        raise PlanError(f"--plan: {str(path)!r} holds a {type(plan).__name__}, not a plan object")
    return plan


def buckets_in(plan: Mapping[str, Any]) -> dict[str, bool]:
    """Physical bucket name → whether the plan enables versioning on it."""
    if plan.get("schema") != PLAN_SCHEMA:
        raise PlanError(
            f"plan schema {plan.get('schema')!r} is not supported (expected {PLAN_SCHEMA}); "
            "regenerate it with this version's `mlops plan`"
        )
    resources = plan.get("resources")
    if not isinstance(resources, list):
        raise PlanError("plan has no 'resources' list")
    by_urn: dict[str, str] = {}
    buckets: dict[str, bool] = {}
    for resource in resources:
        if resource.get("type") in BUCKET_TYPES:
            name = (resource.get("inputs") or {}).get("bucket")
            if not isinstance(name, str) or not name:
                raise PlanError(
                    f"bucket resource {resource.get('name')!r} has no physical name "
                    "(inputs.bucket); the local stack must name its buckets"
                )
            buckets[name] = False
            if resource.get("urn"):
                by_urn[str(resource["urn"])] = name
    for resource in resources:
        if resource.get("type") not in VERSIONING_TYPES:
            continue
        inputs = resource.get("inputs") or {}
        target = inputs.get("bucket")
        if target not in buckets:  # an id the recorder could not resolve: follow the edge
            target = next(
                (by_urn[d] for d in resource.get("dependencies", []) if d in by_urn), None
            )
        if target is None:
            raise PlanError(f"versioning resource {resource.get('name')!r} names no planned bucket")
        status = (inputs.get("versioningConfiguration") or {}).get("status")
        buckets[str(target)] = status == "Enabled"
    return buckets


def stack_outputs(plan: Mapping[str, Any], buckets: Mapping[str, bool]) -> dict[str, Any]:
    """The plan's outputs, checked: every data bucket the jobs read is one the plan creates."""
    outputs = dict(plan.get("outputs") or {})
    missing = [o for o in contract.OUTPUT_BUCKETS.values() if not outputs.get(o)]
    if missing:
        raise PlanError(f"plan outputs lack {', '.join(missing)}")
    unknown = [
        f"{o}={outputs[o]}" for o in contract.OUTPUT_BUCKETS.values() if outputs[o] not in buckets
    ]
    if unknown:
        raise PlanError(f"plan outputs name buckets the plan does not create: {', '.join(unknown)}")
    return outputs


def seed(plan: Mapping[str, Any], s3: Any, region: str = "us-east-1") -> SeedResult:
    """Create the plan's buckets (idempotently) and return the stack outputs to write."""
    buckets = buckets_in(plan)
    outputs = stack_outputs(plan, buckets)
    created: list[str] = []
    for name, versioned in sorted(buckets.items()):
        if not _exists(s3, name):
            kwargs: dict[str, Any] = {"Bucket": name}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**kwargs)
            created.append(name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return SeedResult(buckets=dict(buckets), created=tuple(created), outputs=outputs)


def _exists(s3: Any, name: str) -> bool:
    # CreateBucket on a bucket we own succeeds silently in us-east-1, so ask first.
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def write_outputs(outputs: Mapping[str, Any], path: Path) -> Path:
    """The `pulumi stack output --json` equivalent the jobs read via MLOPS_STACK_OUTPUTS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(outputs), indent=2, sort_keys=True) + "\n")
    return path

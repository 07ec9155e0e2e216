"""One deleter per resource kind: empty it, unlink it, then delete it.

Each takes the resource and a `Context` and returns a one-line detail for the receipt, or
raises. A deleter only ever changes the resource it was given and resources the same sweep
selected: a rule in someone else's security group or a policy attached to someone else's
role is reported, never removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlops.sweep.discover import ClientFactory
from mlops.sweep.select import Found

KMS_PENDING_WINDOW_DAYS = 7  # the AWS minimum: the key can still be rescued for a week


class SweepError(Exception):
    """A resource cannot be deleted as things stand; the message says why."""


@dataclass
class Context:
    clients: ClientFactory
    selected: frozenset[str] = frozenset()  # ARNs and names this sweep may change
    # Batch and EKS change state asynchronously; polls are bounded by count, not time.
    poll_attempts: int = 60
    poll_interval_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def wait_for(self, what: str, done: Callable[[], bool]) -> None:
        for attempt in range(self.poll_attempts):
            if done():
                return
            if attempt + 1 < self.poll_attempts:
                self.sleep(self.poll_interval_s)
        raise SweepError(f"gave up waiting for {what} after {self.poll_attempts} checks")


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- S3 ---------------------------------------------------------------------------------


def delete_bucket(resource: Found, ctx: Context) -> str:
    s3 = ctx.clients("s3")
    bucket = resource.name
    removed = 0
    # Every version and every delete marker: a versioned bucket is not empty until both go.
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for chunk in _chunks(keys, 1000):
            response = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise SweepError(f"could not delete {first['Key']}: {first['Message']}")
            removed += len(chunk)
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=bucket)
    return f"deleted {removed} object version(s) and delete marker(s), then the bucket"


# --- ECR --------------------------------------------------------------------------------


def _image_ids(ecr: Any, repository: str) -> list[dict[str, str]]:
    return [
        image
        for page in ecr.get_paginator("list_images").paginate(repositoryName=repository)
        for image in page["imageIds"]
    ]


def delete_repository(resource: Found, ctx: Context) -> str:
    ecr = ctx.clients("ecr")
    listed = _image_ids(ecr, resource.name)
    total = len(listed)
    # Deleting a digest removes every tag on it in AWS; some emulators drop one tag at a
    # time. Delete, list again, repeat (bounded) until the repository reports no images.
    for _ in range(ctx.poll_attempts):
        if not listed:
            break
        digests = sorted({i["imageDigest"] for i in listed if "imageDigest" in i})
        for chunk in _chunks([{"imageDigest": d} for d in digests], 100):
            response = ecr.batch_delete_image(repositoryName=resource.name, imageIds=chunk)
            for failure in response.get("failures", []):
                if failure.get("failureCode") != "ImageNotFound":
                    raise SweepError(
                        f"image {failure.get('imageId')}: {failure.get('failureReason')}"
                    )
        listed = _image_ids(ecr, resource.name)
    else:
        raise SweepError(f"{len(listed)} image(s) still listed after {ctx.poll_attempts} rounds")
    ecr.delete_repository(repositoryName=resource.name)
    return f"deleted {total} image(s), then the repository"


def delete_image_tag(resource: Found, ctx: Context) -> str:
    """Remove one tag a per-PR stack pushed; the image goes with it unless another tag (a
    long-lived stack's, for the same bytes) still holds it."""
    repository, _, tag = resource.name.rpartition(":")
    response = ctx.clients("ecr").batch_delete_image(
        repositoryName=repository, imageIds=[{"imageTag": tag}]
    )
    for failure in response.get("failures", []):
        if failure.get("failureCode") != "ImageNotFound":
            raise SweepError(f"image {tag}: {failure.get('failureReason')}")
    return f"deleted image tag {tag} from {repository}"


# --- CloudWatch Logs, alarms, SNS, Step Functions, EventBridge --------------------------


def delete_log_group(resource: Found, ctx: Context) -> str:
    ctx.clients("logs").delete_log_group(logGroupName=resource.name)
    return "deleted"


def delete_alarm(resource: Found, ctx: Context) -> str:
    ctx.clients("cloudwatch").delete_alarms(AlarmNames=[resource.name])
    return "deleted"


def delete_topic(resource: Found, ctx: Context) -> str:
    ctx.clients("sns").delete_topic(TopicArn=resource.arn)
    return "deleted"


def delete_state_machine(resource: Found, ctx: Context) -> str:
    ctx.clients("stepfunctions").delete_state_machine(stateMachineArn=resource.arn)
    return "deleted"


def delete_rule(resource: Found, ctx: Context) -> str:
    events = ctx.clients("events")
    targets = events.list_targets_by_rule(Rule=resource.name).get("Targets", [])
    if targets:
        events.remove_targets(Rule=resource.name, Ids=[t["Id"] for t in targets])
    events.delete_rule(Name=resource.name)
    return f"removed {len(targets)} target(s), then the rule"


# --- Batch ------------------------------------------------------------------------------


def _queue(batch: Any, name: str) -> dict[str, Any] | None:
    queues = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    live = [q for q in queues if q.get("status") != "DELETED"]
    return live[0] if live else None


def delete_job_queue(resource: Found, ctx: Context) -> str:
    batch = ctx.clients("batch")
    queue = _queue(batch, resource.name)
    if queue is None:
        return "already gone"
    if queue.get("state") != "DISABLED":
        batch.update_job_queue(jobQueue=resource.name, state="DISABLED")

    def disabled() -> bool:
        q = _queue(batch, resource.name)
        return q is None or (q.get("state") == "DISABLED" and q.get("status") != "UPDATING")

    ctx.wait_for(f"job queue {resource.name} to be disabled", disabled)
    batch.delete_job_queue(jobQueue=resource.name)
    # Deletion is asynchronous; a compute environment cannot go while a queue still names it.
    ctx.wait_for(
        f"job queue {resource.name} to be deleted", lambda: _queue(batch, resource.name) is None
    )
    return "disabled, then deleted"


def _environment(batch: Any, name: str) -> dict[str, Any] | None:
    envs = batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    live = [e for e in envs if e.get("status") != "DELETED"]
    return live[0] if live else None


def delete_compute_environment(resource: Found, ctx: Context) -> str:
    batch = ctx.clients("batch")
    env = _environment(batch, resource.name)
    if env is None:
        return "already gone"
    if env.get("state") != "DISABLED":
        batch.update_compute_environment(computeEnvironment=resource.name, state="DISABLED")

    def disabled() -> bool:
        e = _environment(batch, resource.name)
        return e is None or (
            e.get("state", "DISABLED") == "DISABLED" and e.get("status") == "VALID"
        )

    ctx.wait_for(f"compute environment {resource.name} to be disabled", disabled)
    batch.delete_compute_environment(computeEnvironment=resource.name)
    ctx.wait_for(
        f"compute environment {resource.name} to be deleted",
        lambda: _environment(batch, resource.name) is None,
    )
    return "disabled, then deleted"


# --- EKS --------------------------------------------------------------------------------


def delete_cluster(resource: Found, ctx: Context) -> str:
    eks = ctx.clients("eks")
    groups = eks.list_nodegroups(clusterName=resource.name).get("nodegroups", [])
    for group in groups:
        eks.delete_nodegroup(clusterName=resource.name, nodegroupName=group)
    ctx.wait_for(
        f"node groups of {resource.name} to be deleted",
        lambda: not eks.list_nodegroups(clusterName=resource.name).get("nodegroups"),
    )
    eks.delete_cluster(name=resource.name)
    return f"deleted {len(groups)} node group(s), then the cluster"


# --- IAM --------------------------------------------------------------------------------


def delete_role(resource: Found, ctx: Context) -> str:
    iam = ctx.clients("iam")
    role = resource.name
    profiles = iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
    for profile in profiles:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=role
        )
    attached = [
        p["PolicyArn"]
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
        for p in page["AttachedPolicies"]
    ]
    for arn in attached:
        iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    inline = [
        name
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role)
        for name in page["PolicyNames"]
    ]
    for name in inline:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    iam.delete_role(RoleName=role)
    return (
        f"unlinked {len(profiles)} instance profile(s), detached {len(attached)} managed and "
        f"deleted {len(inline)} inline policy(ies), then the role"
    )


def delete_instance_profile(resource: Found, ctx: Context) -> str:
    iam = ctx.clients("iam")
    profile = iam.get_instance_profile(InstanceProfileName=resource.name)["InstanceProfile"]
    roles = [r["RoleName"] for r in profile.get("Roles", [])]
    for role in roles:
        iam.remove_role_from_instance_profile(InstanceProfileName=resource.name, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=resource.name)
    return f"removed {len(roles)} role(s), then the instance profile"


def delete_policy(resource: Found, ctx: Context) -> str:
    iam = ctx.clients("iam")
    entities = iam.list_entities_for_policy(PolicyArn=resource.arn)
    users = [
        *(f"role {r['RoleName']}" for r in entities.get("PolicyRoles", [])),
        *(f"user {u['UserName']}" for u in entities.get("PolicyUsers", [])),
        *(f"group {g['GroupName']}" for g in entities.get("PolicyGroups", [])),
    ]
    if users:
        # Roles this sweep selected were deleted before policies; anything left is not ours.
        raise SweepError(f"still attached to {', '.join(users)}, which this sweep does not own")
    versions = iam.list_policy_versions(PolicyArn=resource.arn)["Versions"]
    for version in versions:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=resource.arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=resource.arn)
    return "deleted"


# --- KMS --------------------------------------------------------------------------------


def delete_key(resource: Found, ctx: Context) -> str:
    response = ctx.clients("kms").schedule_key_deletion(
        KeyId=resource.name, PendingWindowInDays=KMS_PENDING_WINDOW_DAYS
    )
    when = response.get("DeletionDate")
    shown = when.isoformat() if hasattr(when, "isoformat") else str(when)
    return f"deletion scheduled ({KMS_PENDING_WINDOW_DAYS}-day window, on {shown})"


# --- EC2 security groups ----------------------------------------------------------------


def _referencing(permissions: Iterable[dict[str, Any]], group_id: str) -> list[dict[str, Any]]:
    """The permissions that name `group_id`, trimmed to those group pairs (for revoking)."""
    out = []
    for perm in permissions:
        pairs = [p for p in perm.get("UserIdGroupPairs", []) if p.get("GroupId") == group_id]
        if pairs:
            keep = {k: v for k, v in perm.items() if k in ("IpProtocol", "FromPort", "ToPort")}
            out.append({**keep, "UserIdGroupPairs": [{"GroupId": group_id}]})
    return out


def delete_security_group(resource: Found, ctx: Context) -> str:
    ec2 = ctx.clients("ec2")
    group_id = resource.name
    groups = [
        g
        for page in ec2.get_paginator("describe_security_groups").paginate()
        for g in page["SecurityGroups"]
    ]
    revoked = 0
    for group in groups:
        other = group["GroupId"]
        ingress = _referencing(group.get("IpPermissions", []), group_id)
        egress = _referencing(group.get("IpPermissionsEgress", []), group_id)
        if not ingress and not egress:
            continue
        if other != group_id and not ({other, group.get("GroupArn", "")} & ctx.selected):
            raise SweepError(
                f"referenced by {other} ({group.get('GroupName')}), which this sweep does not "
                "own: remove that rule, then sweep again"
            )
        if ingress:
            ec2.revoke_security_group_ingress(GroupId=other, IpPermissions=ingress)
        if egress:
            ec2.revoke_security_group_egress(GroupId=other, IpPermissions=egress)
        revoked += len(ingress) + len(egress)
    # Its own rules naming other groups would block their deletion in turn.
    own = next((g for g in groups if g["GroupId"] == group_id), None)
    if own is not None:
        for field_name, revoke in (
            ("IpPermissions", ec2.revoke_security_group_ingress),
            ("IpPermissionsEgress", ec2.revoke_security_group_egress),
        ):
            targets = {
                p["GroupId"]
                for perm in own.get(field_name, [])
                for p in perm.get("UserIdGroupPairs", [])
                if p.get("GroupId") not in (None, group_id)
            }
            for target in sorted(targets):
                perms = _referencing(own.get(field_name, []), target)
                revoke(GroupId=group_id, IpPermissions=perms)
                revoked += len(perms)
    ec2.delete_security_group(GroupId=group_id)
    return f"revoked {revoked} rule(s) referencing groups, then the group"


DELETERS: dict[str, Callable[[Found, Context], str]] = {
    "s3:bucket": delete_bucket,
    "ecr:image-tag": delete_image_tag,
    "ecr:repository": delete_repository,
    "logs:log-group": delete_log_group,
    "cloudwatch:alarm": delete_alarm,
    "sns:topic": delete_topic,
    "states:stateMachine": delete_state_machine,
    "events:rule": delete_rule,
    "batch:job-queue": delete_job_queue,
    "batch:compute-environment": delete_compute_environment,
    "eks:cluster": delete_cluster,
    "iam:role": delete_role,
    "iam:instance-profile": delete_instance_profile,
    "iam:policy": delete_policy,
    "kms:key": delete_key,
    "ec2:security-group": delete_security_group,
}

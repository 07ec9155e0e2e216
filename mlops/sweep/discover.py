"""Find tagged resources: the resource-groups tagging API plus per-service listings.

The tagging API is the broad net, but it misses whole services (in moto 5.2: ECR, EKS, IAM,
Batch, EventBridge rules; in AWS, IAM is global and never appears in a regional query), so
those are listed service by service and their tags read one call each. Results are merged
by ARN; KMS keys already pending deletion are dropped (they are on their way out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops.sweep.select import EPHEMERAL, Found, Selector, is_candidate, kind_and_name
from training_jobs.contract import (
    EPHEMERAL_STACK_PREFIX,
    TAG_ENVIRONMENT,
    TAG_EXPIRES_AT,
    TAG_STACK,
    image_tag_prefix,
)

ClientFactory = Callable[[str], Any]


def _pairs(
    items: list[dict[str, str]] | None, key: str = "Key", value: str = "Value"
) -> dict[str, str]:
    return {item[key]: item[value] for item in items or []}


def _tag_filters(selector: Selector) -> list[list[dict[str, Any]]]:
    """One query per filter set; for --expired the union of two (ephemeral, or has expiry)."""
    if selector.stack is not None:
        return [[{"Key": TAG_STACK, "Values": [selector.stack]}]]
    return [[{"Key": TAG_ENVIRONMENT, "Values": [EPHEMERAL]}], [{"Key": TAG_EXPIRES_AT}]]


def from_tagging_api(clients: ClientFactory, selector: Selector) -> Iterator[Found]:
    tagging = clients("resourcegroupstaggingapi")
    for filters in _tag_filters(selector):
        for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
            for mapping in page["ResourceTagMappingList"]:
                arn = mapping["ResourceARN"]
                kind, name = kind_and_name(arn)
                yield Found(kind, name, arn, _pairs(mapping.get("Tags")))


def ecr_repositories(clients: ClientFactory) -> Iterator[Found]:
    ecr = clients("ecr")
    for page in ecr.get_paginator("describe_repositories").paginate():
        for repo in page["repositories"]:
            arn = repo["repositoryArn"]
            tags = ecr.list_tags_for_resource(resourceArn=arn).get("tags")
            yield Found("ecr:repository", repo["repositoryName"], arn, _pairs(tags))


def ecr_stack_images(clients: ClientFactory, selector: Selector) -> Iterator[Found]:
    """Images a per-PR stack pushed into its base stack's repositories: an image is not a
    taggable resource, so its ECR tag (`pr-<n>-<build>`, which only a `pr-<n>` stack pushes)
    says whose it is. Only for `--stack`: the repositories' lifecycle policy expires what a
    reaped stack left."""
    if selector.stack is None or not selector.stack.startswith(EPHEMERAL_STACK_PREFIX):
        return
    prefix = image_tag_prefix(selector.stack)
    ecr = clients("ecr")
    for page in ecr.get_paginator("describe_repositories").paginate():
        for repo in page["repositories"]:
            name = repo["repositoryName"]
            for images in ecr.get_paginator("list_images").paginate(
                repositoryName=name, filter={"tagStatus": "TAGGED"}
            ):
                for image in images["imageIds"]:
                    tag = image.get("imageTag", "")
                    if tag.startswith(prefix):
                        yield Found(
                            "ecr:image-tag",
                            f"{name}:{tag}",
                            f"{repo['repositoryArn']}:{tag}",
                            {TAG_STACK: selector.stack, TAG_ENVIRONMENT: EPHEMERAL},
                        )


def eks_clusters(clients: ClientFactory) -> Iterator[Found]:
    eks = clients("eks")
    for page in eks.get_paginator("list_clusters").paginate():
        for name in page["clusters"]:
            cluster = eks.describe_cluster(name=name)["cluster"]
            yield Found("eks:cluster", name, cluster["arn"], dict(cluster.get("tags") or {}))


def iam_roles(clients: ClientFactory) -> Iterator[Found]:
    iam = clients("iam")
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role.get("Path", "/").startswith("/aws-service-role/"):
                continue  # service-linked roles belong to AWS, never to a stack
            tags = iam.list_role_tags(RoleName=role["RoleName"]).get("Tags")
            yield Found("iam:role", role["RoleName"], role["Arn"], _pairs(tags))


def iam_instance_profiles(clients: ClientFactory) -> Iterator[Found]:
    iam = clients("iam")
    for page in iam.get_paginator("list_instance_profiles").paginate():
        for profile in page["InstanceProfiles"]:
            name = profile["InstanceProfileName"]
            # ListInstanceProfiles does not promise tags; GetInstanceProfile does.
            full = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
            yield Found("iam:instance-profile", name, profile["Arn"], _pairs(full.get("Tags")))


def iam_policies(clients: ClientFactory) -> Iterator[Found]:
    iam = clients("iam")
    for page in iam.get_paginator("list_policies").paginate(Scope="Local"):
        for policy in page["Policies"]:
            arn = policy["Arn"]
            tags = iam.list_policy_tags(PolicyArn=arn).get("Tags")
            yield Found("iam:policy", arn, arn, _pairs(tags))


def batch_queues_and_environments(clients: ClientFactory) -> Iterator[Found]:
    batch = clients("batch")
    for page in batch.get_paginator("describe_job_queues").paginate():
        for queue in page["jobQueues"]:
            if queue.get("status") == "DELETED":
                continue
            yield Found(
                "batch:job-queue",
                queue["jobQueueName"],
                queue["jobQueueArn"],
                queue.get("tags") or {},
            )
    for page in batch.get_paginator("describe_compute_environments").paginate():
        for env in page["computeEnvironments"]:
            if env.get("status") == "DELETED":
                continue
            yield Found(
                "batch:compute-environment",
                env["computeEnvironmentName"],
                env["computeEnvironmentArn"],
                env.get("tags") or {},
            )


def event_rules(clients: ClientFactory) -> Iterator[Found]:
    events = clients("events")
    for page in events.get_paginator("list_rules").paginate():
        for rule in page["Rules"]:
            tags = events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags")
            yield Found("events:rule", rule["Name"], rule["Arn"], _pairs(tags))


PER_SERVICE: tuple[Callable[[ClientFactory], Iterator[Found]], ...] = (
    ecr_repositories,
    eks_clusters,
    iam_roles,
    iam_instance_profiles,
    iam_policies,
    batch_queues_and_environments,
    event_rules,
)


def _kms_pending_deletion(clients: ClientFactory, key_id: str) -> bool:
    try:
        meta = clients("kms").describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError:
        return False
    return bool(meta.get("KeyState") == "PendingDeletion")


def discover(clients: ClientFactory, selector: Selector) -> tuple[list[Found], list[str]]:
    """Candidates (see `select.is_candidate`) by ARN, and the listings that failed."""
    found: dict[str, Found] = {}
    errors: list[str] = []
    sources: list[tuple[str, Callable[[], Iterator[Found]]]] = [
        ("tagging API", partial(from_tagging_api, clients, selector)),
        ("ecr_stack_images", partial(ecr_stack_images, clients, selector)),
    ]
    sources += [(f.__name__, partial(f, clients)) for f in PER_SERVICE]
    for label, source in sources:
        try:
            for resource in source():
                if resource.arn in found or not is_candidate(resource.tags, selector):
                    continue
                if resource.kind == "kms:key" and _kms_pending_deletion(clients, resource.name):
                    continue
                found[resource.arn] = resource
        except (ClientError, BotoCoreError) as exc:
            # One service refusing (no permission, not enabled in the region) must not hide
            # what the others found; the receipt says which listing failed.
            errors.append(f"{label}: {exc}")
    return sorted(found.values(), key=lambda r: (r.kind, r.name)), errors

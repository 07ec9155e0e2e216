"""Components under the recording mocks: the security-relevant inputs, by URN."""

from __future__ import annotations

import json
from typing import Any

from mlops.plan import Plan, PlanResource
from training_jobs import contract

BUCKET = "aws:s3/bucket:Bucket"


def _for_bucket(plan: Plan, type_: str, bucket: PlanResource) -> PlanResource:
    """The sub-resource of `type_` configuring `bucket` (matched by physical name)."""
    name = bucket.inputs["bucket"]
    matches = [r for r in plan.of_type(type_) if r.inputs.get("bucket") == name]
    assert len(matches) == 1, f"{bucket.urn}: expected one {type_}, found {len(matches)}"
    return matches[0]


def _data_buckets(plan: Plan) -> list[PlanResource]:
    return [b for b in plan.of_type(BUCKET) if not b.name.endswith("access-logs")]


def _kms_key_arn(plan: Plan) -> str:
    arn = plan.outputs[contract.OUTPUT_KMS_KEY_ARN]
    assert isinstance(arn, str) and arn.startswith("arn:aws:kms:")
    return arn


def test_every_bucket_is_private_versioned_encrypted_and_logged(any_plan: Plan) -> None:
    plan = any_plan
    key_arn = _kms_key_arn(plan)
    buckets = plan.of_type(BUCKET)
    assert len(buckets) == len(contract.DATA_BUCKET_ROLES) + 1  # + the access-log bucket
    for bucket in buckets:
        pab = _for_bucket(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert pab.inputs[flag] is True, f"{bucket.urn}: {flag} is off"
        versioning = _for_bucket(plan, "aws:s3/bucketVersioning:BucketVersioning", bucket)
        status = versioning.inputs["versioningConfiguration"]["status"]
        assert status == "Enabled", f"{bucket.urn}: versioning {status}"
        own = _for_bucket(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", bucket)
        assert own.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced", bucket.urn
        policy = json.loads(
            _for_bucket(plan, "aws:s3/bucketPolicy:BucketPolicy", bucket).inputs["policy"]
        )
        _assert_tls_only(policy, bucket)
        rules = _for_bucket(
            plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket
        ).inputs["rules"]
        ids = {r["id"] for r in rules}
        assert {"abort-incomplete-multipart", "expire-noncurrent-versions"} <= ids, bucket.urn
        abort = next(r for r in rules if r["id"] == "abort-incomplete-multipart")
        assert abort["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7, bucket.urn
        for rule in rules:
            assert rule["status"] == "Enabled", f"{bucket.urn}: rule {rule['id']} disabled"

    for bucket in _data_buckets(plan):
        sse = _for_bucket(
            plan,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            bucket,
        )
        default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn}, bucket.urn
        assert sse.inputs["rules"][0]["bucketKeyEnabled"] is True, bucket.urn
        logging = _for_bucket(plan, "aws:s3/bucketLogging:BucketLogging", bucket)
        log_bucket = next(b for b in plan.of_type(BUCKET) if b.name.endswith("access-logs"))
        assert logging.inputs["targetBucket"] == log_bucket.inputs["bucket"], bucket.urn


def test_access_log_bucket_uses_sse_s3_because_log_delivery_requires_it(dev_plan: Plan) -> None:
    log_bucket = next(b for b in dev_plan.of_type(BUCKET) if b.name.endswith("access-logs"))
    sse = _for_bucket(
        dev_plan,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        log_bucket,
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "AES256"
    }
    policy = json.loads(
        _for_bucket(dev_plan, "aws:s3/bucketPolicy:BucketPolicy", log_bucket).inputs["policy"]
    )
    delivery = next(s for s in policy["Statement"] if s["Sid"] == "S3ServerAccessLogsDelivery")
    sources = delivery["Condition"]["ArnLike"]["aws:SourceArn"]
    assert sorted(sources) == sorted(
        f"arn:aws:s3:::{b.inputs['bucket']}" for b in _data_buckets(dev_plan)
    )


def _assert_tls_only(policy: dict[str, Any], bucket: PlanResource) -> None:
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny, f"{bucket.urn}: no Deny statement"
    statement = deny[0]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, bucket.urn
    arn = f"arn:aws:s3:::{bucket.inputs['bucket']}"
    assert sorted(statement["Resource"]) == [arn, f"{arn}/*"], bucket.urn
    assert statement["Principal"] == "*" and statement["Action"] == "s3:*", bucket.urn


def test_prod_protects_and_retains_data(prod_plan: Plan) -> None:
    stateful = (
        prod_plan.of_type(BUCKET)
        + prod_plan.of_type("aws:kms/key:Key")
        + prod_plan.of_type("aws:ecr/repository:Repository")
    )
    assert len(stateful) == 9  # 5 buckets, the key, 3 image repositories
    for resource in stateful:
        assert resource.protect, f"{resource.urn} is not protected"
        assert resource.retain_on_delete, f"{resource.urn} is not retained on delete"
    for bucket in prod_plan.of_type(BUCKET):
        assert bucket.inputs["forceDestroy"] is False, bucket.urn


def test_dev_is_not_protected(dev_plan: Plan) -> None:
    assert not any(r.protect for r in dev_plan.resources)


def test_kms_key_rotates_and_admits_cloudwatch_logs(any_plan: Plan) -> None:
    (key,) = any_plan.of_type("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True, key.urn
    assert key.inputs["deletionWindowInDays"] == 30, key.urn
    policy = json.loads(key.inputs["policy"])
    sids = {s["Sid"] for s in policy["Statement"]}
    assert sids == {
        "AccountAdministration", "CloudWatchLogsEncryption", "AlertPublishers", "EventBridgeAlerts"
    }, key.urn  # fmt: skip


def test_ecr_repositories_scan_are_immutable_encrypted_and_expire(any_plan: Plan) -> None:
    key_arn = _kms_key_arn(any_plan)
    repos = any_plan.of_type("aws:ecr/repository:Repository")
    if any_plan.outputs["environment"] == "ephemeral":
        assert not repos, "ephemeral stacks use the base stack's repositories"
        return
    if any_plan.outputs["environment"] == "local":
        # images.registry: the local registry beside the cluster, no ECR.
        assert not repos and any_plan.outputs["jobs_repository_url"].startswith("localhost:")
        return
    assert sorted(r.name.rsplit("-", 1)[-1] for r in repos) == sorted(contract.REPOSITORY_ROLES)
    policies = {
        p.inputs["repository"]: p
        for p in any_plan.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    }
    for repo in repos:
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}, repo.urn
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE", repo.urn
        assert repo.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": key_arn}
        ], repo.urn
        rules = json.loads(policies[repo.inputs["name"]].inputs["policy"])["rules"]
        assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "tagged", "any"]
        # The per-PR stacks' images (pushed into this repository) expire on their own rule,
        # before the keep-last count, so they never push out a long-lived stack's images.
        assert rules[1]["selection"]["tagPrefixList"] == [contract.EPHEMERAL_STACK_PREFIX]
        assert contract.image_tag("pr-7", "ab" * 32).startswith(contract.EPHEMERAL_STACK_PREFIX)
        assert all(r["action"]["type"] == "expire" for r in rules), repo.urn


def test_every_taggable_resource_carries_platform_tags(any_plan: Plan) -> None:
    required = {contract.TAG_STACK, contract.TAG_ENVIRONMENT, contract.TAG_OWNER}
    # (docker-build's `tags` are image references, not resource tags.)
    tagged = [r for r in any_plan.resources if "tags" in r.inputs and r.type.startswith("aws:")]
    assert len(tagged) > 15
    for resource in tagged:
        tags = resource.inputs["tags"]
        assert required <= set(tags), f"{resource.urn}: missing {required - set(tags)}"
        assert tags[contract.TAG_STACK] == any_plan.stack, resource.urn
        assert tags["Name"] == resource.name, resource.urn


TAGGABLE_TYPES = {
    "aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:ecr/repository:Repository",
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip", "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable", "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/securityGroup:SecurityGroup", "aws:cloudwatch/logGroup:LogGroup",
    "aws:iam/role:Role", "aws:ec2/flowLog:FlowLog",
}  # fmt: skip


def test_taggable_types_are_never_declared_without_tags(any_plan: Plan) -> None:
    for resource in any_plan.resources:
        if resource.type in TAGGABLE_TYPES:
            assert "tags" in resource.inputs, f"{resource.urn} has no tags"


def test_network_layout_and_nat_per_az_in_prod(prod_plan: Plan) -> None:
    subnets = prod_plan.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 6
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert {s.inputs["availabilityZone"] for s in subnets} == {
        "us-east-1a", "us-east-1b", "us-east-1c"
    }  # fmt: skip
    assert len(prod_plan.of_type("aws:ec2/natGateway:NatGateway")) == 3
    private_rts = [
        r for r in prod_plan.of_type("aws:ec2/routeTable:RouteTable") if "private" in r.name
    ]
    nat_ids = {r.inputs["routes"][0]["natGatewayId"] for r in private_rts}
    assert len(nat_ids) == 3, "each private route table should use its own AZ's NAT gateway"


def test_network_endpoints_and_flow_logs(dev_plan: Plan) -> None:
    endpoints = {
        e.inputs["serviceName"]: e for e in dev_plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert endpoints["com.amazonaws.us-east-1.s3"].inputs["vpcEndpointType"] == "Gateway"
    for service in ("ecr.api", "ecr.dkr", "sts", "logs"):
        endpoint = endpoints[f"com.amazonaws.us-east-1.{service}"]
        assert endpoint.inputs["privateDnsEnabled"] is True, endpoint.urn
    (flow_log,) = dev_plan.of_type("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["trafficType"] == "ALL"
    (group,) = [
        g
        for g in dev_plan.of_type("aws:cloudwatch/logGroup:LogGroup")
        if g.name.endswith("flow-logs")
    ]
    assert group.inputs["retentionInDays"] == 90 and group.inputs["kmsKeyId"] == _kms_key_arn(
        dev_plan
    )
    (sg,) = [
        g
        for g in dev_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
        if g.name.endswith("endpoints-sg")
    ]
    assert sg.inputs["ingress"][0]["cidrBlocks"] == ["10.40.0.0/16"], "endpoints must not be open"
    (default_sg,) = dev_plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert "ingress" not in default_sg.inputs and "egress" not in default_sg.inputs


def test_local_stack_force_destroys_and_has_no_nat(local_plan: Plan) -> None:
    for bucket in local_plan.of_type(BUCKET):
        assert bucket.inputs["forceDestroy"] is True, bucket.urn
    assert not local_plan.of_type("aws:ec2/natGateway:NatGateway")

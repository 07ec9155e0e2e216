"""A real `moto_server` on loopback for the sweep tests, and a world of tagged resources.

One server per session (start-up costs about two seconds); every test resets it and builds
its own resources, so a test that deletes never leaks into the next.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlops_local.processes import LOOPBACK, WERKZEUG_PORT, ManagedProcess

REGION = "us-east-1"
NOW = "2026-06-01T00:00:00Z"
PAST = "2026-05-31T12:00:00Z"
FUTURE = "2026-06-03T12:00:00Z"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "batch.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "a" * 64,
        },
        "layers": [],
    }
)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    # Port 0: the server binds a port nobody else can take first and prints it.
    argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with ManagedProcess("moto_server", argv, env=env, log_path=log) as server:
        url = f"http://{LOOPBACK}:{server.reported_port(WERKZEUG_PORT, timeout_s=60)}"
        server.wait_healthy(f"{url}/moto-api/", timeout_s=60)
        yield url


@dataclass
class Aws:
    """boto3 clients on the emulator, created once per test."""

    endpoint: str
    _clients: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service, region_name=REGION, endpoint_url=self.endpoint
            )
        return self._clients[service]


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    for name in list(os.environ):
        if name.startswith(("AWS_", "BOTO")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback http
        assert response.status == 200
    return Aws(moto_endpoint)


def tags_for(stack: str, environment: str | None, expires_at: str | None = None) -> dict[str, str]:
    tags = {"mlops:stack": stack, "mlops:owner": "ml-platform"}
    if environment is not None:
        tags["mlops:environment"] = environment
    if expires_at is not None:
        tags["mlops:expires-at"] = expires_at
    return tags


@dataclass
class StackSet:
    """One of everything, made for one (stack, environment), with what each should hold."""

    prefix: str
    tags: dict[str, str]
    bucket: str = ""
    repository: str = ""
    log_group: str = ""
    role: str = ""
    instance_profile: str = ""
    security_groups: tuple[str, str] = ("", "")
    compute_environment: str = ""
    job_queue: str = ""
    kms_key: str = ""
    versions: int = 0  # object versions + delete markers in the bucket


def _pairs(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def build_shared(aws: Aws) -> dict[str, str]:
    """Untagged plumbing every stack uses: a VPC, a subnet, Batch's service role."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    service_role = aws("iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument=TRUST)[
        "Role"
    ]["Arn"]
    return {"vpc": vpc, "subnet": subnet, "service_role": service_role}


def build_stack(aws: Aws, shared: dict[str, str], prefix: str, tags: dict[str, str]) -> StackSet:
    s = StackSet(prefix=prefix, tags=tags)
    s3, ecr, logs, iam, ec2, batch, kms = (
        aws(n) for n in ("s3", "ecr", "logs", "iam", "ec2", "batch", "kms")
    )

    s.bucket = f"{prefix}-data-bucket"
    s3.create_bucket(Bucket=s.bucket)
    s3.put_bucket_versioning(Bucket=s.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket=s.bucket, Tagging={"TagSet": _pairs(tags)})
    for body in (b"one", b"two", b"three"):
        s3.put_object(Bucket=s.bucket, Key="datasets/a.csv", Body=body)
    s3.put_object(Bucket=s.bucket, Key="datasets/b.csv", Body=b"b")
    s3.delete_object(Bucket=s.bucket, Key="datasets/b.csv")  # leaves a delete marker
    s.versions = 5

    s.repository = f"{prefix}/jobs"
    ecr.create_repository(repositoryName=s.repository, tags=_pairs(tags))
    for tag in ("v1", "v2"):
        manifest = json.loads(MANIFEST)
        manifest["config"]["digest"] = "sha256:" + (tag * 64)[:64].replace("v", "b")
        ecr.put_image(repositoryName=s.repository, imageManifest=json.dumps(manifest), imageTag=tag)

    s.log_group = f"/mlops/{prefix}/jobs"
    logs.create_log_group(logGroupName=s.log_group, tags=tags)

    s.role = f"{prefix}-job-role"
    iam.create_role(RoleName=s.role, AssumeRolePolicyDocument=TRUST, Tags=_pairs(tags))
    iam.put_role_policy(RoleName=s.role, PolicyName="inline-read", PolicyDocument=POLICY)
    managed = iam.create_policy(PolicyName=f"{prefix}-managed", PolicyDocument=POLICY)["Policy"][
        "Arn"
    ]
    iam.attach_role_policy(RoleName=s.role, PolicyArn=managed)
    s.instance_profile = f"{prefix}-profile"
    iam.create_instance_profile(InstanceProfileName=s.instance_profile, Tags=_pairs(tags))
    iam.add_role_to_instance_profile(InstanceProfileName=s.instance_profile, RoleName=s.role)

    spec = [{"ResourceType": "security-group", "Tags": _pairs(tags)}]
    a = ec2.create_security_group(
        GroupName=f"{prefix}-a", Description="a", VpcId=shared["vpc"], TagSpecifications=spec
    )["GroupId"]
    b = ec2.create_security_group(
        GroupName=f"{prefix}-b", Description="b", VpcId=shared["vpc"], TagSpecifications=spec
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=b,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "UserIdGroupPairs": [{"GroupId": a}],
            }
        ],
    )
    s.security_groups = (a, b)

    s.compute_environment = f"{prefix}-spot"
    profile_arn = iam.get_instance_profile(InstanceProfileName=s.instance_profile)[
        "InstanceProfile"
    ]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName=s.compute_environment,
        type="MANAGED",
        serviceRole=shared["service_role"],
        tags=tags,
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 4,
            "desiredvCpus": 0,
            "instanceTypes": ["optimal"],
            "subnets": [shared["subnet"]],
            "securityGroupIds": [a],
            "instanceRole": profile_arn,
        },
    )
    s.job_queue = f"{prefix}-queue"
    batch.create_job_queue(
        jobQueueName=s.job_queue,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
        tags=tags,
    )

    s.kms_key = kms.create_key(Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])[
        "KeyMetadata"
    ]["KeyId"]
    return s


@dataclass
class World:
    shared: dict[str, str]
    pr7: StackSet  # ephemeral, expired at NOW
    pr8: StackSet  # ephemeral, not yet expired at NOW
    dev: StackSet
    prod: StackSet
    pr7_prod: StackSet  # says stack pr-7 but environment prod: must survive everything
    pr7_untagged_env: StackSet  # says stack pr-7, no environment tag: must survive too

    @property
    def decoys(self) -> list[StackSet]:
        return [self.dev, self.prod, self.pr7_prod, self.pr7_untagged_env]


@pytest.fixture
def world(aws: Aws) -> World:
    shared = build_shared(aws)
    return World(
        shared=shared,
        pr7=build_stack(aws, shared, "pr7", tags_for("pr-7", "ephemeral", PAST)),
        pr8=build_stack(aws, shared, "pr8", tags_for("pr-8", "ephemeral", FUTURE)),
        dev=build_stack(aws, shared, "dev", tags_for("dev", "dev")),
        prod=build_stack(aws, shared, "prod", tags_for("prod", "prod")),
        pr7_prod=build_stack(aws, shared, "pr7prod", tags_for("pr-7", "prod", PAST)),
        pr7_untagged_env=build_stack(aws, shared, "pr7noenv", tags_for("pr-7", None, PAST)),
    )


def receipt(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data

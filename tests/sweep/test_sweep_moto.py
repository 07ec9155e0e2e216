"""`mlops sweep` against a real moto_server: what goes, what stays, what the receipt says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from mlops.cli.sweep import sweep_command
from mlops.expiry import parse_utc
from mlops.sweep.delete import Context
from mlops.sweep.run import sweep
from mlops.sweep.select import Selector
from tests.sweep.conftest import MANIFEST, NOW, REGION, Aws, StackSet, World, receipt
from tests.sweep.conftest import POLICY as POLICY_DOC

pytestmark = pytest.mark.e2e


def _gone(call: Any, *codes: str) -> bool:
    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in codes:
            return True
        raise
    return False


def state(aws: Aws, s: StackSet) -> dict[str, Any]:
    """What is left of one stack set; a present resource maps to something it should hold."""
    out: dict[str, Any] = {}
    if not _gone(lambda: aws("s3").head_bucket(Bucket=s.bucket), "404", "NoSuchBucket"):
        page = aws("s3").list_object_versions(Bucket=s.bucket)
        out["bucket"] = len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    if not _gone(
        lambda: aws("ecr").describe_repositories(repositoryNames=[s.repository]),
        "RepositoryNotFoundException",
    ):
        out["repository"] = len(aws("ecr").list_images(repositoryName=s.repository)["imageIds"])
    groups = aws("logs").describe_log_groups(logGroupNamePrefix=s.log_group)["logGroups"]
    if any(g["logGroupName"] == s.log_group for g in groups):
        out["log_group"] = True
    if not _gone(lambda: aws("iam").get_role(RoleName=s.role), "NoSuchEntity"):
        out["role"] = (
            len(aws("iam").list_role_policies(RoleName=s.role)["PolicyNames"]),
            len(aws("iam").list_attached_role_policies(RoleName=s.role)["AttachedPolicies"]),
        )
    if not _gone(
        lambda: aws("iam").get_instance_profile(InstanceProfileName=s.instance_profile),
        "NoSuchEntity",
    ):
        profile = aws("iam").get_instance_profile(InstanceProfileName=s.instance_profile)[
            "InstanceProfile"
        ]
        out["instance_profile"] = [r["RoleName"] for r in profile["Roles"]]
    for label, group_id in zip(("sg_a", "sg_b"), s.security_groups, strict=True):
        if not _gone(
            lambda g=group_id: aws("ec2").describe_security_groups(GroupIds=[g]),
            "InvalidGroup.NotFound",
        ):
            group = aws("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
            out[label] = len(group["IpPermissions"])
    queues = aws("batch").describe_job_queues(jobQueues=[s.job_queue])["jobQueues"]
    if [q for q in queues if q["status"] != "DELETED"]:
        out["job_queue"] = queues[0]["state"]
    envs = aws("batch").describe_compute_environments(computeEnvironments=[s.compute_environment])[
        "computeEnvironments"
    ]
    if [e for e in envs if e["status"] != "DELETED"]:
        out["compute_environment"] = envs[0]["status"]  # moto omits `state`
    out["kms_key"] = aws("kms").describe_key(KeyId=s.kms_key)["KeyMetadata"]["KeyState"]
    return out


INTACT = {
    "bucket": 5,
    "repository": 2,
    "log_group": True,
    "role": (1, 1),
    "sg_a": 0,
    "sg_b": 1,
    "job_queue": "ENABLED",
    "compute_environment": "VALID",
    "kms_key": "Enabled",
}


def intact(s: StackSet) -> dict[str, Any]:
    return INTACT | {"instance_profile": [s.role]}


def test_world_starts_intact(aws: Aws, world: World) -> None:
    # The baseline the other tests compare against: every set holds what it was given.
    for s in [world.pr7, world.pr8, *world.decoys]:
        assert state(aws, s) == intact(s), s.prefix


def test_sweep_stack_deletes_everything_ephemeral_of_that_stack_and_nothing_else(
    aws: Aws, world: World, tmp_path: Path
) -> None:
    selector = Selector(now=parse_utc(NOW), stack="pr-7")
    lines: list[str] = []
    result = sweep(aws, selector, region=REGION, delete=True, report=lines.append)
    result.write(tmp_path / "receipt.json")

    assert state(aws, world.pr7) == {"kms_key": "PendingDeletion"}
    for s in [world.pr8, *world.decoys]:
        assert state(aws, s) == intact(s), s.prefix

    data = receipt(tmp_path / "receipt.json")
    assert data["mode"] == "delete"
    assert data["failed"] == [] and data["remaining"] == [] and data["still_billing"] == []
    deleted = {(d["kind"], d["name"]) for d in data["deleted"]}
    a, b = world.pr7.security_groups
    assert deleted == {
        ("s3:bucket", world.pr7.bucket),
        ("ecr:repository", world.pr7.repository),
        ("logs:log-group", world.pr7.log_group),
        ("iam:role", world.pr7.role),
        ("iam:instance-profile", world.pr7.instance_profile),
        ("ec2:security-group", a),
        ("ec2:security-group", b),
        ("batch:job-queue", world.pr7.job_queue),
        ("batch:compute-environment", world.pr7.compute_environment),
        ("kms:key", world.pr7.kms_key),
    }
    bucket = next(d for d in data["deleted"] if d["kind"] == "s3:bucket")
    assert bucket["detail"].startswith("deleted 5 object version(s)")
    # The decoys that claim stack pr-7 were seen and kept, with the reason.
    kept = {f["name"]: f["reason"] for f in data["found"] if not f["selected"]}
    assert kept[world.pr7_prod.bucket].startswith("environment 'prod'")
    assert kept[world.pr7_untagged_env.role].startswith("no mlops:environment tag")
    assert not any(f["name"] in {world.dev.bucket, world.pr8.bucket} for f in data["found"])
    # Dependency order held: queue before its compute environment, roles before SGs.
    order = [d["kind"] for d in data["deleted"]]
    assert order.index("batch:job-queue") < order.index("batch:compute-environment")
    assert order.index("iam:role") < order.index("ec2:security-group")
    assert order[-2:] == ["ec2:security-group", "ec2:security-group"]


def test_dry_run_deletes_nothing_and_reports_what_would_go(aws: Aws, world: World) -> None:
    selector = Selector(now=parse_utc(NOW), stack="pr-7")
    result = sweep(aws, selector, region=REGION, delete=False)
    for s in [world.pr7, world.pr8, *world.decoys]:
        assert state(aws, s) == intact(s), s.prefix
    assert result.deleted == [] and result.failed == []
    assert len(result.remaining) == 10  # nine kinds, two of them security groups
    billing = {r["kind"] for r in result.still_billing}
    assert billing == {
        "s3:bucket",
        "ecr:repository",
        "logs:log-group",
        "batch:compute-environment",
        "kms:key",
    }


def test_cli_expired_only_touches_expired_ephemeral_resources(
    aws: Aws, world: World, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "receipt.json"
    run = CliRunner().invoke(
        sweep_command, ["--expired", "--delete", "--now", NOW, "--receipt", str(path)]
    )
    assert run.exit_code == 0, run.output
    assert state(aws, world.pr7) == {"kms_key": "PendingDeletion"}
    assert state(aws, world.pr8) == intact(world.pr8)
    for s in world.decoys:
        assert state(aws, s) == intact(s), s.prefix
    data = receipt(path)
    assert data["selector"] == {"stack": None, "expired": True, "now": NOW}
    assert {d["arn"] for d in data["deleted"]} >= {f"arn:aws:s3:::{world.pr7.bucket}"}
    reasons = {f["name"]: f["reason"] for f in data["found"]}
    assert reasons[world.pr8.bucket] == "expires at 2026-06-03T12:00:00Z, not yet"
    assert "found 40, selected 10, deleted 10, failed 0, remaining 0" in run.output


def test_cli_dry_run_is_the_default(aws: Aws, world: World, tmp_path: Path) -> None:
    path = tmp_path / "receipt.json"
    run = CliRunner().invoke(sweep_command, ["--stack", "pr-7", "--receipt", str(path)])
    assert run.exit_code == 0, run.output
    assert "dry run" in run.output
    assert state(aws, world.pr7) == intact(world.pr7)
    assert receipt(path)["mode"] == "dry-run"


def test_cli_exits_non_zero_when_an_ephemeral_resource_remains(
    aws: Aws, world: World, tmp_path: Path
) -> None:
    # A dev security group allows traffic from a pr-7 group: the sweep must not edit the dev
    # group, so the pr-7 group stays, is reported, and the exit status says so.
    a, _ = world.pr7.security_groups
    dev_a, _ = world.dev.security_groups
    aws("ec2").authorize_security_group_ingress(
        GroupId=dev_a,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "UserIdGroupPairs": [{"GroupId": a}],
            }
        ],
    )
    path = tmp_path / "receipt.json"
    run = CliRunner().invoke(
        sweep_command, ["--stack", "pr-7", "--delete", "--now", NOW, "--receipt", str(path)]
    )
    assert run.exit_code == 1, run.output
    data = receipt(path)
    assert [(f["name"], f["error"].split(" (")[0]) for f in data["failed"]] == [
        (a, f"referenced by {dev_a}")
    ]
    assert [r["name"] for r in data["remaining"]] == [a]
    assert data["still_billing"] == []  # a security group costs nothing; it still blocks exit 0
    assert state(aws, world.dev)["sg_a"] == 1  # the dev rule is untouched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --stack pr-N or --expired"),
        (["--stack", "pr-7", "--expired"], "give exactly one of --stack pr-N or --expired"),
        (["--stack", "prod"], "--stack 'prod': sweeps only touch ephemeral stacks"),
        (["--expired", "--now", "2026-06-01T00:00:00"], "has no timezone"),
        (["--expired", "--now", "yesterday"], "is not ISO 8601"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], message: str) -> None:
    run = CliRunner().invoke(sweep_command, args)
    assert run.exit_code == 2
    assert message in run.output


def test_batch_waits_are_bounded_by_count(aws: Aws, world: World) -> None:
    # moto deletes Batch objects at once; a queue that never reaches DISABLED must not hang.
    from mlops.sweep.delete import SweepError, delete_job_queue
    from mlops.sweep.select import Found

    calls: list[float] = []
    ctx = Context(aws, poll_attempts=3, poll_interval_s=0.0, sleep=calls.append)
    ctx.wait_for("nothing", lambda: True)
    assert calls == []
    with pytest.raises(SweepError, match="gave up waiting for never after 3 checks"):
        ctx.wait_for("never", lambda: False)
    assert calls == [0.0, 0.0]
    found = Found("batch:job-queue", world.pr7.job_queue, "arn")
    assert delete_job_queue(found, ctx) == "disabled, then deleted"
    assert "job_queue" not in state(aws, world.pr7)


def test_the_other_kinds_go_too(aws: Aws, world: World) -> None:
    # The pipeline side of a PR stack: an EventBridge rule with a target, a state machine,
    # an alert topic, an alarm, a customer-managed policy, and (for completeness) an EKS
    # cluster with a node group. Each has its own deleter; each must leave nothing.
    tags = world.pr7.tags
    pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    role_arn = aws("iam").get_role(RoleName=world.pr7.role)["Role"]["Arn"]
    machine = aws("stepfunctions").create_state_machine(
        name="pr7-retrain",
        definition='{"StartAt": "a", "States": {"a": {"Type": "Pass", "End": true}}}',
        roleArn=role_arn,
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )["stateMachineArn"]
    aws("events").put_rule(Name="pr7-drift", ScheduleExpression="rate(1 day)", Tags=pairs)
    aws("events").put_targets(
        Rule="pr7-drift", Targets=[{"Id": "retrain", "Arn": machine, "RoleArn": role_arn}]
    )
    topic = aws("sns").create_topic(Name="pr7-alerts", Tags=pairs)["TopicArn"]
    aws("cloudwatch").put_metric_alarm(
        AlarmName="pr7-drift",
        MetricName="MaxDriftScore",
        Namespace="MLOps/Drift",
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0.2,
        ComparisonOperator="GreaterThanThreshold",
        Tags=pairs,
    )
    policy = aws("iam").create_policy(
        PolicyName="pr7-tagged", PolicyDocument=POLICY_DOC, Tags=pairs
    )["Policy"]["Arn"]
    aws("eks").create_cluster(
        name="pr7-cluster",
        roleArn=role_arn,
        resourcesVpcConfig={"subnetIds": [world.shared["subnet"]]},
        tags=tags,
    )
    aws("eks").create_nodegroup(
        clusterName="pr7-cluster",
        nodegroupName="system",
        nodeRole=role_arn,
        subnets=[world.shared["subnet"]],
    )
    # A dev decoy of one of them.
    aws("sns").create_topic(
        Name="dev-alerts", Tags=[{"Key": k, "Value": v} for k, v in world.dev.tags.items()]
    )

    result = sweep(aws, Selector(now=parse_utc(NOW), stack="pr-7"), region=REGION, delete=True)
    assert result.failed == [] and result.remaining == []
    deleted = {d["kind"] for d in result.deleted}
    assert {
        "states:stateMachine",
        "events:rule",
        "sns:topic",
        "cloudwatch:alarm",
        "iam:policy",
        "eks:cluster",
    } <= deleted
    assert aws("stepfunctions").list_state_machines()["stateMachines"] == []
    assert aws("events").list_rules()["Rules"] == []
    assert [t["TopicArn"].rsplit(":", 1)[-1] for t in aws("sns").list_topics()["Topics"]] == [
        "dev-alerts"
    ]
    assert aws("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert aws("eks").list_clusters()["clusters"] == []
    assert policy not in {p["Arn"] for p in aws("iam").list_policies(Scope="Local")["Policies"]}
    assert topic not in {t["TopicArn"] for t in aws("sns").list_topics()["Topics"]}


def _push(aws: Aws, repository: str, config_digit: str, *tags: str) -> None:
    manifest = json.loads(MANIFEST)
    manifest["config"]["digest"] = "sha256:" + config_digit * 64
    for tag in tags:
        aws("ecr").put_image(
            repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
        )


def _tags(aws: Aws, repository: str) -> set[str]:
    images = aws("ecr").list_images(repositoryName=repository, filter={"tagStatus": "TAGGED"})
    return {i["imageTag"] for i in images["imageIds"]}


def test_sweep_removes_the_images_a_pr_stack_pushed_into_its_base_stacks_repository(
    aws: Aws, world: World, tmp_path: Path
) -> None:
    repo = world.dev.repository  # the base stack's: tagged environment dev
    _push(aws, repo, "1", "pr-7-0123456789abcdef")
    _push(aws, repo, "2", "pr-70-0123456789abcdef")  # another PR whose number starts alike
    # The same bytes pushed by dev and by pr-7: only pr-7's tag may go.
    _push(aws, repo, "3", "dev-fedcba9876543210", "pr-7-fedcba9876543210")
    before = _tags(aws, repo)

    result = sweep(aws, Selector(now=parse_utc(NOW), stack="pr-7"), region=REGION, delete=True)

    assert _tags(aws, repo) == before - {"pr-7-0123456789abcdef", "pr-7-fedcba9876543210"}
    deleted = {(d["kind"], d["name"]) for d in result.deleted}
    assert ("ecr:image-tag", f"{repo}:pr-7-0123456789abcdef") in deleted
    assert ("ecr:repository", repo) not in deleted
    assert not [r for r in result.remaining if r["kind"] == "ecr:image-tag"]

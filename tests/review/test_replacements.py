"""The replace-forcing table covers every type a shipped or upcoming stack declares."""

from __future__ import annotations

import pytest

from mlops.plan import Plan
from mlops.review.replacements import REPLACE_ON, needs_entry, path_matches, replacing_paths
from tests.conftest import SHIPPED_STACKS
from tests.review.conftest import plan_for

# Types the serving/tracking/monitoring work declares; kept here so the table is ready first.
UPCOMING = (
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:eks/addon:Addon",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:rds/instance:Instance",
    "aws:rds/subnetGroup:SubnetGroup",
    "aws:rds/parameterGroup:ParameterGroup",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:cloudwatch/dashboard:Dashboard",
    "aws:budgets/budget:Budget",
    "aws:sns/topic:Topic",
    "aws:sns/topicSubscription:TopicSubscription",
    "pulumi:providers:kubernetes",
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:ServiceAccount",
    "kubernetes:core/v1:Service",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:core/v1:Secret",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "kubernetes:policy/v1:PodDisruptionBudget",
    "kubernetes:helm.sh/v3:Release",
    "kubernetes:apiextensions.k8s.io:CustomResource",
    "random:index/randomPassword:RandomPassword",
)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_type_in_a_shipped_plan_has_an_entry(stack: str) -> None:
    plan: Plan = plan_for(stack)
    missing = sorted(
        {r.type for r in plan.resources if needs_entry(r.type, r.custom)} - set(REPLACE_ON)
    )
    assert not missing, (
        f"{stack}: add these types to mlops/review/replacements.py REPLACE_ON "
        f"(their replace-forcing properties): {missing}"
    )


def test_upcoming_types_have_entries() -> None:
    assert sorted(set(UPCOMING) - set(REPLACE_ON)) == []


def test_components_and_the_stack_need_no_entry() -> None:
    assert not needs_entry("mlops:datalake:DataLake", custom=False)
    assert not needs_entry("pulumi:pulumi:Stack", custom=True)
    assert needs_entry("aws:s3/bucket:Bucket", custom=True)


@pytest.mark.parametrize(
    ("changed", "rule", "expected"),
    [
        ("bucket", "bucket", True),
        ("vpcConfig.subnetIds[1]", "vpcConfig.subnetIds", True),
        ("vpcConfig.subnetIdsExtra", "vpcConfig.subnetIds", False),
        ("namePrefix", "name", False),
        ("metadata.name", "metadata", True),
    ],
)
def test_path_matching(changed: str, rule: str, expected: bool) -> None:
    assert path_matches(changed, rule) is expected


@pytest.mark.parametrize(
    ("type_", "changed", "forcing"),
    [
        ("aws:s3/bucket:Bucket", ["bucket", "tags.Name"], ["bucket"]),
        ("aws:s3/bucket:Bucket", ["forceDestroy"], []),
        ("aws:kms/key:Key", ["customerMasterKeySpec"], ["customerMasterKeySpec"]),
        ("aws:kms/key:Key", ["enableKeyRotation"], []),
        ("aws:ecr/repository:Repository", ["name"], ["name"]),
        ("aws:ec2/vpc:Vpc", ["cidrBlock"], ["cidrBlock"]),
        ("aws:ec2/subnet:Subnet", ["availabilityZone", "tags.x"], ["availabilityZone"]),
        ("aws:eks/cluster:Cluster", ["vpcConfig.subnetIds[0]"], ["vpcConfig.subnetIds[0]"]),
        ("aws:eks/cluster:Cluster", ["vpcConfig.endpointPublicAccess"], []),
        ("aws:eks/nodeGroup:NodeGroup", ["scalingConfig.desiredSize"], []),
        ("aws:eks/nodeGroup:NodeGroup", ["instanceTypes[0]"], ["instanceTypes[0]"]),
        ("aws:rds/instance:Instance", ["storageEncrypted"], ["storageEncrypted"]),
        ("aws:rds/instance:Instance", ["instanceClass"], []),
        (
            "kubernetes:apps/v1:Deployment",
            ["spec.selector.matchLabels.app"],
            ["spec.selector.matchLabels.app"],
        ),
        ("kubernetes:apps/v1:Deployment", ["spec.replicas"], []),
        ("unknown:type:Thing", ["anything"], []),
    ],
)
def test_replacing_paths(type_: str, changed: list[str], forcing: list[str]) -> None:
    assert replacing_paths(type_, changed) == forcing

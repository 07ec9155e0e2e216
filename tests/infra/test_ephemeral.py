"""Ephemeral (per-PR) stacks: only their own resources, on the base stack's foundation."""

from __future__ import annotations

import pytest

from mlops.plan import Plan
from tests.conftest import PlanWith
from tests.infra.conftest import plan_for
from training_jobs import contract

TEMPLATE = "pr-template"
SHARED_TYPES = (
    "aws:ec2/vpc:Vpc", "aws:ec2/natGateway:NatGateway", "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup", "aws:ecr/repository:Repository",
    "aws:batch/computeEnvironment:ComputeEnvironment", "aws:rds/instance:Instance",
    "kubernetes:helm.sh/v3:Release", "aws:cloudwatch/dashboard:Dashboard",
)  # fmt: skip


@pytest.fixture(scope="module")
def template_plan() -> Plan:
    return plan_for(TEMPLATE)


def test_template_creates_nothing_shared(template_plan: Plan) -> None:
    for type_ in SHARED_TYPES:
        assert not template_plan.of_type(type_), f"an ephemeral stack must not create {type_}"
    assert len(template_plan.of_type("aws:s3/bucket:Bucket")) == 5
    assert len(template_plan.of_type("aws:batch/jobQueue:JobQueue")) == 1
    assert template_plan.of_type("aws:sfn/stateMachine:StateMachine")
    assert template_plan.of_type("kubernetes:apps/v1:Deployment")
    for bucket in template_plan.of_type("aws:s3/bucket:Bucket"):
        assert bucket.inputs["forceDestroy"] is True, bucket.urn


def test_template_builds_on_the_dev_stack(template_plan: Plan) -> None:
    dev = plan_for("dev").outputs
    (reference,) = template_plan.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "dev"
    (queue,) = template_plan.of_type("aws:batch/jobQueue:JobQueue")
    used = [o["computeEnvironment"] for o in queue.inputs["computeEnvironmentOrders"]]
    assert used == dev["compute_environment_arns"]
    assert reference.urn in queue.dependencies
    assert template_plan.outputs["jobs_repository_url"] == dev["jobs_repository_url"]
    assert template_plan.outputs["tracking_uri"] == dev["tracking_uri"]
    (namespace,) = template_plan.of_type("kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["name"] == TEMPLATE
    (association,) = template_plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association.inputs["clusterName"] == dev["cluster_name"]
    assert association.inputs["namespace"] == TEMPLATE


def test_every_resource_of_a_pr_stack_carries_its_expiry(plan_with: PlanWith) -> None:
    # What `mlops env up --pr 42` records: the template under the PR's name, with an expiry.
    plan = plan_with(TEMPLATE, as_stack="pr-42", ephemeral={"expires_at": "2026-11-29T12:00:00Z"})
    # (docker-build's `tags` are image references, not resource tags.)
    tagged = [r for r in plan.resources if "tags" in r.inputs and r.type.startswith("aws:")]
    assert len(tagged) > 20
    for resource in tagged:
        tags = resource.inputs["tags"]
        assert tags[contract.TAG_EXPIRES_AT] == "2026-11-29T12:00:00Z", resource.urn
        assert tags[contract.TAG_ENVIRONMENT] == "ephemeral", resource.urn
        assert tags[contract.TAG_STACK] == "pr-42", resource.urn


def test_template_comes_up_in_two_minutes_and_costs_under_fifty_cents_a_day(
    template_plan: Plan,
) -> None:
    from mlops.review import cost, timing

    path = timing.critical_path(template_plan)
    assert path.seconds <= 120, path.human()
    estimate = cost.estimate(template_plan)
    assert not estimate.warnings
    assert estimate.total_usd * 12 / 365 <= 0.50, estimate.total_usd
    # The same tools on dev, for scale: a full stack takes many minutes and dollars.
    dev = plan_for("dev")
    assert timing.critical_path(dev).seconds > 10 * 60
    assert cost.estimate(dev).total_usd > 100

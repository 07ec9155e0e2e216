"""Config branches no shipped stack reaches, through the program: each test records a
shipped stack with one setting changed and reads what a user would see in the plan."""

from __future__ import annotations

import pytest

from mlops.plan import Plan, PlanResource
from mlops.recorder import ProgramError
from tests.conftest import PlanWith, plan_for
from training_jobs import contract

COMPUTE_ENVIRONMENT = "aws:batch/computeEnvironment:ComputeEnvironment"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def _one(plan: Plan, type_: str) -> PlanResource:
    (resource,) = plan.of_type(type_)
    return resource


def test_training_gpu_settings_are_refused_with_the_setting_that_replaced_them(
    plan_with: PlanWith,
) -> None:
    # `training.gpu_enabled` fed a GPU Batch environment no job definition ran on; GPU
    # capacity is now a serving node group (test_serving_tracking.py records one). A stack
    # file that still sets it must not deploy without it, and must say where it went.
    with pytest.raises(ProgramError) as raised:
        plan_with("dev", training={"gpu_enabled": True, "gpu_instance_types": ["g5.xlarge"]})
    message = str(raised.value)
    assert "mlops:training.gpu_enabled = true" in message
    assert "mlops:training.gpu_instance_types" in message
    assert "serving.node_groups" in message and "gpu" in message


def test_without_spot_one_on_demand_environment_feeds_the_queue(plan_with: PlanWith) -> None:
    spot = plan_for("dev")
    kinds = {
        e.name: e.inputs["computeResources"]["type"] for e in spot.of_type(COMPUTE_ENVIRONMENT)
    }
    assert kinds == {"mlops-dev-training-cpu": "SPOT", "mlops-dev-training-cpu-ondemand": "EC2"}

    plan = plan_with("dev", training={"spot": False})
    environment = _one(plan, COMPUTE_ENVIRONMENT)
    resources = environment.inputs["computeResources"]
    assert resources["type"] == "EC2", environment.urn
    # Spot's allocation strategy is refused by AWS for on-demand environments.
    assert resources["allocationStrategy"] == "BEST_FIT_PROGRESSIVE", environment.urn
    assert resources["instanceTypes"] == ["m6i.large", "m6i.xlarge", "m5.large", "m5.xlarge"]
    assert (resources["minVcpus"], resources["maxVcpus"]) == (0, 32), environment.urn
    queue = _one(plan, "aws:batch/jobQueue:JobQueue")
    orders = queue.inputs["computeEnvironmentOrders"]
    assert [o["order"] for o in orders] == [1], queue.urn
    assert orders[0]["computeEnvironment"].endswith(f"/{environment.inputs['name']}"), queue.urn
    assert plan.outputs["compute_environment_arns"] == [orders[0]["computeEnvironment"]]


@pytest.mark.parametrize(
    "principals",
    [
        pytest.param([], id="none"),
        pytest.param(
            ["arn:aws:iam::123456789012:role/platform-admin", "arn:aws:iam::210987654321:user/ops"],
            id="a-role-and-a-user",
        ),
    ],
)
def test_each_admin_principal_gets_an_access_entry_with_cluster_admin(
    plan_with: PlanWith, principals: list[str]
) -> None:
    # Every shipped EKS stack lists exactly one admin; none and several are the user's.
    plan = plan_with("dev", serving={"admin_principal_arns": principals})
    cluster = _one(plan, "aws:eks/cluster:Cluster")
    entries = plan.of_type("aws:eks/accessEntry:AccessEntry")
    associations = plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert [e.inputs["principalArn"] for e in entries] == principals
    assert [a.inputs["principalArn"] for a in associations] == principals
    for entry, association in zip(entries, associations, strict=True):
        assert entry.inputs["clusterName"] == cluster.inputs["name"], entry.urn
        assert entry.inputs["type"] == "STANDARD", entry.urn
        assert association.inputs["policyArn"] == ADMIN_POLICY, association.urn
        assert association.inputs["accessScope"] == {"type": "cluster"}, association.urn
        assert entry.urn in association.dependencies, "a policy needs its access entry first"
    # The identity running `pulumi up` stays admin either way, as the cluster's creator.
    assert cluster.inputs["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is True


def test_a_public_deployer_opens_the_endpoint_to_exactly_its_cidrs(plan_with: PlanWith) -> None:
    # Staging deploys from inside the VPC; moved to a runner outside with two egress ranges
    # (dev, the only public stack, has one).
    cidrs = ["198.51.100.0/28", "203.0.113.7/32"]
    deployer = {"location": "public", "public_cidrs": cidrs, "in_vpc_cidrs": []}
    plan = plan_with("staging", serving={"deployer": deployer})
    cluster = _one(plan, "aws:eks/cluster:Cluster")
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True, cluster.urn
    assert vpc["publicAccessCidrs"] == cidrs, cluster.urn
    assert vpc["endpointPrivateAccess"] is True, cluster.urn  # nodes still use the private one
    assert cluster.inputs["tags"][contract.TAG_DEPLOYER] == "public"
    ingress = [
        r.name
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if "-eks-deployer-" in r.name
    ]
    assert not ingress, f"a public deployer needs no in-VPC rule: {ingress}"

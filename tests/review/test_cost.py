"""Monthly cost: priced lines, usage-based lines, warnings instead of silent zeros."""

from __future__ import annotations

from typing import Any

import pytest

from mlops.plan import Plan, PlanResource
from mlops.review import cost, prices


def _r(type_: str, inputs: dict[str, Any], name: str = "x") -> PlanResource:
    return PlanResource(
        f"urn:pulumi:s::p::{type_}::{name}", type_, name, None, [], True, False, False, inputs
    )


def _monthly(r: PlanResource) -> float:
    lines, _ = cost.resource_cost(r)
    return round(sum(line.monthly_usd for line in lines), 2)


@pytest.mark.parametrize(
    ("resource", "usd"),
    [
        (_r("aws:eks/cluster:Cluster", {"upgradePolicy": {"supportType": "STANDARD"}}), 73.0),
        (_r("aws:eks/cluster:Cluster", {"upgradePolicy": {"supportType": "EXTENDED"}}), 438.0),
        (_r("aws:ec2/natGateway:NatGateway", {}), 32.85),
        (_r("aws:ec2/eip:Eip", {"domain": "vpc"}), 3.65),
        (
            _r(
                "aws:ec2/vpcEndpoint:VpcEndpoint",
                {"vpcEndpointType": "Interface", "subnetIds": ["a", "b", "c"]},
            ),
            21.9,
        ),
        (_r("aws:ec2/vpcEndpoint:VpcEndpoint", {"vpcEndpointType": "Gateway"}), 0.0),
        (_r("aws:kms/key:Key", {}), 1.0),
        (_r("aws:cloudwatch/metricAlarm:MetricAlarm", {}), 0.1),
        (_r("aws:cloudwatch/dashboard:Dashboard", {}), 3.0),
        (
            _r(
                "aws:eks/nodeGroup:NodeGroup",
                {"instanceTypes": ["m6i.large"], "scalingConfig": {"desiredSize": 2}},
            ),
            140.16,
        ),
        (
            _r(
                "aws:eks/nodeGroup:NodeGroup",
                {
                    "instanceTypes": ["m6i.large"],
                    "capacityType": "SPOT",
                    "scalingConfig": {"desiredSize": 2},
                },
            ),
            42.05,
        ),
        (
            _r(
                "aws:rds/instance:Instance",
                {"instanceClass": "db.t4g.small", "allocatedStorage": 20},
            ),
            25.66,
        ),
        (
            _r(
                "aws:rds/instance:Instance",
                {"instanceClass": "db.t4g.small", "allocatedStorage": 20, "multiAz": True},
            ),
            51.32,
        ),
        (
            _r(
                "aws:batch/computeEnvironment:ComputeEnvironment",
                {
                    "computeResources": {
                        "type": "EC2",
                        "minVcpus": 4,
                        "instanceTypes": ["m6i.large"],
                    }
                },
            ),
            140.16,
        ),
    ],
)
def test_priced_resources(resource: PlanResource, usd: float) -> None:
    assert _monthly(resource) == usd


def test_batch_scaling_to_zero_is_usage_based() -> None:
    lines, warnings = cost.resource_cost(
        _r(
            "aws:batch/computeEnvironment:ComputeEnvironment",
            {
                "computeResources": {
                    "type": "SPOT",
                    "minVcpus": 0,
                    "maxVcpus": 64,
                    "instanceTypes": ["m6i.large"],
                }
            },
        )
    )
    assert warnings == []
    assert [line.usage_based for line in lines] == [True]
    assert "spot, scales to zero" in lines[0].basis and "0.0144/vCPU-h" in lines[0].basis


def test_unknown_instance_type_is_a_warning_not_a_silent_zero() -> None:
    lines, warnings = cost.resource_cost(
        _r(
            "aws:eks/nodeGroup:NodeGroup",
            {"instanceTypes": ["z9.huge"], "scalingConfig": {"desiredSize": 3}},
            "ng",
        )
    )
    assert warnings == ["ng: instance type 'z9.huge' is not in the price table; not priced"]
    assert "price unknown" in lines[0].basis


def test_eks_without_support_type_warns_about_extended() -> None:
    _, warnings = cost.resource_cost(_r("aws:eks/cluster:Cluster", {}, "eks"))
    assert "defaults to EXTENDED" in warnings[0]


def test_prod_estimate_and_delta(prod: Plan, dev: Plan) -> None:
    est = cost.estimate(prod)
    assert est.warnings == []
    categories = est.by_category()
    assert categories["network"] == pytest.approx(3 * 32.85 + 3 * 3.65 + 4 * 21.9)
    assert categories["cluster"] == 73.0
    assert est.total_usd > cost.estimate(dev).total_usd
    d = cost.delta(cost.estimate(dev), est)
    assert d.delta == round(est.total_usd - cost.estimate(dev).total_usd, 2)
    text = cost.render_table(est)
    assert "assumptions:" in text and f"{prices.HOURS_PER_MONTH} h" in text


def test_every_price_is_dated_and_sourced() -> None:
    entries: list[Any] = [
        *prices.EC2_ON_DEMAND.values(),
        *prices.RDS_POSTGRES_SINGLE_AZ.values(),
        *prices.FLAT.values(),
    ]
    for entry in entries:
        assert entry.source.startswith("https://aws.amazon.com/")
        assert entry.as_of == prices.AS_OF

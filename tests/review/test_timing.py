"""Critical path of a fresh `pulumi up`."""

from __future__ import annotations

from mlops.plan import Plan, PlanResource
from mlops.review import timing


def _r(name: str, type_: str, deps: list[str]) -> PlanResource:
    return PlanResource(name, type_, name, None, deps, True, False, False, {})


def test_longest_weighted_chain_wins() -> None:
    plan = Plan(
        "p",
        "s",
        [
            _r("vpc", "aws:ec2/vpc:Vpc", []),
            _r("nat", "aws:ec2/natGateway:NatGateway", ["vpc"]),
            _r("eks", "aws:eks/cluster:Cluster", ["vpc"]),
            _r("ng", "aws:eks/nodeGroup:NodeGroup", ["eks", "nat"]),
            _r("role", "aws:iam/role:Role", []),
        ],
    )
    cp = timing.critical_path(plan)
    assert [u for u, _ in cp.path] == ["vpc", "eks", "ng"]
    assert cp.seconds == 3 + 12 * 60 + 4 * 60
    assert cp.human() == "16 min 03 s"


def test_cycles_and_missing_dependencies_do_not_hang() -> None:
    plan = Plan("p", "s", [_r("a", "aws:x:X", ["b", "ghost"]), _r("b", "aws:x:X", ["a"])])
    assert timing.critical_path(plan).seconds == 6


def test_prod_path_runs_through_the_cluster(prod: Plan) -> None:
    cp = timing.critical_path(prod)
    types = [prod.by_urn()[u].type for u, _ in cp.path]
    assert "aws:eks/cluster:Cluster" in types
    assert cp.seconds >= 12 * 60
    assert timing.render(cp).startswith("estimated time to `pulumi up` from scratch: ")

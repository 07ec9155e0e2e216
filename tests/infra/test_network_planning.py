"""Subnet layout: pure, non-overlapping, stable when AZs are added."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from infra.planning.network import SubnetLayoutError, az_slots, plan_subnets

VPC = ipaddress.IPv4Network("10.40.0.0/16")


@pytest.mark.parametrize("azs", [1, 2, 3, 4, 6])
def test_subnets_fit_and_never_overlap(azs: int) -> None:
    layout = plan_subnets(VPC, azs, 19, 24)
    assert len(layout) == 2 * azs
    for subnet in layout:
        assert subnet.cidr.subnet_of(VPC)
    for a, b in itertools.combinations(layout, 2):
        assert not a.cidr.overlaps(b.cidr), f"{a} overlaps {b}"
    assert [s.cidr.prefixlen for s in layout if s.tier == "private"] == [19] * azs
    assert [s.cidr.prefixlen for s in layout if s.tier == "public"] == [24] * azs


@pytest.mark.parametrize(
    ("vpc", "private", "public"),
    [(VPC, 19, 24), (VPC, 18, 24), (ipaddress.IPv4Network("10.9.0.0/20"), 23, 27)],
)
@pytest.mark.parametrize("tier", ["private", "public"])
def test_adding_azs_never_renumbers_a_subnet_of_either_tier(
    vpc: ipaddress.IPv4Network, private: int, public: int, tier: str
) -> None:
    slots = az_slots(vpc, private, public)
    layouts = [
        {s.az_index: s.cidr for s in plan_subnets(vpc, azs, private, public) if s.tier == tier}
        for azs in range(1, slots + 1)
    ]
    for smaller, larger in itertools.pairwise(layouts):
        assert {i: larger[i] for i in smaller} == smaller, f"{tier} subnets moved"


def test_known_layout() -> None:
    layout = {(s.tier, s.az_index): str(s.cidr) for s in plan_subnets(VPC, 2, 19, 24)}
    # Six slots per tier: public subnets start after the sixth private slot.
    assert layout == {
        ("private", 0): "10.40.0.0/19",
        ("private", 1): "10.40.32.0/19",
        ("public", 0): "10.40.192.0/24",
        ("public", 1): "10.40.193.0/24",
    }
    assert az_slots(VPC, 19, 24) == 6


def test_too_many_subnets_is_an_error() -> None:
    # A /16 holds four /18s, and only three leave room for the public tier.
    assert az_slots(VPC, 18, 24) == 3
    with pytest.raises(SubnetLayoutError, match="has room for 3 AZ"):
        plan_subnets(VPC, 4, 18, 24)


def test_subnet_larger_than_vpc_is_an_error() -> None:
    with pytest.raises(SubnetLayoutError, match="do not fit inside /20"):
        plan_subnets(ipaddress.IPv4Network("10.0.0.0/20"), 2, 19, 24)

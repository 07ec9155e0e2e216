"""Subnet layout: pure, non-overlapping, stable when AZs are added."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from infra.planning.network import SubnetLayoutError, plan_subnets

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


def test_adding_an_az_keeps_existing_private_subnets() -> None:
    two = [s.cidr for s in plan_subnets(VPC, 2, 19, 24) if s.tier == "private"]
    three = [s.cidr for s in plan_subnets(VPC, 3, 19, 24) if s.tier == "private"]
    assert three[:2] == two


def test_known_layout() -> None:
    layout = {(s.tier, s.az_index): str(s.cidr) for s in plan_subnets(VPC, 2, 19, 24)}
    assert layout == {
        ("private", 0): "10.40.0.0/19",
        ("private", 1): "10.40.32.0/19",
        ("public", 0): "10.40.64.0/24",
        ("public", 1): "10.40.65.0/24",
    }


def test_too_many_subnets_is_an_error() -> None:
    with pytest.raises(SubnetLayoutError, match="cannot hold 6 private /18"):
        plan_subnets(VPC, 6, 18, 24)  # a /16 holds only four /18s


def test_subnet_larger_than_vpc_is_an_error() -> None:
    with pytest.raises(SubnetLayoutError, match="do not fit inside /20"):
        plan_subnets(ipaddress.IPv4Network("10.0.0.0/20"), 2, 19, 24)

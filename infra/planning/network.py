"""Subnet layout as plain data: which CIDR goes to which AZ and tier.

Private subnets (jobs, pods) are large and come first in the VPC block; public subnets
(load balancers, NAT gateways) are small and follow. Each tier has a fixed slot per AZ, as
many slots as the block holds (at most MAX_AZS) whatever the AZ count: the layout depends
only on the VPC block and the prefix lengths, so adding an AZ takes the next slot of each
tier and never renumbers a subnet (which would replace it, and the NAT gateway in it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Tier = Literal["private", "public"]


MAX_AZS = 6


class SubnetLayoutError(ValueError):
    """The requested subnets do not fit in the VPC block."""


@dataclass(frozen=True)
class SubnetPlan:
    tier: Tier
    az_index: int
    cidr: ipaddress.IPv4Network


def plan_subnets(
    vpc_cidr: ipaddress.IPv4Network,
    az_count: int,
    private_prefix: int,
    public_prefix: int,
) -> list[SubnetPlan]:
    """One private and one public subnet per AZ, non-overlapping, inside `vpc_cidr`."""
    for tier, prefix in (("private", private_prefix), ("public", public_prefix)):
        if prefix <= vpc_cidr.prefixlen:
            raise SubnetLayoutError(
                f"{tier} subnets of /{prefix} do not fit inside /{vpc_cidr.prefixlen}; "
                f"use a longer {tier}_subnet_prefix"
            )
    slots = az_slots(vpc_cidr, private_prefix, public_prefix)
    if az_count > slots:
        raise SubnetLayoutError(
            f"a /{vpc_cidr.prefixlen} with private /{private_prefix} and public /{public_prefix} "
            f"subnets has room for {slots} AZ(s), not {az_count}; use a larger vpc_cidr or "
            "longer subnet prefixes"
        )
    private_blocks = _take(vpc_cidr, private_prefix, slots, start=vpc_cidr[0])
    public_start = private_blocks[-1].broadcast_address + 1
    public_blocks = _take(vpc_cidr, public_prefix, slots, start=public_start)
    return [SubnetPlan("private", i, c) for i, c in enumerate(private_blocks[:az_count])] + [
        SubnetPlan("public", i, c) for i, c in enumerate(public_blocks[:az_count])
    ]


def az_slots(vpc_cidr: ipaddress.IPv4Network, private_prefix: int, public_prefix: int) -> int:
    """How many AZs the layout reserves a slot for in each tier (up to MAX_AZS)."""
    for slots in range(MAX_AZS, 0, -1):
        private = _take(vpc_cidr, private_prefix, slots, start=vpc_cidr[0])
        if len(private) < slots:
            continue
        after = private[-1].broadcast_address + 1
        if after in vpc_cidr and len(_take(vpc_cidr, public_prefix, slots, start=after)) == slots:
            return slots
    return 0


def _take(
    vpc: ipaddress.IPv4Network, prefix: int, count: int, start: ipaddress.IPv4Address
) -> list[ipaddress.IPv4Network]:
    blocks: list[ipaddress.IPv4Network] = []
    for block in vpc.subnets(new_prefix=prefix):
        if block.network_address >= start and len(blocks) < count:
            blocks.append(block)
    return blocks

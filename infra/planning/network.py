"""Subnet layout as plain data: which CIDR goes to which AZ and tier.

Private subnets (jobs, pods) are large and come first in the VPC block; public subnets
(load balancers, NAT gateways) are small and follow. The layout depends only on the VPC
block, the AZ count and the prefix lengths, so adding an AZ never renumbers the others.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Tier = Literal["private", "public"]


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
    # Private subnets take the first az_count /private_prefix blocks; public subnets are
    # carved from the first block after them (aligned to the public prefix).
    private_blocks = list(_take(vpc_cidr, private_prefix, az_count, start=vpc_cidr[0]))
    public_start = private_blocks[-1].broadcast_address + 1 if private_blocks else vpc_cidr[0]
    if public_start not in vpc_cidr:
        raise SubnetLayoutError(_no_room(vpc_cidr, az_count, private_prefix, public_prefix))
    public_blocks = list(_take(vpc_cidr, public_prefix, az_count, start=public_start))
    if len(private_blocks) < az_count or len(public_blocks) < az_count:
        raise SubnetLayoutError(_no_room(vpc_cidr, az_count, private_prefix, public_prefix))
    return [SubnetPlan("private", i, c) for i, c in enumerate(private_blocks)] + [
        SubnetPlan("public", i, c) for i, c in enumerate(public_blocks)
    ]


def _take(
    vpc: ipaddress.IPv4Network, prefix: int, count: int, start: ipaddress.IPv4Address
) -> list[ipaddress.IPv4Network]:
    blocks: list[ipaddress.IPv4Network] = []
    for block in vpc.subnets(new_prefix=prefix):
        if block.network_address >= start and len(blocks) < count:
            blocks.append(block)
    return blocks


def _no_room(vpc: ipaddress.IPv4Network, azs: int, private: int, public: int) -> str:
    return (
        f"a /{vpc.prefixlen} cannot hold {azs} private /{private} and {azs} public /{public} "
        "subnets; use a larger vpc_cidr, fewer AZs or longer subnet prefixes"
    )

"""us-east-1 list prices the cost estimate uses: data, dated and sourced per entry.

Prices are the public on-demand list prices (Linux, shared tenancy) as published on the
sources below on the `as_of` date; they were transcribed, not fetched at run time (build
machines have no network). Re-check them when `as_of` is more than a quarter old.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730  # AWS's own convention in the pricing calculator
REGION = "us-east-1"

EC2_SOURCE = "https://aws.amazon.com/ec2/pricing/on-demand/"
RDS_SOURCE = "https://aws.amazon.com/rds/postgresql/pricing/"
EKS_SOURCE = "https://aws.amazon.com/eks/pricing/"
VPC_SOURCE = "https://aws.amazon.com/vpc/pricing/"
PRIVATELINK_SOURCE = "https://aws.amazon.com/privatelink/pricing/"
KMS_SOURCE = "https://aws.amazon.com/kms/pricing/"
CLOUDWATCH_SOURCE = "https://aws.amazon.com/cloudwatch/pricing/"
SPOT_SOURCE = "https://aws.amazon.com/ec2/spot/pricing/"
AS_OF = "2025-06-01"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str  # "hour", "month", "GiB-month"
    source: str
    as_of: str = AS_OF


@dataclass(frozen=True)
class InstancePrice:
    usd_per_hour: float
    vcpus: int
    source: str = EC2_SOURCE
    as_of: str = AS_OF


EC2_ON_DEMAND: dict[str, InstancePrice] = {
    "t3.medium": InstancePrice(0.0416, 2),
    "t3.large": InstancePrice(0.0832, 2),
    "t3.xlarge": InstancePrice(0.1664, 4),
    "t3.2xlarge": InstancePrice(0.3328, 8),
    "m5.large": InstancePrice(0.096, 2),
    "m5.xlarge": InstancePrice(0.192, 4),
    "m5.2xlarge": InstancePrice(0.384, 8),
    "m5.4xlarge": InstancePrice(0.768, 16),
    "m6i.large": InstancePrice(0.096, 2),
    "m6i.xlarge": InstancePrice(0.192, 4),
    "m6i.2xlarge": InstancePrice(0.384, 8),
    "m6i.4xlarge": InstancePrice(0.768, 16),
    "m6a.large": InstancePrice(0.0864, 2),
    "m6a.xlarge": InstancePrice(0.1728, 4),
    "m6a.2xlarge": InstancePrice(0.3456, 8),
    "m7i.large": InstancePrice(0.1008, 2),
    "m7i.xlarge": InstancePrice(0.2016, 4),
    "m7g.large": InstancePrice(0.0816, 2),
    "m7g.xlarge": InstancePrice(0.1632, 4),
    "c6i.large": InstancePrice(0.085, 2),
    "c6i.xlarge": InstancePrice(0.17, 4),
    "c6i.2xlarge": InstancePrice(0.34, 8),
    "r6i.large": InstancePrice(0.126, 2),
    "r6i.xlarge": InstancePrice(0.252, 4),
    "g4dn.xlarge": InstancePrice(0.526, 4),
    "g4dn.2xlarge": InstancePrice(0.752, 8),
    "g5.xlarge": InstancePrice(1.006, 4),
    "g5.2xlarge": InstancePrice(1.212, 8),
    "g6.xlarge": InstancePrice(0.8048, 4),
    "p3.2xlarge": InstancePrice(3.06, 8),
}

RDS_POSTGRES_SINGLE_AZ: dict[str, InstancePrice] = {
    "db.t4g.micro": InstancePrice(0.016, 2, RDS_SOURCE),
    "db.t4g.small": InstancePrice(0.032, 2, RDS_SOURCE),
    "db.t4g.medium": InstancePrice(0.065, 2, RDS_SOURCE),
    "db.t4g.large": InstancePrice(0.129, 2, RDS_SOURCE),
    "db.m6g.large": InstancePrice(0.152, 2, RDS_SOURCE),
    "db.m6i.large": InstancePrice(0.171, 2, RDS_SOURCE),
    "db.m7g.large": InstancePrice(0.168, 2, RDS_SOURCE),
    "db.m7g.xlarge": InstancePrice(0.337, 4, RDS_SOURCE),
    "db.r6g.large": InstancePrice(0.225, 2, RDS_SOURCE),
    "db.r7g.large": InstancePrice(0.239, 2, RDS_SOURCE),
}

FLAT: dict[str, Price] = {
    "eks_control_plane_standard": Price(0.10, "hour", EKS_SOURCE),
    "eks_control_plane_extended": Price(0.60, "hour", EKS_SOURCE),
    "nat_gateway": Price(0.045, "hour", VPC_SOURCE),
    "public_ipv4": Price(0.005, "hour", VPC_SOURCE),
    "interface_endpoint_per_az": Price(0.01, "hour", PRIVATELINK_SOURCE),
    "kms_key": Price(1.00, "month", KMS_SOURCE),
    "cloudwatch_alarm": Price(0.10, "month", CLOUDWATCH_SOURCE),
    "cloudwatch_dashboard": Price(3.00, "month", CLOUDWATCH_SOURCE),
    "rds_gp3_storage_single_az": Price(0.115, "GiB-month", RDS_SOURCE),
    "rds_gp2_storage_single_az": Price(0.115, "GiB-month", RDS_SOURCE),
}

# Assumption, not a price: spot capacity for Batch jobs is billed at the spot market price,
# historically about 70 % under on-demand for m5/m6i in us-east-1.
SPOT_DISCOUNT = 0.70
SPOT_DISCOUNT_SOURCE = SPOT_SOURCE

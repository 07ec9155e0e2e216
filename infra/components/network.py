"""Network: VPC, public/private subnets over N AZs, NAT, endpoints and flow logs."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from infra.components.identity import service_role
from infra.planning import iam
from infra.planning.network import plan_subnets
from infra.planning.tags import resource_tags


@dataclass(frozen=True)
class NetworkArgs:
    base_name: str
    tags: dict[str, str]
    region: str
    vpc_cidr: ipaddress.IPv4Network
    availability_zones: pulumi.Input[list[str]]
    az_count: int
    nat_mode: Literal["none", "single", "per_az"]
    private_subnet_prefix: int
    public_subnet_prefix: int
    interface_endpoints: tuple[str, ...]
    flow_logs: bool
    flow_logs_retention_days: int
    kms_key_arn: pulumi.Input[str]


def _nth(index: int) -> Callable[[list[str]], str]:
    return lambda zones: zones[index]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    private_subnet_cidrs: tuple[str, ...]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = args.base_name
        layout = plan_subnets(
            args.vpc_cidr, args.az_count, args.private_subnet_prefix, args.public_subnet_prefix
        )
        zones = pulumi.Output.from_input(args.availability_zones)

        vpc = aws.ec2.Vpc(
            f"{base}-vpc",
            cidr_block=str(args.vpc_cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=resource_tags(f"{base}-vpc", args.tags),
            opts=child,
        )
        # Take over the default security group and leave it without rules (CKV2_AWS_12).
        aws.ec2.DefaultSecurityGroup(
            f"{base}-default-sg",
            vpc_id=vpc.id,
            tags=resource_tags(f"{base}-default-sg", args.tags),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{base}-igw", vpc_id=vpc.id, tags=resource_tags(f"{base}-igw", args.tags), opts=child
        )

        subnets: dict[str, list[aws.ec2.Subnet]] = {"private": [], "public": []}
        for plan in layout:
            subnet_name = f"{base}-{plan.tier}-{plan.az_index}"
            # Tell the AWS load balancer controller which subnets it may use.
            elb_role = (
                "kubernetes.io/role/elb"
                if plan.tier == "public"
                else ("kubernetes.io/role/internal-elb")
            )
            subnets[plan.tier].append(
                aws.ec2.Subnet(
                    subnet_name,
                    vpc_id=vpc.id,
                    cidr_block=str(plan.cidr),
                    availability_zone=zones.apply(_nth(plan.az_index)),
                    # Nothing gets a public IP by accident; NAT and LBs bring their own.
                    map_public_ip_on_launch=False,
                    tags=resource_tags(
                        subnet_name, args.tags, {"mlops:tier": plan.tier, elb_role: "1"}
                    ),
                    opts=child,
                )
            )

        public_rt = aws.ec2.RouteTable(
            f"{base}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=resource_tags(f"{base}-public-rt", args.tags),
            opts=child,
        )
        for i, subnet in enumerate(subnets["public"]):
            aws.ec2.RouteTableAssociation(
                f"{base}-public-rta-{i}",
                subnet_id=subnet.id,
                route_table_id=public_rt.id,
                opts=child,
            )

        nat_count = {"none": 0, "single": 1, "per_az": args.az_count}[args.nat_mode]
        nats = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(
                f"{base}-nat-eip-{i}",
                domain="vpc",
                tags=resource_tags(f"{base}-nat-eip-{i}", args.tags),
                opts=child,
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{base}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=subnets["public"][i].id,
                    tags=resource_tags(f"{base}-nat-{i}", args.tags),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        # One private route table per AZ, so moving from a single NAT to one per AZ only
        # changes routes, never associations.
        private_rts = []
        for i, subnet in enumerate(subnets["private"]):
            routes = []
            if nats:
                nat = nats[i] if args.nat_mode == "per_az" else nats[0]
                routes.append(
                    aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)
                )
            rt = aws.ec2.RouteTable(
                f"{base}-private-rt-{i}",
                vpc_id=vpc.id,
                routes=routes,
                tags=resource_tags(f"{base}-private-rt-{i}", args.tags),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{base}-private-rta-{i}", subnet_id=subnet.id, route_table_id=rt.id, opts=child
            )
            private_rts.append(rt)

        # S3 traffic stays off the NAT gateways: free, and faster for training data.
        aws.ec2.VpcEndpoint(
            f"{base}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags=resource_tags(f"{base}-s3-endpoint", args.tags),
            opts=child,
        )

        if args.interface_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{base}-endpoints-sg",
                description="HTTPS from inside the VPC to AWS interface endpoints",
                vpc_id=vpc.id,
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        description="HTTPS from the VPC",
                        protocol="tcp",
                        from_port=443,
                        to_port=443,
                        cidr_blocks=[str(args.vpc_cidr)],
                    )
                ],
                tags=resource_tags(f"{base}-endpoints-sg", args.tags),
                opts=child,
            )
            for service in args.interface_endpoints:
                endpoint_name = f"{base}-{service.replace('.', '-')}-endpoint"
                aws.ec2.VpcEndpoint(
                    endpoint_name,
                    vpc_id=vpc.id,
                    service_name=f"com.amazonaws.{args.region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=[s.id for s in subnets["private"]],
                    security_group_ids=[endpoint_sg.id],
                    tags=resource_tags(endpoint_name, args.tags),
                    opts=child,
                )

        if args.flow_logs:
            log_group = aws.cloudwatch.LogGroup(
                f"{base}-flow-logs",
                retention_in_days=args.flow_logs_retention_days,
                kms_key_id=args.kms_key_arn,
                tags=resource_tags(f"{base}-flow-logs", args.tags),
                opts=child,
            )
            role = service_role(
                f"{base}-flow-logs",
                service="vpc-flow-logs.amazonaws.com",
                policy=log_group.arn.apply(lambda arn: json.dumps(iam.flow_logs_policy(arn))),
                parent=self,
                tags=args.tags,
            )
            aws.ec2.FlowLog(
                f"{base}-flow-log",
                vpc_id=vpc.id,
                traffic_type="ALL",
                log_destination_type="cloud-watch-logs",
                log_destination=log_group.arn,
                iam_role_arn=role.arn,
                tags=resource_tags(f"{base}-flow-log", args.tags),
                opts=child,
            )

        self.vpc_id = vpc.id
        self.private_subnet_cidrs = tuple(str(p.cidr) for p in layout if p.tier == "private")
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["private"]])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )

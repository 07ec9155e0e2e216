"""What the host network cannot enforce, checked before anything runs.

Every container here shares the host's network, so a security group or a load balancer's
source ranges would not stop a connection the way they do in the VPC. Instead, each
connection the platform's workloads make is checked against the rules AWS would apply —
as they are in the emulator after the plan was applied (not as restated here) — and a
connection AWS would drop fails the run, naming the plan resource whose rule is missing.
The plan's policy rules run too: a mandatory violation stops the run before it starts.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlops.plan import Plan
from training_jobs import contract

JOB_DEFINITION = "aws:batch/jobDefinition:JobDefinition"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
HTTPS = 443


class ContractError(Exception):
    """A plan resource breaks a contract the local run relies on; names the resource."""


@dataclass(frozen=True)
class Connection:
    what: str  # who connects to what, for the message
    port: int
    inside_vpc: bool  # the destination is in the VPC (an internal load balancer)


def policy_findings(plan: Plan) -> list[str]:
    """The plan's mandatory policy violations (with the stack file's exceptions)."""
    from infra import policy
    from mlops.cli.errors import UserError
    from mlops.cli.review import stack_exceptions

    try:
        exceptions = stack_exceptions(plan.stack)
    except UserError:
        exceptions = []  # no stack file for this plan's stack here: no exceptions
    findings = policy.evaluate(policy.resources_from_plan(plan), exceptions=exceptions)
    return [f"{f.rule_id} {f.name}: {f.message}" for f in findings if f.blocking]


def job_connections(plan: Plan) -> list[Connection]:
    """What a Batch job connects to: AWS's APIs over HTTPS, and every http(s) URL its job
    definitions' environment names (MLflow through its internal load balancer)."""
    connections = [Connection("Batch jobs → AWS APIs and the image registry", HTTPS, False)]
    seen = set()
    for definition in plan.of_type(JOB_DEFINITION):
        properties = json.loads(definition.inputs["containerProperties"])
        for entry in properties.get("environment") or []:
            url = urlsplit(str(entry.get("value", "")))
            if url.scheme not in ("http", "https") or not url.hostname:
                continue
            port = url.port or (HTTPS if url.scheme == "https" else 80)
            key = (entry["name"], port)
            if key in seen:
                continue
            seen.add(key)
            connections.append(
                Connection(
                    f"Batch jobs → {entry['name']}={entry['value']}", port, _internal(url.hostname)
                )
            )
    return connections


def _internal(host: str) -> bool:
    """An address inside the VPC: an internal load balancer's name, or (the local stack's
    client URIs) a private or loopback address standing in for one."""
    if host.endswith(".elb.amazonaws.com") or ".elb." in host or host.endswith(".internal"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _within(small: Network, big: Network) -> bool:
    return small.version == big.version and small.subnet_of(big)  # type: ignore[arg-type]


def _admits(
    permissions: Iterable[Mapping[str, Any]], port: int, inside_vpc: bool, vpc_cidr: str
) -> bool:
    vpc = ipaddress.ip_network(vpc_cidr)
    for rule in permissions:
        protocol = str(rule.get("IpProtocol"))
        if protocol not in ("tcp", "-1", "6"):
            continue
        if protocol != "-1" and not (
            int(rule.get("FromPort", 0)) <= port <= int(rule.get("ToPort", 0))
        ):
            continue
        for block in rule.get("IpRanges") or []:
            network = ipaddress.ip_network(block["CidrIp"])
            if network.prefixlen == 0 or (
                inside_vpc and (_within(vpc, network) or _within(network, vpc))
            ):
                return True
    return False


def check_job_network(
    plan: Plan, ec2: Any, batch: Any, queue_arn: str, names: Mapping[str, str]
) -> list[str]:
    """Each job connection against the egress of the security groups the queue's compute
    environments launch jobs with, as the emulator holds them."""
    queue = batch.describe_job_queues(jobQueues=[queue_arn])["jobQueues"][0]
    environments = [o["computeEnvironment"] for o in queue["computeEnvironmentOrder"]]
    problems = []
    for environment in batch.describe_compute_environments(computeEnvironments=environments)[
        "computeEnvironments"
    ]:
        resources = environment.get("computeResources") or {}
        groups = ec2.describe_security_groups(
            GroupIds=list(resources.get("securityGroupIds") or [])
        )["SecurityGroups"]
        for connection in job_connections(plan):
            admitted = False
            for group in groups:
                vpc_cidr = ec2.describe_vpcs(VpcIds=[group["VpcId"]])["Vpcs"][0]["CidrBlock"]
                if _admits(
                    group.get("IpPermissionsEgress") or [],
                    connection.port,
                    connection.inside_vpc,
                    vpc_cidr,
                ):
                    admitted = True
            if not admitted:
                owners = ", ".join(names.get(g["GroupId"], g["GroupName"]) for g in groups)
                where = "inside the VPC" if connection.inside_vpc else "to the internet"
                owner = names.get(
                    environment["computeEnvironmentArn"], environment["computeEnvironmentName"]
                )
                problems.append(
                    f"security group {owners} (compute environment {owner}) "
                    f"allows no egress on tcp {connection.port} {where}: {connection.what} would "
                    "time out in AWS"
                )
    return problems


def check_service_sources(plan: Plan, subnets_cidrs: Iterable[str]) -> list[str]:
    """A LoadBalancer Service with source ranges must admit the subnets its clients (the
    Batch jobs) connect from."""
    problems = []
    cidrs = [ipaddress.ip_network(c) for c in subnets_cidrs]
    for resource in plan.resources:
        if not resource.type.startswith("kubernetes:core/v1:Service"):
            continue
        spec = resource.inputs.get("spec") or {}
        ranges = spec.get("loadBalancerSourceRanges")
        if spec.get("type") != "LoadBalancer" or ranges is None:
            continue
        allowed = [ipaddress.ip_network(r) for r in ranges]
        for cidr in cidrs:
            if not any(_within(cidr, a) for a in allowed):
                problems.append(
                    f"{resource.name}: loadBalancerSourceRanges {ranges} leave out the job subnet "
                    f"{cidr}: Batch jobs there could not reach the Service"
                )
    return problems


def check(platform: Any) -> None:
    """All of the above for a started platform; ContractError listing every problem."""
    plan = platform.plan.plan
    problems = [f"policy {p}" for p in policy_findings(plan)]
    names = platform.applied.names
    problems += check_job_network(
        plan,
        platform.client("ec2"),
        platform.client("batch"),
        str(platform.outputs[contract.OUTPUT_JOB_QUEUE_ARN]),
        names,
    )
    subnet_ids = [str(s) for s in platform.outputs.get("private_subnet_ids") or []]
    if subnet_ids:
        subnets = platform.client("ec2").describe_subnets(SubnetIds=subnet_ids)["Subnets"]
        problems += check_service_sources(plan, [s["CidrBlock"] for s in subnets])
    if problems:
        raise ContractError(
            "the plan breaks what its workloads need (the host network would not enforce it, so "
            "the local run stops here):\n" + "\n".join(f"  {p}" for p in problems)
        )

"""Connections: every connection a workload is configured to make is allowed by the
security groups it runs behind. An emulator cannot run this (moto does not filter packets);
the plan says both what a job connects to and what its security group lets out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from infra.policy.core import Resource, stack_rule
from infra.policy.documents import as_list, get, is_unknown
from infra.policy.workloads import JOB_DEFINITION, containers_of

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
COMPUTE_ENVIRONMENT = "aws:batch/computeEnvironment:ComputeEnvironment"
DATABASE = "aws:rds/instance:Instance"
CLUSTER = "aws:eks/cluster:Cluster"
# Every job reaches AWS's APIs (S3, ECR, CloudWatch, STS) over HTTPS.
AWS_APIS = ("AWS APIs", 443, None)


def _url_targets(env: dict[str, object]) -> Iterator[tuple[str, int, str | None]]:
    """(what, port, host) of every URL a workload's environment gives it."""
    for name, value in sorted(env.items()):
        if not isinstance(value, str) or is_unknown(value) or "://" not in value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        yield name, port, parts.hostname


def _egress(group: Resource, resources: Sequence[Resource]) -> list[tuple[int, int, str]]:
    """(from, to, cidr) of every TCP egress rule of a security group, in either shape."""
    rules = [
        (int(r.get("fromPort", 0)), int(r.get("toPort", 65535)), str(cidr))
        for r in as_list(group.inputs.get("egress"))
        if str(r.get("protocol")) in ("tcp", "-1", "all")
        for cidr in as_list(r.get("cidrBlocks"))
    ]
    rules += [
        (int(r.inputs.get("fromPort", 0)), int(r.inputs.get("toPort", 65535)), str(cidr))
        for r in resources
        if r.type == EGRESS_RULE
        and group.urn in r.dependencies
        and str(r.inputs.get("ipProtocol")) in ("tcp", "-1")
        and (cidr := r.inputs.get("cidrIpv4"))
    ]
    return rules


def _reaches(rules: list[tuple[int, int, str]], port: int, inside_vpc: bool) -> bool:
    for low, high, cidr in rules:
        if not low <= port <= high:
            continue
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen == 0 or (inside_vpc and network.is_private):
            return True
    return False


def _inside_vpc(host: str | None) -> bool:
    """An internal load balancer's or a cluster Service's name, or a private address (the
    local stack's loopback): a destination inside the VPC."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (
            ".elb." in host or host.endswith(".svc.cluster.local") or host.startswith("internal-")
        )
    return address.is_private or address.is_loopback


@stack_rule(
    id="MLOPS-NET-001",
    title="Workloads may make the connections they are configured for",
    severity="critical",
    enforcement="mandatory",
    category="security",
    description="Every URL a Batch job definition is given (its tracking server, ...) and "
    "AWS's APIs (HTTPS) are allowed out by the security groups of the compute environments "
    "that run it; the tracking database admits the cluster its server runs on. Otherwise "
    "the job's first call times out: the pipeline fails on a platform every check passed.",
    remediation="Add an egress rule for the port (to the VPC's range for internal load "
    "balancers) to the Batch security group (infra/components/training.py), or an ingress "
    "rule on the database's group.",
)
def _connections(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    by_urn = {r.urn: r for r in resources}
    environments = [r for r in resources if r.type == COMPUTE_ENVIRONMENT]
    out: list[tuple[Resource, str]] = []
    for definition in (r for r in resources if r.type == JOB_DEFINITION):
        for container in containers_of(definition.type, definition.inputs):
            targets = [AWS_APIS, *_url_targets(dict(container.env))]
            for environment in environments:
                groups = [
                    by_urn[d] for d in environment.dependencies
                    if d in by_urn and by_urn[d].type == SECURITY_GROUP
                ]  # fmt: skip
                rules = [rule for group in groups for rule in _egress(group, resources)]
                for what, port, host in targets:
                    if not _reaches(rules, port, _inside_vpc(host)):
                        out.append(
                            (definition, f"{what} ({host or 'AWS'}:{port}) is not allowed out "
                                         f"of compute environment {environment.name}'s "
                                         "security groups")
                        )  # fmt: skip
    out += _database_admits_cluster(resources, by_urn)
    return out


def _database_admits_cluster(
    resources: Sequence[Resource], by_urn: dict[str, Resource]
) -> list[tuple[Resource, str]]:
    clusters = [r for r in resources if r.type == CLUSTER]
    out = []
    for db in (r for r in resources if r.type == DATABASE):
        port = int(db.inputs.get("port") or 5432)
        groups = {d for d in db.dependencies if d in by_urn and by_urn[d].type == SECURITY_GROUP}
        for cluster in clusters:
            admitted = any(
                r.type == INGRESS_RULE
                and groups & set(r.dependencies)
                and cluster.urn in r.dependencies  # from the cluster's security group
                and int(r.inputs.get("fromPort", 0)) <= port <= int(r.inputs.get("toPort", 0))
                for r in resources
            )
            if clusters and not admitted and get(db.inputs, "engine") == "postgres":
                out.append((db, f"no ingress on {port} from cluster {cluster.name}, where the "
                                "tracking server runs"))  # fmt: skip
    return out

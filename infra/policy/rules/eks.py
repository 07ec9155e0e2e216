"""EKS: the cluster's secrets, API endpoint, control-plane logs and support policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.policy.core import Context, Resource, resource_rule, stack_rule
from infra.policy.documents import OPEN_CIDRS, as_list, get, truthy
from training_jobs import contract

CLUSTER = "aws:eks/cluster:Cluster"
EKS_LOG_TYPES = ("api", "audit", "authenticator")


@resource_rule(
    id="MLOPS-EKS-001",
    title="EKS secrets encryption",
    severity="high",
    enforcement="mandatory",
    category="security",
    types=(CLUSTER,),
    checkov=("CKV_AWS_58",),
    description="Kubernetes secrets are envelope-encrypted with a KMS key.",
    remediation="Set encryptionConfig {resources: [secrets], provider: {keyArn: <key arn>}}.",
)
def _eks_secrets(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    configs = as_list(inputs.get("encryptionConfig"))
    ok = any(
        "secrets" in as_list(c.get("resources")) and get(c, "provider.keyArn") for c in configs
    )
    return [] if ok else ["encryptionConfig does not encrypt 'secrets' with a KMS key"]


@resource_rule(
    id="MLOPS-EKS-002",
    title="EKS endpoint not open to the internet",
    severity="critical",
    enforcement="mandatory",
    category="security",
    types=(CLUSTER,),
    checkov=("CKV_AWS_38", "CKV_AWS_39"),
    description="The API endpoint is private, or public only to listed CIDRs, with private "
    "access on.",
    remediation="Set vpcConfig.endpointPublicAccess false, or publicAccessCidrs to office/VPN "
    "ranges (serving.public_access_cidrs) and endpointPrivateAccess true.",
)
def _eks_endpoint(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    vpc = inputs.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)  # the EKS API default is public
    if not truthy(public):
        return []
    cidrs = [str(c) for c in as_list(vpc.get("publicAccessCidrs"))] or ["0.0.0.0/0"]
    open_ = [c for c in cidrs if c in OPEN_CIDRS]
    if open_:
        return [
            f"public endpoint open to {', '.join(open_)}; set endpointPublicAccess false "
            "or restrict vpcConfig.publicAccessCidrs"
        ]
    if not truthy(vpc.get("endpointPrivateAccess")):
        return ["endpointPrivateAccess is not true: nodes reach the API over the internet"]
    return []


@resource_rule(
    id="MLOPS-EKS-003",
    title="EKS control-plane logs",
    severity="medium",
    enforcement="mandatory",
    category="security",
    types=(CLUSTER,),
    checkov=("CKV_AWS_37",),
    description="api, audit and authenticator logs go to CloudWatch.",
    remediation="Set enabledClusterLogTypes to include api, audit, authenticator.",
)
def _eks_logs(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    enabled = set(as_list(inputs.get("enabledClusterLogTypes")))
    missing = [t for t in EKS_LOG_TYPES if t not in enabled]
    return [f"enabledClusterLogTypes misses {', '.join(missing)}"] if missing else []


@resource_rule(
    id="MLOPS-EKS-004",
    title="EKS standard support policy",
    severity="medium",
    enforcement="advisory",
    category="cost",
    types=(CLUSTER,),
    description="Clusters created through the API default to EXTENDED support ($0.60/h vs "
    "$0.10/h).",
    remediation="Set upgradePolicy.supportType STANDARD and upgrade Kubernetes on schedule.",
)
def _eks_support(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    support = get(inputs, "upgradePolicy.supportType")
    if support != "STANDARD":
        return [
            f"upgradePolicy.supportType is {support!r}: EXTENDED support costs 6× "
            "the control plane; allowed STANDARD"
        ]
    return []


DEPLOYER_TAG = contract.TAG_DEPLOYER
CLUSTER_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


@stack_rule(
    id="MLOPS-EKS-005",
    title="The deployer can reach the Kubernetes API",
    severity="critical",
    enforcement="mandatory",
    category="resilience",
    description="A plan that declares Kubernetes objects says where `pulumi up` runs (the "
    "cluster's mlops:deployer tag, from serving.deployer) and the endpoint admits it: from "
    "outside the VPC the public endpoint with an allowlist; from inside, the private "
    "endpoint and an HTTPS rule on the cluster security group. Otherwise every Kubernetes "
    "resource of the first `pulumi up` times out.",
    remediation="Set serving.deployer (location public with public_cidrs, or in_vpc with "
    "in_vpc_cidrs) and run the deploy workflows where it says.",
)
def _deployer_reaches_api(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    uses_kubernetes = any(r.type.startswith("kubernetes:") for r in resources)
    out = []
    for cluster in (r for r in resources if r.type == CLUSTER):
        vpc = cluster.inputs.get("vpcConfig") or {}
        location = (cluster.inputs.get("tags") or {}).get(DEPLOYER_TAG)
        public = truthy(vpc.get("endpointPublicAccess", True))
        if location is None:
            if uses_kubernetes:
                out.append((cluster, f"no {DEPLOYER_TAG} tag: where `pulumi up` runs is unknown"))
        elif location == "public":
            if not public:
                out.append(
                    (cluster, "the deployer runs outside the VPC, but the endpoint is private only")
                )
            elif not as_list(vpc.get("publicAccessCidrs")):
                out.append((cluster, "the public endpoint has no allowlist for the deployer"))
        elif location == "in_vpc":
            admitted = any(
                r.type == CLUSTER_INGRESS
                and cluster.urn in r.dependencies
                and int(r.inputs.get("fromPort", 0)) <= 443 <= int(r.inputs.get("toPort", 0))
                for r in resources
            )
            if not truthy(vpc.get("endpointPrivateAccess")):
                out.append(
                    (cluster, "the deployer runs in the VPC, but the private endpoint is off")
                )
            elif not admitted:
                out.append(
                    (cluster, "no HTTPS ingress on the cluster security group for the in-VPC "
                              "deployer")
                )  # fmt: skip
        else:
            out.append((cluster, f"{DEPLOYER_TAG} is {location!r}; expected public or in_vpc"))
    return out

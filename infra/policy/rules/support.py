"""Support windows: every version the program pins is supported on the day of the check."""

from __future__ import annotations

from collections.abc import Sequence

from infra.policy import support
from infra.policy.core import Resource, stack_rule
from infra.policy.documents import get

CLUSTER = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
DATABASE = "aws:rds/instance:Instance"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@stack_rule(
    id="MLOPS-SUP-001",
    title="Pinned versions are in support",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    description="The EKS version, the RDS engine version and the Helm chart versions the "
    "program pins are inside their support windows on the day of the check (the dated "
    "table in infra/policy/support.py), and kube-proxy matches the cluster's version: past "
    "them AWS refuses to create them, upgrades by force, or bills extended support.",
    remediation="Raise the pin (serving.kubernetes_version with matching add-ons, "
    "tracking.db_engine_version, monitoring.prometheus_chart_version) and the table.",
)
def _pins_in_support(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    day = support.today()
    out: list[tuple[Resource, str]] = []
    versions = {}
    for r in resources:
        problem = None
        if r.type == CLUSTER and isinstance(r.inputs.get("version"), str):
            versions[r.urn] = r.inputs["version"]
            problem = support.eks_problem(r.inputs["version"], day)
        elif r.type == DATABASE and r.inputs.get("engine") == "postgres":
            problem = support.postgres_problem(str(r.inputs.get("engineVersion", "")), day)
        elif r.type == HELM_RELEASE and isinstance(r.inputs.get("version"), str):
            problem = support.chart_problem(str(r.inputs.get("chart")), r.inputs["version"], day)
        if problem:
            out.append((r, problem))
    for r in resources:
        if r.type != ADDON or r.inputs.get("addonName") != "kube-proxy":
            continue
        cluster = next((versions[d] for d in r.dependencies if d in versions), None)
        addon = str(get(r.inputs, "addonVersion", ""))
        if cluster and not addon.startswith(f"v{cluster}."):
            out.append((r, f"kube-proxy {addon} does not match the cluster's Kubernetes {cluster}"))
    return out

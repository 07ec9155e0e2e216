"""Kubernetes objects against the cluster they land on: order, readiness and fit.

`pulumi up` creates what has no dependency path between it at once: an object created
before its Namespace, or a custom resource before the chart that installs its CRD, fails.
pulumi-kubernetes waits for every Deployment to become ready: one that cannot be ready on
a fresh platform times the whole `up` out. And a container whose limit is below its
footprint is killed by the kernel, over and over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.planning.k8s import memory_mib, mlflow_memory_floor_mib
from infra.policy.core import Resource, stack_rule
from infra.policy.workloads import POD_WORKLOADS, containers_of

NAMESPACE = "kubernetes:core/v1:Namespace"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CLUSTER_SCOPED_KINDS = frozenset(
    {"Namespace", "StorageClass", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
     "PersistentVolume", "PriorityClass"}
)  # fmt: skip
# Namespaces every cluster has: nothing in the plan creates them.
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# API groups of custom resources, and the chart whose CRDs define them.
CRD_CHARTS = {"monitoring.coreos.com": "kube-prometheus-stack"}
SKIP_AWAIT = "pulumi.com/skipAwait"

# How each workload the platform runs answers readiness on a platform that has nothing in
# it yet, as its own tests prove (tests/serve/test_serve_empty_registry.py; MLflow's
# /health answers before any experiment exists, tests/images). The key is the command.
READY_WHEN_EMPTY: dict[tuple[str, ...], str] = {
    ("python", "-m", "training_jobs.serve"): "/health/ready",
    ("mlflow", "server"): "/health",
}


def _namespace(inputs: Mapping[str, Any]) -> str | None:
    meta = inputs.get("metadata")
    value = meta.get("namespace") if isinstance(meta, Mapping) else None
    return str(value) if value else None


def _ancestors(urn: str, graph: Mapping[str, Sequence[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(urn, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, ()))
    return seen


@stack_rule(
    id="MLOPS-K8S-001",
    title="Kubernetes objects wait for their namespace and CRDs",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    description="Every namespaced object depends, directly or through others, on the "
    "Namespace it lives in (when the plan creates it; otherwise it must be a namespace every "
    "cluster has), and every custom resource on the Helm release that installs its CRD.",
    remediation="Create the namespace in the component that owns the workload and pass it "
    "in depends_on; make custom resources depend on the chart's release.",
)
def _ordered(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    graph = {r.urn: r.dependencies for r in resources}
    namespaces = {
        str(r.inputs["metadata"]["name"]): r.urn
        for r in resources
        if r.type == NAMESPACE and isinstance(r.inputs.get("metadata"), Mapping)
    }
    releases = {str(r.inputs.get("chart")): r.urn for r in resources if r.type == HELM_RELEASE}
    out = []
    for r in resources:
        if not r.type.startswith("kubernetes:") or r.type == HELM_RELEASE:
            continue
        kind = r.inputs.get("kind")
        ns = _namespace(r.inputs)
        before = _ancestors(r.urn, graph)
        if kind not in CLUSTER_SCOPED_KINDS and ns is not None and ns not in BUILTIN_NAMESPACES:
            owner = namespaces.get(ns)
            if owner is None:
                out.append((r, f"{kind} in namespace {ns!r}, which the plan does not create"))
            elif owner not in before:
                out.append((r, f"{kind} does not depend on its Namespace {ns!r}"))
        group = str(r.inputs.get("apiVersion", "")).split("/")[0]
        chart = CRD_CHARTS.get(group)
        if chart is not None and releases.get(chart) not in before:
            out.append((r, f"{kind} ({group}) does not depend on the {chart} release's CRDs"))
    return out


@stack_rule(
    id="MLOPS-K8S-002",
    title="Awaited workloads are ready on an empty platform",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    description="Every Deployment pulumi-kubernetes waits for runs a workload known to "
    "answer its readiness probe on a fresh platform (no model, no experiment yet): "
    "otherwise a first `pulumi up` waits 10 minutes and fails, and everything after it is "
    "never created.",
    remediation="Probe the workload's empty-platform readiness endpoint (READY_WHEN_EMPTY), "
    f"or annotate the Deployment {SKIP_AWAIT}: 'true' and say why.",
)
def _ready_when_empty(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    out = []
    for r in resources:
        if r.type not in POD_WORKLOADS:
            continue
        annotations = (r.inputs.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(SKIP_AWAIT, "")).lower() == "true":
            continue
        for c in containers_of(r.type, r.inputs):
            probe = (c.spec.get("readinessProbe") or {}).get("httpGet") or {}
            launched = c.command + c.args
            known = next(
                (p for cmd, p in READY_WHEN_EMPTY.items() if launched[: len(cmd)] == cmd), None
            )
            if known is None:
                out.append((r, f"container {c.name!r} runs {' '.join(launched) or 'its image'}: "
                               "no known readiness on an empty platform"))  # fmt: skip
            elif probe.get("path") != known:
                out.append(
                    (r, f"container {c.name!r} is probed at {probe.get('path')!r}; on an empty "
                        f"platform only {known!r} answers ready")
                )  # fmt: skip
    return out


def _quantity_mib(quantity: str | None) -> int | None:
    if quantity is None:
        return None
    try:
        return memory_mib(quantity)
    except ValueError:
        return None  # unknown at plan time, or not a quantity: judged as no limit


def _workers(args: Sequence[str]) -> int:
    for i, arg in enumerate(args):
        if arg in ("--workers", "-w") and i + 1 < len(args) and args[i + 1].isdigit():
            return int(args[i + 1])
    return 4  # `mlflow server`'s default


@stack_rule(
    id="MLOPS-K8S-003",
    title="MLflow's memory limit fits its footprint",
    severity="high",
    enforcement="mandatory",
    category="resilience",
    description="The MLflow server's memory limit is at least its measured footprint for "
    "the workers its command line starts (~280 MiB + ~290 MiB a worker, x1.5), and job "
    "execution (~2 GiB more) is off: below it the kernel kills it in a loop.",
    remediation="Raise tracking.memory or lower tracking.workers; keep "
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false.",
)
def _mlflow_fits(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    out = []
    for r in resources:
        for c in containers_of(r.type, r.inputs):
            if (c.command + c.args)[:2] != ("mlflow", "server"):
                continue
            workers = _workers(c.command + c.args)
            floor = mlflow_memory_floor_mib(workers)
            limit = _quantity_mib(c.memory_limit)
            if limit is None or limit < floor:
                out.append(
                    (r, f"container {c.name!r}: memory limit {c.memory_limit or 'none'} is below "
                        f"{floor}Mi, MLflow's footprint with {workers} worker(s)")
                )  # fmt: skip
            if str(c.env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")).lower() != "false":
                out.append((r, f"container {c.name!r}: job execution is on (~2 GiB more)"))
    return out

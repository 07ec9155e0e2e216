"""The containers a plan runs: Batch job definitions and the pods of Kubernetes workloads.

Several rules look at what a workload runs (its image, its environment, its limits) the
same way whichever kind declares it; this is the one reader of those shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.policy.core import Resource

JOB_DEFINITION = "aws:batch/jobDefinition:JobDefinition"
POD_WORKLOADS = frozenset(
    {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:DaemonSet",
        "kubernetes:batch/v1:Job",
    }
)
WORKLOAD_TYPES = frozenset({JOB_DEFINITION, *POD_WORKLOADS})


@dataclass(frozen=True)
class Container:
    """One container of a workload, in one shape for Batch and Kubernetes alike."""

    name: str
    image: str | None  # None when the plan cannot know it (computed during preview)
    env: Mapping[str, Any] = field(default_factory=dict)  # value, or the valueFrom source
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    memory_limit: str | None = None  # Kubernetes quantity, or MiB for Batch ("4096")
    spec: Mapping[str, Any] = field(default_factory=dict)  # the container as declared


def _pod_spec(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = inputs.get("spec")
    if not isinstance(spec, Mapping):
        return {}
    template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get(
        "template"
    )
    pod = (template or {}).get("spec") if isinstance(template, Mapping) else None
    return pod if isinstance(pod, Mapping) else {}


def containers_of(type_: str, inputs: Mapping[str, Any]) -> list[Container]:
    """Every container the resource would run (none for other types)."""
    if type_ == JOB_DEFINITION:
        raw = inputs.get("containerProperties")
        try:
            props = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            return []
        if not isinstance(props, Mapping):
            return []
        memory = next(
            (
                str(r.get("value"))
                for r in props.get("resourceRequirements") or []
                if r.get("type") == "MEMORY"
            ),
            None,
        )
        env: dict[str, Any] = {e["name"]: e.get("value") for e in props.get("environment") or []}
        env |= {s["name"]: {"secret": s.get("valueFrom")} for s in props.get("secrets") or []}
        image = props.get("image")
        return [
            Container(
                name="job",
                image=image if isinstance(image, str) else None,
                env=env,
                command=tuple(str(c) for c in props.get("command") or []),
                memory_limit=memory,
                spec=props,
            )
        ]
    if type_ not in POD_WORKLOADS:
        return []
    pod = _pod_spec(inputs)
    out = []
    for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        if not isinstance(c, Mapping):
            continue
        limits = (c.get("resources") or {}).get("limits") or {}
        image = c.get("image")
        out.append(
            Container(
                name=str(c.get("name")),
                image=image if isinstance(image, str) else None,
                env={e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []},
                command=tuple(str(x) for x in c.get("command") or []),
                args=tuple(str(x) for x in c.get("args") or []),
                memory_limit=str(limits["memory"]) if "memory" in limits else None,
                spec=c,
            )
        )
    return out


def workloads(resources: Sequence[Resource]) -> Iterator[tuple[Resource, Container]]:
    for resource in resources:
        for container in containers_of(resource.type, resource.inputs):
            yield resource, container


def pod_spec(resource: Resource) -> Mapping[str, Any]:
    return _pod_spec(resource.inputs)

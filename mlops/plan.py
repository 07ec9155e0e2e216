"""The offline plan: a stack's resource graph as plain data, serialised deterministically.

Plan tools (diff, policy, cost, critical path) read this data and never import `infra`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PlanResource:
    urn: str
    type: str
    name: str
    parent: str | None
    dependencies: list[str]
    custom: bool
    protect: bool
    retain_on_delete: bool
    inputs: dict[str, Any]
    # The mock provider's answer besides the inputs: id, ARN, endpoints (deterministic).
    computed: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    project: str
    stack: str
    resources: list[PlanResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    # urn → input path → the secret's shape with `{{random:<urn>}}` where a generated
    # password goes (mlops/recorder.py): what the local platform needs to wire secrets.
    secret_templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "project": self.project,
            "stack": self.stack,
            "resources": [asdict(r) for r in sorted(self.resources, key=lambda r: r.urn)],
            "outputs": self.outputs,
            "secret_templates": self.secret_templates,
        }

    def to_json(self) -> str:
        """Byte-identical for the same program and config: sorted keys, sorted resources."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f"plan schema {data.get('schema')!r} is not supported (expected {SCHEMA_VERSION})"
            )
        return cls(
            project=data["project"],
            stack=data["stack"],
            resources=[PlanResource(**r) for r in data["resources"]],
            outputs=data.get("outputs", {}),
            secret_templates=data.get("secret_templates", {}),
        )

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(path.read_text()))

    def by_urn(self) -> dict[str, PlanResource]:
        return {r.urn: r for r in self.resources}

    def of_type(self, type_: str) -> list[PlanResource]:
        return sorted((r for r in self.resources if r.type == type_), key=lambda r: r.urn)

    def counts_by_type(self) -> Counter[str]:
        return Counter(r.type for r in self.resources if r.type != "pulumi:pulumi:Stack")


def render_tree(plan: Plan) -> str:
    """Parent → children, then resource counts by type."""
    children: dict[str | None, list[PlanResource]] = {}
    for resource in sorted(plan.resources, key=lambda r: r.urn):
        children.setdefault(resource.parent, []).append(resource)
    lines: list[str] = []

    def walk(resource: PlanResource, prefix: str, last: bool, depth: int) -> None:
        marks = ("protect " if resource.protect else "") + (
            "retain " if resource.retain_on_delete else ""
        )
        label = f"{resource.type}  {resource.name}" + (f"  [{marks.strip()}]" if marks else "")
        if depth == 0:
            lines.append(label)
        else:
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{label}")
        kids = children.get(resource.urn, [])
        # Components first, then custom resources; each group by name.
        kids = sorted(kids, key=lambda r: (r.custom, r.name, r.type))
        next_prefix = prefix + ("   " if last else "│  ") if depth else ""
        for i, kid in enumerate(kids):
            walk(kid, next_prefix, i == len(kids) - 1, depth + 1)

    for root in children.get(None, []):
        walk(root, "", True, 0)
    counts = plan.counts_by_type()
    lines += ["", f"{sum(counts.values())} resources", *_count_table(counts)]
    return "\n".join(lines)


def _count_table(counts: Counter[str]) -> list[str]:
    width = max((len(t) for t in counts), default=0)
    return [f"  {t.ljust(width)}  {n:>4}" for t, n in sorted(counts.items())]

"""Settings that differ between stacks, from config and from the resulting resources.

Two views, so an unintended divergence shows up whichever way it was introduced:

- config: each stack file's `mlops:` settings parsed by `infra.config.parse` (defaults
  filled in), compared setting by setting;
- resources: plans matched by URN with the stack name normalised out
  (`mlops-dev-raw` ~ `mlops-prod-raw`), compared input by input, after normalising values
  that embed the stack name or a generated id (names, ARNs, autoname suffixes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops.plan import Plan
from mlops.review.diff import flatten

STACK_TOKEN = "<stack>"
_HASHY = re.compile(r"(?<![0-9a-zA-Z])(?=[0-9a-f]*[0-9])[0-9a-f]{7,}(?![0-9a-zA-Z])")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MOCK_ID = re.compile(r"\b(vpc|subnet|eip|lt|sg|natGateway|routeTable|igw)-[0-9a-zA-Z]{6,}\b")
_EKS_HOST = re.compile(r"[0-9A-F]{32}\.[a-z0-9]+\.[a-z0-9-]+\.eks\.amazonaws\.com")
IGNORED_LEAVES = ("tags.Name",)


def _token(stack: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9a-zA-Z]){re.escape(stack)}(?![0-9a-zA-Z])")


def normalise(value: Any, stack: str) -> Any:
    if not isinstance(value, str):
        return value
    text = _token(stack).sub(STACK_TOKEN, value)
    text = _UUID.sub("<uuid>", text)
    text = _EKS_HOST.sub("<eks-endpoint>", text)
    text = _MOCK_ID.sub(lambda m: f"{m.group(1)}-<id>", text)
    return _HASHY.sub("<id>", text)


def logical_key(urn: str, stack: str) -> str:
    """URN without the stack: `mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-<stack>-raw`."""
    tail = urn.split("::", 2)[-1]
    return _token(stack).sub(STACK_TOKEN, tail)


@dataclass(frozen=True)
class Divergence:
    where: str  # a setting path, or "<resource key> <property path>"
    values: dict[str, Any]  # stack → value ("—" when absent)


ABSENT = "—"


def compare(columns: Mapping[str, Mapping[str, Any]]) -> list[Divergence]:
    """{stack: {path: value}} → the paths whose value is not the same in every stack."""
    stacks = list(columns)
    paths = sorted({p for values in columns.values() for p in values})
    out = []
    for path in paths:
        values = {s: columns[s].get(path, ABSENT) for s in stacks}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            out.append(Divergence(path, values))
    return out


def config_columns(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Parsed configs (`PlatformConfig.model_dump(mode='json')`) → flattened settings."""
    out: dict[str, dict[str, Any]] = {}
    for stack, dumped in configs.items():
        data = {k: v for k, v in dumped.items() if k != "stack"}
        out[stack] = flatten(data)  # config values never embed the stack name
    return out


def resource_columns(plans: Sequence[Plan]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for plan in plans:
        column: dict[str, Any] = {}
        for r in plan.resources:
            if not r.custom:
                continue
            # Matched by the stack-free URN; shown as `Kind name` to keep the table narrow.
            name = logical_key(r.urn, plan.stack).rsplit("::", 1)[-1]
            key = f"{r.type.rsplit(':', 1)[-1]} {name}"
            column[f"{key} (exists)"] = True
            for path, value in flatten(r.inputs).items():
                if path in IGNORED_LEAVES or path.startswith("tags.mlops:"):
                    continue
                column[f"{key} {path}"] = normalise(value, plan.stack)
        out[plan.stack] = column
    return out


def render(title: str, divergences: Sequence[Divergence], stacks: Sequence[str]) -> str:
    if not divergences:
        return f"{title}: no differences"
    rows = [(d.where, *(_cell(d.values[s]) for s in stacks)) for d in divergences]
    headers = ("setting", *stacks)
    widths = [min(70, max(len(h), *(len(r[i]) for r in rows))) for i, h in enumerate(headers)]
    lines = [f"{title}: {len(divergences)} difference(s)"]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        lines.append("  " + "  ".join(_clip(c, w).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

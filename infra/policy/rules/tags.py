"""Tags: every taggable resource carries the platform's ownership tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule

REQUIRED_TAGS = ("mlops:stack", "mlops:environment", "mlops:owner")


@resource_rule(
    id="MLOPS-TAG-001",
    title="Platform tags",
    severity="medium",
    enforcement="mandatory",
    category="governance",
    types=("*",),  # every type that takes tags (documents.taggable)
    description="Taggable resources carry mlops:stack, mlops:environment and mlops:owner.",
    remediation="Merge the platform tag map into tags (infra/planning/tags.py).",
)
def _tags(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    tags = inputs.get("tags") or {}
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    return [f"missing tags: {', '.join(missing)}"] if missing else []

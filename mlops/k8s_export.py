"""The plan's Kubernetes objects as manifests, for schema validation and scanners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlops.plan import Plan

# Inputs pulumi_kubernetes records that are not part of the object itself.
_NOT_OBJECT_FIELDS = frozenset({"__inputs"})
# Resources of the Kubernetes provider that are not Kubernetes objects.
_NOT_OBJECTS = frozenset({"kubernetes:helm.sh/v3:Release"})


def kubernetes_objects(plan: Plan) -> list[dict[str, Any]]:
    """Every Kubernetes object the plan declares, as the API server would receive it."""
    objects = []
    for resource in sorted(plan.resources, key=lambda r: r.urn):
        if (
            resource.custom
            and resource.type.startswith("kubernetes:")
            and resource.type not in _NOT_OBJECTS
        ):
            body = {k: v for k, v in resource.inputs.items() if k not in _NOT_OBJECT_FIELDS}
            objects.append(body)
    return objects


def manifest_filename(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    namespace = metadata.get("namespace", "cluster")
    return f"{namespace}--{obj['kind'].lower()}--{metadata.get('name', 'unnamed')}.yaml"


def write_manifests(plan: Plan, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for obj in kubernetes_objects(plan):
        path = directory / manifest_filename(obj)
        path.write_text(yaml.safe_dump(obj, sort_keys=True))
        written.append(path)
    return written

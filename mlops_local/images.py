"""Which local image is the image a plan runs.

A plan's workloads run `<repository>@sha256:<digest>`, where the digest is what the
registry will answer for the image the program builds. Here no registry holds it; what is
here is the local build of the same sources (`mlops images build`), labelled with the
context digest the plan's image resource carries. So a plan image is found by content:
the same sources, the same image, or a clear error when the checkout and the plan differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from mlops_local.engine import Engine
from training_jobs import contract

IMAGE_TYPE: Final = "docker-build:index:Image"


class ImageNotBuilt(Exception):
    """The plan runs an image that is not built here; says which and what to run."""


def plan_image_sources(plan: Mapping[str, Any]) -> dict[str, str]:
    """Repository → context digest of every image the plan builds."""
    sources: dict[str, str] = {}
    for resource in plan.get("resources") or ():
        if resource.get("type") != IMAGE_TYPE:
            continue
        inputs = resource.get("inputs") or {}
        tags = inputs.get("tags") or []
        digest = (inputs.get("labels") or {}).get(contract.IMAGE_LABEL_CONTEXT_DIGEST)
        if tags and digest:
            sources[str(tags[0]).rsplit(":", 1)[0]] = str(digest)
    return sources


def local_image_resolver(engine: Engine, plan: Mapping[str, Any]) -> Callable[[str], str]:
    """`ref` (as the plan writes it) → the local image built from the same sources."""
    sources = plan_image_sources(plan)

    def resolve(ref: str) -> str:
        repository, at, digest = ref.partition("@")
        if not at or not digest.startswith("sha256:"):
            raise ImageNotBuilt(f"{ref}: the plan names an image by tag, not by digest")
        context = sources.get(repository)
        if context is None:
            raise ImageNotBuilt(
                f"{ref}: the plan does not build this image (given as a digest?); the local "
                "platform runs only images it can build from this checkout"
            )
        found = engine.images_with_label(contract.IMAGE_LABEL_CONTEXT_DIGEST, context)
        if not found:
            raise ImageNotBuilt(
                f"{ref}: no local image is built from its sources (context {context[:12]}); "
                "run `make images` — or the plan was recorded from a different checkout"
            )
        return found[0]

    return resolve

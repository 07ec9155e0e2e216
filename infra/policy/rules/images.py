"""Images: every workload runs an exact image, the one the program built or was given."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.policy.core import Context, Resource, Rule, register, stack_rule
from infra.policy.documents import as_list
from infra.policy.workloads import WORKLOAD_TYPES, containers_of, workloads

IMAGE = "docker-build:index:Image"
# `<registry>/<path>@sha256:<64 hex>`, no tag: what runs is what was reviewed.
_DIGEST_REFERENCE = re.compile(r"^(?P<repository>[^@\s]+)@sha256:[0-9a-f]{64}$")


def _repository(reference: str) -> str | None:
    found = _DIGEST_REFERENCE.match(reference)
    return found["repository"] if found else None


def _has_tag(repository: str) -> bool:
    # A colon after the last slash is a tag (`host:port/name` is a registry port).
    return ":" in repository.rsplit("/", 1)[-1]


def _by_digest(type_: str, inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    problems = []
    for container in containers_of(type_, inputs):
        image = container.image
        if image is None or image == "[unknown]":
            continue  # computed during preview: the digest comes from the build
        repository = _repository(image)
        if repository is None:
            problems.append(f"container {container.name!r} runs {image!r}: not a digest reference")
        elif _has_tag(repository):
            problems.append(
                f"container {container.name!r} runs {image!r}: names a tag beside the digest"
            )
    return problems


register(
    Rule(
        id="MLOPS-IMG-001",
        title="Workloads run images by digest",
        severity="high",
        enforcement="mandatory",
        category="security",
        types=tuple(sorted(WORKLOAD_TYPES)),
        description="Every container of a job definition or Kubernetes workload names its "
        "image as <repository>@sha256:<digest> and no tag: a tag can be moved or pushed over, "
        "a digest is the exact image review saw.",
        remediation="Use the digest output of the image build (infra/components/images.py), "
        "or set mlops:images.digests for images built elsewhere.",
        check_typed=_by_digest,
    )
)


@stack_rule(
    id="MLOPS-IMG-002",
    title="Built images roll their workloads",
    severity="high",
    enforcement="mandatory",
    category="security",
    description="A workload that runs an image from a repository the program builds into "
    "takes the digest from that build (depends on the Image resource), so a code change "
    "rolls it; a digest written by hand would keep running the old code unseen.",
    remediation="Pass the Images component's ref output into the workload instead of a "
    "literal reference.",
)
def _from_the_build(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    built: dict[str, str] = {}  # repository → the Image resource's URN
    for r in resources:
        if r.type == IMAGE:
            for tag in as_list(r.inputs.get("tags")):
                if isinstance(tag, str) and ":" in tag.rsplit("/", 1)[-1]:
                    built[tag.rsplit(":", 1)[0]] = r.urn
    out = []
    for resource, container in workloads(resources):
        repository = _repository(container.image or "")
        source = built.get(repository or "")
        if source is not None and source not in resource.dependencies:
            out.append(
                (
                    resource,
                    f"container {container.name!r} runs {container.image} from a repository "
                    f"the program builds ({source.rsplit('::', 1)[-1]}) without depending on "
                    "the build",
                )
            )
    return out

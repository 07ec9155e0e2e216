"""The workload images as data: what each is built from, how its content is named.

Three images, one Containerfile each under `images/<kind>/`, all built with the repository
root as their context:

- `jobs`: the Batch job definitions (prepare, train, evaluate, register, drift);
- `tracking`: the MLflow tracking server (with the PostgreSQL driver RDS needs);
- `server`: the model server (with what loading the trained models needs).

An image's *context digest* is a hash over exactly the files its Containerfile copies, so
it changes when, and only when, what goes into the image changes. The program labels the
image with it, the offline plan derives the mock image digest from it, and `mlops diff`
reads it to say which workloads roll because of a code change. Everything here is pure:
file contents are handed in (see `infra/sources.py` for the reading).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from training_jobs import contract

# Paths under a copied directory that never reach an image (the `.dockerignore` says the
# same; a test keeps the two in step).
EXCLUDED_NAMES: Final = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
# Images run on the platform's x86_64 nodes and Batch instances.
PLATFORM: Final = "linux/amd64"


@dataclass(frozen=True)
class ImageSpec:
    """One workload image: its Containerfile, its lock file and what else it copies."""

    kind: str
    title: str
    extra: str  # the pyproject extra whose pinned closure the image installs
    sources: tuple[str, ...]  # files or directories under the root it copies besides these

    @property
    def containerfile(self) -> str:
        return f"images/{self.kind}/Containerfile"

    @property
    def lock_file(self) -> str:
        return f"images/{self.kind}/requirements.lock"

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every path the build reads from the context, in a stable order."""
        return (self.containerfile, self.lock_file, *self.sources)

    @property
    def local_name(self) -> str:
        """Where `mlops images build` puts it in the local engine."""
        return f"localhost/mlops-{self.kind}"


IMAGES: Final[Mapping[str, ImageSpec]] = {
    contract.IMAGE_JOBS: ImageSpec(
        contract.IMAGE_JOBS,
        "mlops-platform jobs: prepare, train, evaluate, register, drift",
        "jobs",
        ("pyproject.toml", "training_jobs"),
    ),
    contract.IMAGE_TRACKING: ImageSpec(
        contract.IMAGE_TRACKING,
        "mlops-platform tracking: the MLflow tracking server and model registry",
        "tracking",
        (),
    ),
    contract.IMAGE_SERVER: ImageSpec(
        contract.IMAGE_SERVER,
        "mlops-platform model server",
        "serve",
        ("pyproject.toml", "training_jobs"),
    ),
}


def excluded(relative_path: str) -> bool:
    """Whether a path inside a copied directory stays out of the image."""
    return any(
        fnmatch.fnmatch(part, pattern)
        for part in relative_path.split("/")
        for pattern in EXCLUDED_NAMES
    )


def context_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (path, content) of every file, order-independent: the image's source."""
    lines = sorted(f"{path}\0{hashlib.sha256(data).hexdigest()}" for path, data in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def build_digest(context: str, *, build_args: Mapping[str, str], platform: str = PLATFORM) -> str:
    """Everything that decides the built bytes: the context and the build's parameters."""
    canonical = json.dumps(
        {"context": context, "build_args": dict(build_args), "platform": platform},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def image_labels(spec: ImageSpec, *, context: str, revision: str) -> dict[str, str]:
    """OCI labels every build sets, in `pulumi up` and in `mlops images build` alike."""
    return {
        "org.opencontainers.image.title": f"mlops-{spec.kind}",
        "org.opencontainers.image.description": spec.title,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.licenses": "Apache-2.0",
        contract.IMAGE_LABEL_CONTEXT_DIGEST: context,
    }


def containerfile_base_image(containerfile: str) -> str:
    """The default of `ARG BASE_IMAGE=` in a Containerfile (the pinned official image)."""
    for line in containerfile.splitlines():
        stripped = line.strip()
        if stripped.startswith("ARG BASE_IMAGE="):
            return stripped.removeprefix("ARG BASE_IMAGE=")
    raise ValueError("the Containerfile declares no `ARG BASE_IMAGE=<default>`")

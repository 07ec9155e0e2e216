"""The image build contexts as they are in this checkout: the one place image planning reads
files (and asks git for the source revision). `infra/planning/images.py` stays pure."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.planning.images import ImageSpec, context_digest, excluded

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
UNKNOWN_REVISION = "unknown"


class ImageSourceError(Exception):
    """An image cannot be built from this checkout; the message says what to fix."""


@dataclass(frozen=True)
class ImageSource:
    spec: ImageSpec
    context_digest: str
    revision: str  # the last commit that changed the context, or "unknown"


def context_files(root: Path, spec: ImageSpec) -> list[tuple[str, bytes]]:
    """(path relative to root, content) of every file the image's Containerfile copies."""
    files: list[tuple[str, bytes]] = []
    for entry in spec.inputs:
        path = root / entry
        if path.is_file():
            files.append((entry, path.read_bytes()))
        elif path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = child.relative_to(root).as_posix()
                if not excluded(relative):
                    files.append((relative, child.read_bytes()))
        else:
            hint = " (regenerate it with `mlops images lock`)" if entry == spec.lock_file else ""
            raise ImageSourceError(f"image {spec.kind!r}: {entry} does not exist in {root}{hint}")
    return files


def source_revision(root: Path, paths: tuple[str, ...]) -> str:
    """The last commit that touched `paths`: stable across commits that do not change the
    image, unlike HEAD, so a docs change does not relabel (and roll) every workload."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", str(root), "log", "-1", "--format=%H", "--", *paths],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN_REVISION
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and revision else UNKNOWN_REVISION


def image_source(spec: ImageSpec, root: Path = REPOSITORY_ROOT) -> ImageSource:
    return ImageSource(
        spec=spec,
        context_digest=context_digest(context_files(root, spec)),
        revision=source_revision(root, spec.inputs),
    )


def program_relative(path: Path) -> str:
    """`path` relative to the working directory the engine gives the program and its
    providers (the `main:` directory of Pulumi.yaml): the same string on every machine,
    where an absolute path would differ and make the image provider see a change."""
    return os.path.relpath(path, Path.cwd())

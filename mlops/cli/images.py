"""`mlops images lock|build`: thin click commands over `mlops.images`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from infra.planning.images import IMAGES
from infra.sources import ImageSourceError
from mlops.cli import stacks
from mlops.cli.errors import Failed
from mlops.cli.options import project_dir_option
from mlops.images import (
    SYSTEM_CA_BUNDLE,
    ImageBuildError,
    build_image,
    compile_lock,
    resolve_base_image,
)
from mlops_local.engine import EngineError, EngineUnavailable, detect

_image_option = click.option(
    "--image",
    "kinds",
    type=click.Choice(sorted(IMAGES)),
    multiple=True,
    help="Default: every image.",
)


@click.group("images")
def images_group() -> None:
    """Lock and build the workload images (jobs, tracking, server) on this machine."""


@images_group.command("lock")
@_image_option
@project_dir_option
def lock_command(kinds: tuple[str, ...], project_dir: Path | None) -> None:
    """Regenerate images/<image>/requirements.lock from pyproject.toml (needs the index)."""
    root = stacks.project(project_dir).root
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    for kind in kinds or tuple(IMAGES):
        spec = IMAGES[kind]
        try:
            text = compile_lock(root, spec, uv)
        except ImageBuildError as exc:
            raise Failed(str(exc)) from exc
        (root / spec.lock_file).write_text(text)
        click.echo(f"wrote {spec.lock_file} ({text.count('==')} pins)", err=True)


@images_group.command("build")
@_image_option
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["podman", "docker"]),
    default=None,
    help="Default: $MLOPS_CONTAINER_ENGINE, else podman, else docker.",
)
@click.option(
    "--base-image",
    default=None,
    help="Build on this base instead of the Containerfiles' pinned default.",
)
@project_dir_option
def build_command(
    kinds: tuple[str, ...],
    engine_name: str | None,
    base_image: str | None,
    project_dir: Path | None,
) -> None:
    """Build the images into the local engine; unchanged sources are not rebuilt."""
    root = stacks.project(project_dir).root
    try:
        engine = detect(engine_name).check_ready()
        base = resolve_base_image(engine, root, base_image, lambda line: click.echo(line, err=True))
        for kind in kinds or tuple(IMAGES):
            built = build_image(
                engine, root, IMAGES[kind], base_image=base, ca_bundle=SYSTEM_CA_BUNDLE
            )
            how = "cached" if built.cached else f"built in {built.seconds:.0f}s"
            click.echo(
                f"  {built.kind:<9} {built.ref:<44} {built.size_bytes / 1e6:7.0f} MB  {how}",
                err=True,
            )
    except (EngineUnavailable, ImageBuildError, ImageSourceError, EngineError) as exc:
        raise Failed(str(exc)) from exc

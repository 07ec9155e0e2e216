"""`mlops images lock|build`: thin click commands over `mlops.images`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from infra.planning.images import IMAGES
from infra.sources import ImageSourceError
from mlops.images import (
    SYSTEM_CA_BUNDLE,
    ImageBuildError,
    build_image,
    compile_lock,
    resolve_base_image,
)
from mlops.stackfiles import StackFileError, find_project
from mlops_local.engine import EngineError, EngineUnavailable, detect

EXIT_FAIL = 1
_KINDS = click.Choice(sorted(IMAGES))


def _root(project_dir: Path | None) -> Path:
    try:
        return find_project(project_dir).root
    except StackFileError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("images")
def images_group() -> None:
    """Lock and build the workload images (jobs, tracking, server) on this machine."""


@images_group.command("lock")
@click.option("--image", "kinds", type=_KINDS, multiple=True, help="Default: every image.")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def lock_command(kinds: tuple[str, ...], project_dir: Path | None) -> None:
    """Regenerate images/<image>/requirements.lock from pyproject.toml (needs the index)."""
    root = _root(project_dir)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    for kind in kinds or tuple(IMAGES):
        spec = IMAGES[kind]
        try:
            text = compile_lock(root, spec, uv)
        except ImageBuildError as exc:
            raise click.ClickException(str(exc)) from exc
        (root / spec.lock_file).write_text(text)
        click.echo(f"wrote {spec.lock_file} ({text.count('==')} pins)", err=True)


@images_group.command("build")
@click.option("--image", "kinds", type=_KINDS, multiple=True, help="Default: every image.")
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
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def build_command(
    kinds: tuple[str, ...],
    engine_name: str | None,
    base_image: str | None,
    project_dir: Path | None,
) -> None:
    """Build the images into the local engine; unchanged sources are not rebuilt."""
    root = _root(project_dir)
    try:
        engine = detect(engine_name).check_ready()
        base = resolve_base_image(engine, root, base_image, lambda line: click.echo(line, err=True))
        rows = []
        for kind in kinds or tuple(IMAGES):
            built = build_image(
                engine, root, IMAGES[kind], base_image=base, ca_bundle=SYSTEM_CA_BUNDLE
            )
            how = "cached" if built.cached else f"built in {built.seconds:.0f}s"
            rows.append(
                f"  {built.kind:<9} {built.ref:<44} {built.size_bytes / 1e6:7.0f} MB  {how}"
            )
            click.echo(rows[-1], err=True)
    except EngineUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except (ImageBuildError, ImageSourceError, EngineError) as exc:
        raise click.ClickException(str(exc)) from exc

"""`mlops images`: lock the workload images' dependencies and build the images locally.

`pulumi up` builds and pushes the same Containerfiles with the docker-build provider; this
is the local path (the tests, the local platform, a developer checking a Containerfile).
A local build is tagged `localhost/mlops-<image>:<build digest>` and labelled with its
context digest, so a rebuild of unchanged sources is a no-op and the local platform finds
the image a plan means by content, not by name.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.planning.images import (
    IMAGES,
    ImageSpec,
    build_digest,
    containerfile_base_image,
    image_labels,
)
from infra.sources import image_source
from mlops_local.engine import Engine, EngineError

# The lock files are resolved for the images' platform, not the machine running the lock.
LOCK_PYTHON: Final = "3.11"
LOCK_PLATFORM: Final = "x86_64-manylinux_2_28"
LOCK_COMMAND: Final = "mlops images lock"
_INPUTS_LINE = re.compile(r"^# inputs: sha256:([0-9a-f]{64})$", re.MULTILINE)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
# What a workload image must never contain: the infrastructure SDK, the AWS emulator.
FORBIDDEN_IN_IMAGES: Final = ("pulumi", "pulumi-aws", "pulumi-kubernetes", "moto")

# Machines without a registry build the base from Debian's packages (about 20-80 s).
LOCAL_BASE_IMAGE: Final = "localhost/mlops-base:bookworm"
_DEBIAN_PATH: Final = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Handed to pip inside the build as a secret where TLS is intercepted; never in a layer.
SYSTEM_CA_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")


class ImageBuildError(Exception):
    """An image cannot be locked or built; the message says what to do."""


# ---------------------------------------------------------------------------------------
# Lock files


def image_requirements(pyproject_text: str, spec: ImageSpec) -> list[str]:
    """What an image's lock pins: its extra, plus the build backend when the image installs
    the project itself (pip builds it there without network isolation)."""
    project = tomllib.loads(pyproject_text)
    extras = project["project"].get("optional-dependencies", {})
    if spec.extra not in extras:
        raise ImageBuildError(
            f"pyproject.toml has no extra {spec.extra!r} for the {spec.kind} image"
        )
    requirements = list(extras[spec.extra])
    if "pyproject.toml" in spec.sources:
        requirements += project["build-system"]["requires"]
    return sorted(requirements)


def inputs_digest(requirements: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()


def lock_header(spec: ImageSpec, requirements: Sequence[str]) -> str:
    return (
        f"# The {spec.kind} image's pinned closure of the `{spec.extra}` extra in pyproject.toml"
        f"\n# (CPython {LOCK_PYTHON}, {LOCK_PLATFORM}). Regenerate with `{LOCK_COMMAND}`;"
        "\n# a test fails when the extra changed since.\n"
        f"# inputs: sha256:{inputs_digest(requirements)}\n"
    )


def pins(lock_text: str) -> dict[str, str]:
    return {canonicalize_name(m[1]): m[2] for m in _PIN.finditer(lock_text)}


def lock_problems(pyproject_text: str, lock_text: str, spec: ImageSpec) -> list[str]:
    """Why a lock file no longer matches pyproject.toml (empty: it is current)."""
    requirements = image_requirements(pyproject_text, spec)
    problems = []
    found = _INPUTS_LINE.search(lock_text)
    if found is None or found[1] != inputs_digest(requirements):
        problems.append(
            f"{spec.lock_file} was locked from other requirements than the "
            f"`{spec.extra}` extra now lists"
        )
    pinned = pins(lock_text)
    for text in requirements:
        requirement = Requirement(text)
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{spec.lock_file} pins no version of {requirement.name}")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(
                f"{spec.lock_file} pins {requirement.name}=={version}, outside {requirement}"
            )
    for name in FORBIDDEN_IN_IMAGES:
        if name in pinned:
            problems.append(f"{spec.lock_file} pins {name}: no workload image may contain it")
    return [f"{p}; run `{LOCK_COMMAND}`" for p in problems]


def compile_lock(root: Path, spec: ImageSpec, uv: str) -> str:
    """Resolve the image's requirements with uv into a hash-pinned lock file's text."""
    requirements = image_requirements((root / "pyproject.toml").read_text(), spec)
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            uv,
            "pip",
            "compile",
            "-",
            "--python-version",
            LOCK_PYTHON,
            "--python-platform",
            LOCK_PLATFORM,
            "--generate-hashes",
            "--no-header",
            "--quiet",
        ],
        input="\n".join(requirements) + "\n",
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    if result.returncode != 0:
        raise ImageBuildError(f"uv could not lock the {spec.kind} image:\n{result.stderr}")
    return lock_header(spec, requirements) + result.stdout


# ---------------------------------------------------------------------------------------
# Local builds


@dataclass(frozen=True)
class BuiltImage:
    kind: str
    ref: str
    context_digest: str
    cached: bool
    seconds: float
    size_bytes: int


def local_tag(spec: ImageSpec, digest: str) -> str:
    return f"{spec.local_name}:{digest[:16]}"


def resolve_base_image(
    engine: Engine, root: Path, requested: str | None, say: Callable[[str], None]
) -> str | None:
    """The base to build on: None for the Containerfiles' pinned default when it is here or
    can be pulled; else a Debian 12 base built with mmdebstrap."""
    if requested:
        if not engine.image_exists(requested):
            engine.command("pull", requested)
        return requested
    default = containerfile_base_image((root / IMAGES["jobs"].containerfile).read_text())
    if engine.image_exists(default):
        return None
    pulled = engine.command("pull", default, check=False, timeout_s=600)
    if pulled.returncode == 0:
        return None
    reason = (pulled.stderr or pulled.stdout).strip().splitlines()[-1:] or ["no answer"]
    if engine.image_exists(LOCAL_BASE_IMAGE):
        say(f"base: {default} cannot be pulled here; using {LOCAL_BASE_IMAGE} (built before)")
        return LOCAL_BASE_IMAGE
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            f"the base image {default} cannot be pulled ({reason[0]}) and mmdebstrap is not "
            "installed to build one from Debian's packages; give --base-image or run "
            "`make engine` as root"
        )
    say(
        f"base: {default} cannot be pulled here ({reason[0]}); building {LOCAL_BASE_IMAGE} "
        "from Debian 12 packages with mmdebstrap"
    )
    build_debian_base(engine)
    return LOCAL_BASE_IMAGE


def build_debian_base(engine: Engine) -> None:
    with tempfile.TemporaryDirectory(prefix="mlops-base-") as scratch:
        tarball = Path(scratch) / "base.tar"
        result = subprocess.run(  # noqa: S603 - fixed argv
            [  # noqa: S607 - mmdebstrap from PATH, as the user installed it
                "mmdebstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(tarball),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ImageBuildError(f"mmdebstrap failed:\n{result.stderr[-2000:]}")
        # An imported root file system has no ENV: give it the PATH images expect.
        engine.command("import", "--change", f"ENV {_DEBIAN_PATH}", str(tarball), LOCAL_BASE_IMAGE)


def build_image(
    engine: Engine,
    root: Path,
    spec: ImageSpec,
    *,
    base_image: str | None,
    ca_bundle: Path | None,
) -> BuiltImage:
    started = time.perf_counter()
    problems = lock_problems(
        (root / "pyproject.toml").read_text(), (root / spec.lock_file).read_text(), spec
    )
    if problems:
        raise ImageBuildError("; ".join(problems))
    source = image_source(spec, root)
    build_args = {"BASE_IMAGE": base_image} if base_image else {}
    tag = local_tag(spec, build_digest(source.context_digest, build_args=build_args))
    if engine.image_exists(tag):
        return BuiltImage(
            spec.kind, tag, source.context_digest, True, 0.0, engine.image_size_bytes(tag)
        )
    argv = [
        *engine.build_command(),
        "--network",
        "host",
        "--file",
        spec.containerfile,
        "--tag",
        tag,
        "--tag",
        f"{spec.local_name}:latest",
    ]
    for key, value in image_labels(
        spec, context=source.context_digest, revision=source.revision
    ).items():
        argv += ["--label", f"{key}={value}"]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if ca_bundle is not None and ca_bundle.is_file():
        argv += ["--secret", f"id=pip-ca,src={ca_bundle}"]
    argv.append(str(root))
    try:
        engine.command(*argv, env=engine.build_env(), timeout_s=3600)
    except EngineError as exc:
        raise ImageBuildError(f"building the {spec.kind} image failed: {exc}") from exc
    return BuiltImage(
        spec.kind,
        tag,
        source.context_digest,
        False,
        time.perf_counter() - started,
        engine.image_size_bytes(tag),
    )

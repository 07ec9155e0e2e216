"""The container engine on this machine: podman (preferred: daemonless, and `kube play`
runs Kubernetes objects as written) or docker. One place knows how to call either.

Every container runs with the host's network: these machines allow no bridge networks,
and on the host network a pod's ports are the ports the plan declares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

EngineName = Literal["podman", "docker"]
ENGINES: Final[tuple[EngineName, ...]] = ("podman", "docker")
# Set to choose the engine when both are installed.
ENGINE_VARIABLE: Final = "MLOPS_CONTAINER_ENGINE"


class EngineUnavailable(Exception):
    """No container engine can run here; the message is one line saying what is missing."""


class EngineError(Exception):
    """An engine command failed; the message ends with what the engine printed."""


@dataclass(frozen=True)
class Engine:
    name: EngineName
    binary: str

    def command(
        self,
        *args: str,
        timeout_s: float | None = 600,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *args]
        try:
            result = subprocess.run(  # noqa: S603 - argv built here, no shell
                argv,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=None if env is None else {**os.environ, **env},
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"`{' '.join(argv[:4])} …` did not finish in {timeout_s}s") from exc
        if check and result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise EngineError(f"`{' '.join(argv[:4])} …` exited {result.returncode}:\n{tail}")
        return result

    def check_ready(self) -> Engine:
        """The engine answers (docker's daemon runs); else EngineUnavailable, one line."""
        probe = (
            ("info", "--format", "{{.Host.OS}}")
            if self.name == "podman"
            else ("version", "--format", "{{.Server.Version}}")
        )
        result = self.command(*probe, check=False, timeout_s=60)
        if result.returncode != 0:
            first = (result.stderr or result.stdout).strip().splitlines()[:1]
            raise EngineUnavailable(
                f"{self.name} is installed but cannot run containers: "
                f"{first[0] if first else 'no answer'}"
            )
        return self

    def build_command(self) -> list[str]:
        """How this engine builds with BuildKit features (secret and cache mounts)."""
        if self.name == "podman":
            return ["build"]
        if self.command("buildx", "version", check=False, timeout_s=30).returncode == 0:
            return ["buildx", "build", "--load"]
        return ["build"]  # engines before 23.0 build with BuildKit when DOCKER_BUILDKIT=1

    def build_env(self) -> dict[str, str]:
        return {"DOCKER_BUILDKIT": "1"} if self.name == "docker" else {}

    def image_exists(self, ref: str) -> bool:
        return self.command("image", "inspect", ref, check=False, timeout_s=60).returncode == 0

    def inspect_image(self, ref: str) -> dict[str, object]:
        data = json.loads(self.command("image", "inspect", ref, timeout_s=60).stdout)
        if not data:
            raise EngineError(f"{self.name} knows no image {ref}")
        first: dict[str, object] = data[0]
        return first

    def image_labels(self, ref: str) -> dict[str, str]:
        info = self.inspect_image(ref)
        config = info.get("Config")
        labels = (config.get("Labels") if isinstance(config, dict) else None) or info.get("Labels")
        return {str(k): str(v) for k, v in (labels or {}).items()}  # type: ignore[union-attr]

    def image_size_bytes(self, ref: str) -> int:
        size = self.inspect_image(ref).get("Size", 0)
        return int(size) if isinstance(size, int | float | str) else 0

    def images_with_label(self, key: str, value: str) -> list[str]:
        """Local image references (repository:tag) carrying the label `key=value`."""
        result = self.command(
            "images", "--filter", f"label={key}={value}", "--format", "{{.Repository}}:{{.Tag}}"
        )
        refs = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        return sorted(r for r in refs if not r.endswith(":<none>"))


def detect(preferred: str | None = None, paths: Sequence[str] | None = None) -> Engine:
    """The engine to use: `preferred` (or $MLOPS_CONTAINER_ENGINE), else podman, else docker."""
    choice = preferred or os.environ.get(ENGINE_VARIABLE) or None
    if choice is not None and choice not in ENGINES:
        raise EngineUnavailable(
            f"{ENGINE_VARIABLE}={choice!r} is not a known engine; use one of {', '.join(ENGINES)}"
        )
    candidates: Sequence[str] = (choice,) if choice else ENGINES
    search = os.pathsep.join(paths) if paths is not None else None
    for name in candidates:
        binary = shutil.which(name, path=search)
        if binary is not None:
            return Engine("podman" if name == "podman" else "docker", binary)
    wanted = choice or "podman or docker"
    raise EngineUnavailable(
        f"no container engine: {wanted} is not installed (run `make engine` as root on "
        "Debian, or install podman)"
    )

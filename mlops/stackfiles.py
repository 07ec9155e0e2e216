"""Read a Pulumi project and its stack files the way the Pulumi CLI would, without it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class StackFileError(Exception):
    """The project or a stack file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    main: Path

    def stack_file(self, stack: str) -> Path:
        return self.root / f"Pulumi.{stack}.yaml"

    def stacks(self) -> list[str]:
        return sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for p in self.root.glob("Pulumi.*.yaml")
        )


def find_project(start: Path | None = None) -> Project:
    """The nearest directory at or above `start` holding a Pulumi.yaml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "Pulumi.yaml"
        if candidate.is_file():
            data = _load_yaml(candidate)
            name = data.get("name")
            if not isinstance(name, str):
                raise StackFileError(f"{candidate}: 'name' is missing")
            return Project(directory, name, directory / str(data.get("main", ".")))
    raise StackFileError(f"no Pulumi.yaml in {here} or any parent; run from the project")


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as the engine hands it to a program: `ns:key` → string."""

    values: dict[str, str]
    secret_keys: tuple[str, ...]


SECRET_PLACEHOLDER = "[secret]"


def read_stack_config(project: Project, stack: str) -> StackConfig:
    path = project.stack_file(stack)
    if not path.is_file():
        known = ", ".join(project.stacks()) or "none"
        raise StackFileError(
            f"unknown stack {stack!r}: {path.name} does not exist (stacks here: {known})"
        )
    data = _load_yaml(path)
    config = data.get("config", {}) or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: 'config' must be a mapping of key: value")
    values: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in config.items():
        full = key if ":" in key else f"{project.name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Ciphertext needs the stack's secrets provider; the plan never decrypts.
            values[full] = SECRET_PLACEHOLDER
            secrets.append(full)
            continue
        values[full] = value if isinstance(value, str) else json.dumps(value)
    return StackConfig(values, tuple(sorted(secrets)))


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise StackFileError(f"{path.name}: {problem}{where}") from None
    except OSError as exc:
        raise StackFileError(f"{path.name}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackFileError(f"{path.name}: expected a YAML mapping at the top level")
    return data

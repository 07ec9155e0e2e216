"""The seam between `mlops env` and Pulumi: a small protocol, and the Automation API behind it.

Everything `mlops env` decides lives in `mlops.env.core` and talks to a `Workspace`; tests
pass a fake one. `AutomationWorkspace` is the real one: `pulumi.automation.LocalWorkspace`
over the project directory, which drives the Pulumi CLI the user has installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

OnOutput = Callable[[str], None]

# Where stacks live when the user has chosen no backend: a local directory, so trying
# `mlops env up` needs no account. Teams share PR stacks through PULUMI_BACKEND_URL (an S3
# bucket, Pulumi Cloud) or `pulumi login`, which always win over this default.
DEFAULT_BACKEND = "file://~/.pulumi-mlops"


class EngineError(Exception):
    """A Pulumi operation failed; the message is the engine's own output (stderr last)."""


@dataclass(frozen=True)
class StateResource:
    urn: str
    type: str


class Workspace(Protocol):
    def list_stacks(self) -> list[str]: ...

    def read_config(self, stack: str) -> dict[str, Any]:
        """The stack's config, `ns:key` → value, structured values decoded."""
        ...

    def read_tags(self, stack: str) -> dict[str, str]: ...

    def create_or_select(self, stack: str) -> None: ...

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None:
        """Replace the stack's whole config with `config` (plain values only)."""
        ...

    def set_tags(self, stack: str, tags: Mapping[str, str]) -> None: ...

    def up(self, stack: str, on_output: OnOutput) -> None: ...

    def refresh(self, stack: str, on_output: OnOutput) -> None: ...

    def destroy(
        self, stack: str, on_output: OnOutput, targets: list[str] | None = None
    ) -> None: ...

    def resources(self, stack: str) -> list[StateResource]: ...

    def remove(self, stack: str) -> None: ...


@dataclass(frozen=True)
class Backend:
    url: str
    source: str  # where the choice came from, shown to the user


def resolve_backend(
    explicit: str | None, environ: Mapping[str, str], credentials: Path | None
) -> Backend:
    """`--backend`, else `PULUMI_BACKEND_URL`, else the `pulumi login` in use, else the default."""
    if explicit:
        return Backend(explicit, "--backend")
    if environ.get("PULUMI_BACKEND_URL"):
        return Backend(environ["PULUMI_BACKEND_URL"], "PULUMI_BACKEND_URL")
    if credentials is not None and credentials.is_file():
        try:
            current = json.loads(credentials.read_text()).get("current")
        except (OSError, ValueError):
            current = None
        if isinstance(current, str) and current:
            return Backend(current, f"pulumi login ({credentials})")
    return Backend(DEFAULT_BACKEND, "default")


def local_path(url: str) -> Path | None:
    """The directory of a `file://` backend (created on first use), else None."""
    if not url.startswith("file://"):
        return None
    return Path(url.removeprefix("file://")).expanduser()


def _decode(value: str) -> Any:
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class AutomationWorkspace:
    """`Workspace` over `pulumi.automation.LocalWorkspace` in the project directory."""

    def __init__(self, project_root: Path, backend: Backend) -> None:
        from pulumi import automation as auto

        directory = local_path(backend.url)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            url = f"file://{directory}"
        else:
            url = backend.url
        self._root = project_root
        self._auto = auto
        try:
            self._ws = auto.LocalWorkspace(
                work_dir=str(project_root), env_vars={"PULUMI_BACKEND_URL": url}
            )
        except (auto.errors.CommandError, auto.errors.InvalidVersionError, OSError) as exc:
            raise EngineError(
                f"cannot start the Pulumi CLI ({exc}); install it: "
                "https://www.pulumi.com/docs/install/"
            ) from exc

    def _run(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except self._auto.errors.CommandError as exc:
            raise EngineError(str(exc)) from exc

    def _stack(self, stack: str) -> Any:
        return self._run(lambda: self._auto.Stack.select(stack, self._ws))

    def list_stacks(self) -> list[str]:
        return [s.name for s in self._run(self._ws.list_stacks)]

    def read_config(self, stack: str) -> dict[str, Any]:
        raw = self._run(lambda: self._ws.get_all_config(stack))
        return {key: _decode(value.value) for key, value in raw.items()}

    def read_tags(self, stack: str) -> dict[str, str]:
        try:
            return dict(self._ws.list_tags(stack))
        except self._auto.errors.CommandError:
            return {}  # some backends keep no stack tags; config is the primary record

    def create_or_select(self, stack: str) -> None:
        self._run(lambda: self._auto.Stack.create_or_select(stack, self._ws))

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None:
        # Written as YAML rather than `config set` key by key: structured values (the
        # `mlops:` sections) survive as they are, and the secrets-provider keys Pulumi put
        # in the file at `stack init` are kept.
        path = self._root / f"Pulumi.{stack}.yaml"
        existing = yaml.safe_load(path.read_text()) if path.is_file() else None
        data = dict(existing) if isinstance(existing, dict) else {}
        data["config"] = dict(config)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def set_tags(self, stack: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            try:
                self._ws.set_tag(stack, key, value)
            except self._auto.errors.CommandError:
                return  # best effort: the stack's config stays the record

    def up(self, stack: str, on_output: OnOutput) -> None:
        target = self._stack(stack)
        self._run(lambda: target.up(on_output=on_output, color="never"))

    def refresh(self, stack: str, on_output: OnOutput) -> None:
        target = self._stack(stack)
        self._run(lambda: target.refresh(on_output=on_output, color="never"))

    def destroy(self, stack: str, on_output: OnOutput, targets: list[str] | None = None) -> None:
        target = self._stack(stack)
        # With targets, their dependents must go too or the engine refuses the plan.
        self._run(
            lambda: target.destroy(
                on_output=on_output,
                color="never",
                target=targets,
                target_dependents=True if targets else None,
            )
        )

    def resources(self, stack: str) -> list[StateResource]:
        deployment = self._run(lambda: self._ws.export_stack(stack)).deployment or {}
        return [
            StateResource(str(r.get("urn", "")), str(r.get("type", "")))
            for r in deployment.get("resources") or []
        ]

    def remove(self, stack: str) -> None:
        self._run(lambda: self._ws.remove_stack(stack))

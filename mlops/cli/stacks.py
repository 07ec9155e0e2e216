"""The project, its stack files and their offline plans, as the commands need them.

Failures become `UserError`s naming what to fix. The commands import this module, never
the `mlops.cli` root, so nothing imports back up the package.
"""

from __future__ import annotations

from pathlib import Path

from mlops.cli.errors import UserError
from mlops.plan import Plan
from mlops.stackfiles import Project, StackFileError, find_project, read_stack_config


def project(project_dir: Path | None = None) -> Project:
    """The Pulumi project at or above `project_dir` (default: the current directory)."""
    try:
        return find_project(project_dir)
    except StackFileError as exc:
        raise UserError(str(exc)) from exc


def values(stack: str, project_dir: Path | None = None) -> dict[str, str]:
    """The `ns:key` settings of Pulumi.<stack>.yaml."""
    try:
        return read_stack_config(project(project_dir), stack).values
    except StackFileError as exc:
        raise UserError(str(exc)) from exc


def build_plan(stack: str, project_dir: Path | None = None) -> Plan:
    """Load the project and stack config and record the program."""
    from mlops import recorder  # the Pulumi SDK import is slow: only when a plan is built

    found = project(project_dir)
    try:
        return recorder.record(found, stack, read_stack_config(found, stack))
    except (StackFileError, recorder.ProgramError) as exc:
        raise UserError(str(exc)) from exc


def close_event_loop() -> None:
    """The Pulumi SDK leaves an event loop open; closing it now keeps interpreter exit quiet."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.get_event_loop().close()

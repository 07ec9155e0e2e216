"""Options several commands share, defined once so their flags, help and defaults agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

project_dir_option = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory holding Pulumi.yaml (default: nearest above the current directory).",
)

now_option = click.option(
    "--now", default=None, metavar="ISO", help="Judge expiry at this instant (UTC)."
)


def stack_option(
    help_text: str = "Stack name: reads Pulumi.<stack>.yaml.", *, required: bool = True
) -> Callable[[F], F]:
    """`--stack/-s`; the help says what the command does with the stack."""
    return click.option("--stack", "-s", required=required, default=None, help=help_text)

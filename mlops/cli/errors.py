"""Errors the commands report: `error: <message>` on stderr, then click exits with the code.

Raised, not printed: click shows them at the top, so a helper deep in a command needs no
`sys.exit` and no unreachable code after it.
"""

from __future__ import annotations

from typing import IO, Any

import click


class CommandError(click.ClickException):
    """The one format every mlops command uses for errors."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class UserError(CommandError):
    """Input the user can fix (a flag, a stack file, where the command runs): exit 2."""

    exit_code = 2


class Failed(CommandError):
    """The input was fine but the work failed (the engine, AWS, resources left): exit 1."""

    exit_code = 1

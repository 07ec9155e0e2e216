"""`mlops env up|destroy|list|reap`: per-PR ephemeral stacks through the Automation API."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from mlops.env import core
from mlops.env.workspace import (
    AutomationWorkspace,
    Backend,
    EngineError,
    Workspace,
    resolve_backend,
)
from mlops.expiry import ExpiryError, parse_utc, utc_now

EXIT_FAILED = 1
EXIT_REFUSED = 2

# Tests replace this to hand the commands a fake workspace.
WorkspaceFactory = Callable[[Path, Backend], Workspace]
workspace_factory: WorkspaceFactory = AutomationWorkspace


def _project_root(project_dir: Path | None) -> Path:
    from mlops.stackfiles import StackFileError, find_project

    try:
        return find_project(project_dir).root
    except StackFileError as exc:
        _exit(str(exc), EXIT_REFUSED)
        raise AssertionError("unreachable") from exc


def _exit(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _env(ctx: click.Context, now: str | None = None) -> core.Env:
    options = ctx.find_object(dict) or {}
    root = _project_root(options.get("project_dir"))
    import os

    backend = resolve_backend(
        options.get("backend"), os.environ, Path.home() / ".pulumi" / "credentials.json"
    )
    click.echo(f"backend: {backend.url} (from {backend.source})", err=True)
    try:
        moment = parse_utc(now, what="--now") if now else utc_now()
    except ExpiryError as exc:
        _exit(str(exc), EXIT_REFUSED)
        raise AssertionError("unreachable") from exc
    try:
        workspace = workspace_factory(root, backend)
    except EngineError as exc:
        _exit(str(exc), EXIT_FAILED)
        raise AssertionError("unreachable") from exc
    return core.Env(workspace=workspace, now=moment, say=click.echo, sleep=time.sleep)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except core.Refusal as exc:
        _exit(str(exc), EXIT_REFUSED)
    except EngineError as exc:
        _exit(f"pulumi failed:\n{exc}", EXIT_FAILED)


@click.group("env")
@click.option(
    "--backend",
    default=None,
    metavar="URL",
    help="State backend (default: PULUMI_BACKEND_URL, else your `pulumi login`, else "
    "file://~/.pulumi-mlops).",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory holding Pulumi.yaml (default: nearest above the current directory).",
)
@click.pass_context
def env_group(ctx: click.Context, backend: str | None, project_dir: Path | None) -> None:
    """Per-pull-request ephemeral stacks: create, destroy, list, reap.

    Only stacks marked `mlops:environment: ephemeral` are ever touched; staging and prod
    are refused outright.
    """
    ctx.obj = {"backend": backend, "project_dir": project_dir}


@env_group.command("up")
@click.option("--pr", type=int, required=True, help="Pull request number: the stack is pr-<N>.")
@click.option("--ttl-hours", type=int, default=None, help="Lifetime (default: the template's).")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.pass_context
def up_command(ctx: click.Context, pr: int, ttl_hours: int | None, dry_run: bool) -> None:
    """Create or update stack pr-N from Pulumi.pr-template.yaml and run `up`."""
    env = _env(ctx)
    root = _project_root(ctx.obj["project_dir"])
    template = root / f"Pulumi.{core.TEMPLATE_STACK}.yaml"

    def action() -> None:
        core.up(env, pr, template, ttl_hours=ttl_hours, dry_run=dry_run)

    _run(action)


@env_group.command("destroy")
@click.option("--pr", type=int, required=True, help="Pull request number: the stack is pr-<N>.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.pass_context
def destroy_command(ctx: click.Context, pr: int, dry_run: bool) -> None:
    """Refresh, destroy (Kubernetes objects first, retrying transient AWS errors), remove."""
    env = _env(ctx)

    def action() -> None:
        outcome = core.destroy(env, core.stack_name(pr), dry_run=dry_run)
        if not dry_run and not outcome.removed:
            for urn in outcome.remaining:
                click.echo(f"  still in state: {urn}", err=True)
            _exit(
                f"{outcome.stack} kept: resources remain; fix the cause, run "
                f"`mlops env destroy --pr {pr}` again, then `mlops sweep --stack {outcome.stack}`",
                EXIT_FAILED,
            )

    _run(action)


@env_group.command("list")
@click.option("--now", default=None, metavar="ISO", help="Judge expiry at this instant (UTC).")
@click.option("--dry-run", is_flag=True, help="Accepted for symmetry: listing changes nothing.")
@click.pass_context
def list_command(ctx: click.Context, now: str | None, dry_run: bool) -> None:
    """Ephemeral stacks with owner and expiry."""
    env = _env(ctx, now)

    def action() -> None:
        rows = core.listing(env)
        if not rows:
            click.echo("no ephemeral stacks")
            return
        click.echo(f"{'STACK':<12} {'OWNER':<20} {'EXPIRES AT':<22} STATUS")
        for item in rows:
            owner, expiry = item.owner or "-", item.expires_at or "-"
            click.echo(f"{item.stack:<12} {owner:<20} {expiry:<22} {item.status}")

    _run(action)


@env_group.command("reap")
@click.option("--dry-run", is_flag=True, help="List what would be destroyed; change nothing.")
@click.option("--now", default=None, metavar="ISO", help="Judge expiry at this instant (UTC).")
@click.pass_context
def reap_command(ctx: click.Context, dry_run: bool, now: str | None) -> None:
    """Destroy every ephemeral stack whose expiry has passed; report each."""
    env = _env(ctx, now)

    def action() -> None:
        results = core.reap(env, dry_run=dry_run)
        for result in results:
            click.echo(f"{result.action:<11} {result.stack:<12} {result.detail}")
        if not results:
            click.echo("no ephemeral stacks")
        if any(r.action == "failed" for r in results):
            _exit("some expired stacks could not be reaped (see above)", EXIT_FAILED)

    _run(action)

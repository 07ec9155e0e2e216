"""`mlops env up|destroy|list|reap`: per-PR ephemeral stacks through the Automation API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import click

from mlops.cli import stacks
from mlops.cli.errors import Failed, UserError
from mlops.cli.options import now_option, project_dir_option
from mlops.env import core
from mlops.env.workspace import (
    AutomationWorkspace,
    Backend,
    EngineError,
    Workspace,
    resolve_backend,
)
from mlops.expiry import ExpiryError, parse_utc, utc_now

# Tests replace this to hand the commands a fake workspace.
WorkspaceFactory = Callable[[Path, Backend], Workspace]
workspace_factory: WorkspaceFactory = AutomationWorkspace


def _env(ctx: click.Context, now: str | None = None) -> core.Env:
    options = ctx.find_object(dict) or {}
    root = stacks.project(options.get("project_dir")).root
    backend = resolve_backend(
        options.get("backend"), os.environ, Path.home() / ".pulumi" / "credentials.json"
    )
    click.echo(f"backend: {backend.url} (from {backend.source})", err=True)
    try:
        moment = parse_utc(now, what="--now") if now else utc_now()
    except ExpiryError as exc:
        raise UserError(str(exc)) from exc
    try:
        workspace = workspace_factory(root, backend)
    except EngineError as exc:
        raise Failed(str(exc)) from exc
    return core.Env(workspace=workspace, now=moment, say=click.echo, sleep=time.sleep)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except core.Refusal as exc:
        raise UserError(str(exc)) from exc
    except EngineError as exc:
        raise Failed(f"pulumi failed:\n{exc}") from exc


@click.group("env")
@click.option(
    "--backend",
    default=None,
    metavar="URL",
    help="State backend (default: PULUMI_BACKEND_URL, else your `pulumi login`, else "
    "file://~/.pulumi-mlops).",
)
@project_dir_option
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
    root = stacks.project(ctx.obj["project_dir"]).root
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
            raise Failed(
                f"{outcome.stack} kept: resources remain; fix the cause, run "
                f"`mlops env destroy --pr {pr}` again, then `mlops sweep --stack {outcome.stack}`"
            )

    _run(action)


@env_group.command("list")
@now_option
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
@now_option
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
            raise Failed("some expired stacks could not be reaped (see above)")

    _run(action)

"""The `mlops sweep` command: thin over `mlops.sweep.run.sweep`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlops.cli.errors import Failed, UserError
from mlops.cli.options import now_option
from mlops.expiry import ExpiryError, parse_utc, utc_now
from training_jobs.contract import DEFAULT_REGION


@click.command("sweep")
@click.option("--stack", default=None, metavar="pr-N", help="Resources tagged mlops:stack=pr-N.")
@click.option(
    "--expired", is_flag=True, help="Ephemeral resources whose mlops:expires-at has passed."
)
@click.option(
    "--delete",
    is_flag=True,
    help="Delete what is selected. Without it the sweep only reports (dry run).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Report only (the default); overrides --delete.",
)
@click.option(
    "--receipt",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the destroy receipt (JSON) here.",
)
@now_option
@click.option("--region", default=None, help="AWS region (default: the usual AWS settings).")
def sweep_command(
    stack: str | None,
    expired: bool,
    delete: bool,
    dry_run: bool,
    receipt: Path | None,
    now: str | None,
    region: str | None,
) -> None:
    """Find resources left behind by ephemeral stacks, by tag, and delete them in order.

    Only resources tagged mlops:environment=ephemeral are ever deleted, whatever the
    filters say. Exits 1 if anything selected remains after --delete.
    """
    import boto3

    from mlops.sweep.run import sweep
    from mlops.sweep.select import Selector

    if (stack is None) == (not expired):
        raise UserError("give exactly one of --stack pr-N or --expired")
    if stack is not None and not stack.startswith("pr-"):
        raise UserError(f"--stack {stack!r}: sweeps only touch ephemeral stacks, named pr-<number>")
    try:
        moment = parse_utc(now, what="--now") if now is not None else utc_now()
    except ExpiryError as exc:
        raise UserError(str(exc)) from exc

    session = boto3.session.Session(region_name=region)
    resolved = session.region_name or DEFAULT_REGION
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=resolved)
        return clients[service]

    really = delete and not dry_run
    selector = Selector(now=moment, stack=stack, expired=expired)
    mode = "deleting" if really else "dry run (pass --delete to delete)"
    click.echo(f"sweep {selector.describe()} in {resolved}: {mode}")
    result = sweep(client, selector, region=resolved, delete=really, report=click.echo)
    if receipt is not None:
        result.write(receipt)
        click.echo(f"receipt: {receipt}")
    click.echo(
        f"found {len(result.found)}, selected {sum(1 for f in result.found if f['selected'])}, "
        f"deleted {len(result.deleted)}, failed {len(result.failed)}, "
        f"remaining {len(result.remaining)} ({len(result.still_billing)} still billing)"
    )
    for error in result.listing_errors:
        click.echo(f"warning: listing failed: {error}", err=True)
    if really and not result.clean:
        raise Failed("ephemeral resources remain; see the receipt")

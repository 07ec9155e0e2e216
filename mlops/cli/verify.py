"""The `mlops verify` command: thin over `mlops.verify.verify`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from mlops.cli.errors import UserError
from mlops.cli.options import stack_option

EXIT_FAILED = 1


def stack_outputs(stack: str, path: Path | None) -> dict[str, Any]:
    """The stack's outputs: --outputs, else $MLOPS_STACK_OUTPUTS, else the Pulumi CLI."""
    source = path or (
        Path(os.environ["MLOPS_STACK_OUTPUTS"]) if os.environ.get("MLOPS_STACK_OUTPUTS") else None
    )
    if source is not None:
        try:
            data = json.loads(source.read_text())
        except FileNotFoundError as exc:
            raise UserError(
                f"--outputs {source}: no such file (write it with `pulumi stack output --json "
                f"--stack {stack} > {source}`)"
            ) from exc
        except json.JSONDecodeError as exc:
            raise UserError(
                f"--outputs {source}: not JSON ({exc.msg} at line {exc.lineno})"
            ) from exc
        if not isinstance(data, dict):
            raise UserError(
                f"--outputs {source}: expected the JSON object `pulumi stack output --json` writes"
            )
        return dict(data)
    if shutil.which("pulumi") is None:
        raise UserError(
            "no stack outputs: give --outputs FILE (from `pulumi stack output --json`) or install "
            "the Pulumi CLI so verify can read them"
        )
    result = subprocess.run(  # noqa: S603 - fixed argv, the user's own CLI
        [shutil.which("pulumi") or "pulumi", "stack", "output", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UserError(
            f"`pulumi stack output --stack {stack}` failed: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return dict(json.loads(result.stdout or "{}"))


@click.command("verify")
@stack_option("The deployed stack (dev, staging, prod, local, pr-N).")
@click.option(
    "--outputs",
    "outputs_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="`pulumi stack output --json` file (default: $MLOPS_STACK_OUTPUTS, else the Pulumi CLI).",
)
@click.option(
    "--server-url", default=None, help="Where the model server's Service answers from here."
)
@click.option("--pipeline", is_flag=True, help="Also run the retrain pipeline end to end.")
@click.option(
    "--receipt",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the up receipt here (default: up-receipt-<stack>.json).",
)
@click.option("--region", default=None, help="AWS region (default: the stack's region output).")
@click.option(
    "--job-timeout",
    type=click.FloatRange(min=10),
    default=900.0,
    show_default=True,
    help="Seconds to wait for each verification job.",
)
def verify_command(
    stack: str,
    outputs_path: Path | None,
    server_url: str | None,
    pipeline: bool,
    receipt: Path | None,
    region: str | None,
    job_timeout: float,
) -> None:
    """Prove a deployed stack works: a job through its queue, MLflow from a job, the model
    server, the drift schedule, alarms and retrain rule (and the pipeline with --pipeline).
    Writes the up receipt; exits 1 if any check fails."""
    import boto3

    from mlops.verify import VerifySettings, verify

    outputs = stack_outputs(stack, outputs_path)
    session = boto3.session.Session(region_name=region or outputs.get("region"))
    if session.get_credentials() is None:
        raise UserError(
            "no AWS credentials: configure them as for `pulumi up` (AWS_PROFILE, SSO, or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service)
        return clients[service]

    def show(check: Any) -> None:
        click.echo(
            f"  {'pass' if check.passed else 'FAIL'}  {check.name:<18} "
            f"{check.seconds:6.1f}s  {check.detail}"
        )

    click.echo(f"verifying stack {stack} in {session.region_name}")
    settings = VerifySettings(server_url=server_url, pipeline=pipeline, job_timeout_s=job_timeout)
    result = verify(client, outputs, stack=stack, settings=settings, report=show)
    path = receipt or Path(f"up-receipt-{stack}.json")
    result.write(path)
    click.echo(
        f"{sum(c.passed for c in result.checks)}/{len(result.checks)} checks passed; "
        f"receipt: {path}"
    )
    if not result.passed:
        sys.exit(EXIT_FAILED)

"""`mlops`: the platform's command line. Thin: parse, call a pure function, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlops import plan as plan_model
from mlops.review import commands as review_commands
from mlops.stackfiles import StackFileError, find_project, read_stack_config

EXIT_USAGE = 2


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Provision and review the MLOps platform; offline tools need no cloud credentials."""


@main.command("plan")
@click.option("--stack", "-s", required=True, help="Stack name: reads Pulumi.<stack>.yaml.")
@click.option(
    "--json",
    "json_path",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="PATH",
    help="Write the plan as JSON to PATH ('-' or no value: standard output).",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory holding Pulumi.yaml (default: nearest above the current directory).",
)
@click.option(
    "--k8s-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write every Kubernetes object of the plan as YAML into this directory.",
)
def plan_command(
    stack: str, json_path: str | None, project_dir: Path | None, k8s_out: Path | None
) -> None:
    """Run the Pulumi program offline under recording mocks and show its resources."""
    result = build_plan(stack, project_dir)
    _close_event_loop()
    if k8s_out is not None:
        from mlops.k8s_export import write_manifests

        written = write_manifests(result, k8s_out)
        click.echo(f"wrote {len(written)} Kubernetes objects to {k8s_out}", err=True)
    if json_path is None:
        from mlops.review.timing import critical_path, render

        click.echo(plan_model.render_tree(result))
        click.echo("\n" + render(critical_path(result)))
    elif json_path == "-":
        click.echo(result.to_json(), nl=False)
    else:
        Path(json_path).write_text(result.to_json())
        click.echo(f"wrote {len(result.resources)} resources to {json_path}", err=True)


# Review tools on plan data (diff, policy, cost, parity): mlops/review/commands.py.
for _command in review_commands.COMMANDS:
    main.add_command(_command)


def build_plan(stack: str, project_dir: Path | None = None) -> plan_model.Plan:
    """Load the project and stack config and record the program; exit 2 on user errors."""
    from mlops import recorder  # the Pulumi SDK import is slow: only when a plan is built

    try:
        project = find_project(project_dir)
        config = read_stack_config(project, stack)
        return recorder.record(project, stack, config)
    except (StackFileError, recorder.ProgramError) as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc


@main.command("config-reference")
@click.option("--write", is_flag=True, help="Update the reference inside Pulumi.yaml in place.")
def config_reference_command(write: bool) -> None:
    """Print the `mlops:` settings reference (kept in Pulumi.yaml, checked by the tests)."""
    from mlops.docs import config_reference, update_project_file

    if write:
        path = find_project().root / "Pulumi.yaml"
        update_project_file(path)
        click.echo(f"updated {path.name}", err=True)
    else:
        click.echo(config_reference(), nl=False)


def _close_event_loop() -> None:
    """The Pulumi SDK leaves an event loop open; closing it now keeps interpreter exit quiet."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.get_event_loop().close()


from mlops.env.command import env_group  # noqa: E402 - registered after main is defined
from mlops.images_command import images_group  # noqa: E402
from mlops.sweep.command import sweep_command  # noqa: E402
from mlops.verify_command import verify_command  # noqa: E402

main.add_command(env_group)
main.add_command(images_group)
main.add_command(sweep_command)
main.add_command(verify_command)

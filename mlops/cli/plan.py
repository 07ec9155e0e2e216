"""`mlops plan` and `mlops config-reference`."""

from __future__ import annotations

from pathlib import Path

import click

from mlops import plan as plan_model
from mlops.cli import stacks
from mlops.cli.options import project_dir_option, stack_option


@click.command("plan")
@stack_option()
@click.option(
    "--json",
    "json_path",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="PATH",
    help="Write the plan as JSON to PATH ('-' or no value: standard output).",
)
@project_dir_option
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
    result = stacks.build_plan(stack, project_dir)
    stacks.close_event_loop()
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


@click.command("config-reference")
@click.option("--write", is_flag=True, help="Update the reference inside Pulumi.yaml in place.")
def config_reference_command(write: bool) -> None:
    """Print the `mlops:` settings reference (kept in Pulumi.yaml, checked by the tests)."""
    from mlops.docs import config_reference, update_project_file

    if write:
        path = stacks.project().root / "Pulumi.yaml"
        update_project_file(path)
        click.echo(f"updated {path.name}", err=True)
    else:
        click.echo(config_reference(), nl=False)

"""Click commands for the review tools; `mlops.cli` registers them. Thin: parse, call, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from infra import policy
from mlops.review import cost, diff, markdown, parity

EXIT_FAIL = 1
EXIT_USAGE = 2


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _write(path: str, text: str, what: str) -> None:
    if path == "-":
        click.echo(text, nl=False)
    else:
        Path(path).write_text(text)
        click.echo(f"wrote {what} to {path}", err=True)


def _project(project_dir: Path | None) -> Any:
    from mlops.stackfiles import StackFileError, find_project

    try:
        return find_project(project_dir)
    except StackFileError as exc:
        _fail(str(exc))


def stack_exceptions(stack: str, project_dir: Path | None = None) -> list[policy.PolicyException]:
    """`mlops:policy_exceptions` of a stack file (a list of {rule, urn_contains|name, reason})."""
    from mlops.stackfiles import StackFileError, read_stack_config

    project = _project(project_dir)
    try:
        values = read_stack_config(project, stack).values
    except StackFileError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    try:
        return policy.parse_exceptions(values.get("mlops:policy_exceptions"))
    except policy.ExceptionConfigError as exc:
        _fail("\n".join(f"Pulumi.{stack}.yaml: mlops:{issue}" for issue in exc.issues))
        raise AssertionError("unreachable") from exc


def _build(stack: str, project_dir: Path | None) -> Any:
    from mlops.cli import _close_event_loop, build_plan

    plan = build_plan(stack, project_dir)
    _close_event_loop()
    return plan


_PROJECT_DIR = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory holding Pulumi.yaml (default: nearest above the current directory).",
)
_JSON = click.option(
    "--json",
    "json_path",
    default=None,
    metavar="PATH",
    help="Also write JSON to PATH ('-': stdout).",
)


@click.command("diff")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("head", type=click.Path(path_type=Path))
@click.option(
    "--markdown",
    "markdown_path",
    default=None,
    metavar="PATH",
    help="Write the PR comment markdown to PATH ('-': standard output).",
)
@click.option(
    "--fail-on",
    default=None,
    metavar="CLASSES",
    help=f"Exit 1 if any change has one of these classes: {','.join(diff.CLASSES)}.",
)
@click.option(
    "--stack-exceptions",
    default=None,
    metavar="STACK",
    help="Apply the policy exceptions of Pulumi.STACK.yaml (default: the head's stack "
    "when its file is here).",
)
@click.option(
    "--max-chars",
    type=click.IntRange(2_000, markdown.CAP),
    default=markdown.CAP,
    show_default=True,
    help="Cap of the markdown; lower it to put several stacks in one comment.",
)
@_PROJECT_DIR
def diff_command(
    base: Path,
    head: Path,
    markdown_path: str | None,
    fail_on: str | None,
    stack_exceptions: str | None,
    max_chars: int,
    project_dir: Path | None,
) -> None:
    """Compare two offline plans (from `mlops plan --json`): what `pulumi up` would change."""
    try:
        classes = diff.parse_classes(fail_on) if fail_on is not None else []
        base_plan, head_plan = diff.load_plan(base), diff.load_plan(head)
    except (ValueError, diff.PlanInputError) as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    exceptions = _exceptions_for(
        stack_exceptions or head_plan.stack, project_dir, stack_exceptions is not None
    )
    review = markdown.build_review(base_plan, head_plan, exceptions)
    if markdown_path is not None:
        _write(markdown_path, markdown.render(review, cap=max_chars), "the PR comment")
    if markdown_path != "-":
        click.echo(diff.render_text(review.diff))
        click.echo("\n" + markdown.verdict(review).replace("**", ""))
    hits = [c for c in review.diff.changes if any(c.has(k) for k in classes)]
    if hits:
        click.echo(f"failing: {len(hits)} change(s) classed {', '.join(classes)}", err=True)
        sys.exit(EXIT_FAIL)


def _exceptions_for(
    stack: str, project_dir: Path | None, required: bool
) -> list[policy.PolicyException]:
    from mlops.stackfiles import StackFileError, find_project

    try:
        project = find_project(project_dir)
    except StackFileError:
        if required:
            raise
        return []
    if not project.stack_file(stack).is_file() and not required:
        return []
    return stack_exceptions(stack, project_dir)


@click.command("policy")
@click.option(
    "--stack", "-s", default=None, help="Stack name: records the plan of Pulumi.<stack>.yaml."
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="A recorded plan (`mlops plan --json PATH`) instead of --stack; exceptions come "
    "from its stack's file when that is in the project.",
)
@_JSON
@_PROJECT_DIR
def policy_command(
    stack: str | None, plan_path: Path | None, json_path: str | None, project_dir: Path | None
) -> None:
    """Run the policy rules on a stack's offline plan; exit 1 on a mandatory violation."""
    if stack is not None and plan_path is None:
        exceptions = stack_exceptions(stack, project_dir)
        plan = _build(stack, project_dir)
    elif plan_path is not None and stack is None:
        try:
            plan = diff.load_plan(plan_path)
        except diff.PlanInputError as exc:
            _fail(str(exc))
            raise AssertionError("unreachable") from exc
        stack = plan.stack
        exceptions = _exceptions_for(stack, project_dir, required=False)
    else:
        raise click.UsageError("give exactly one of --stack (record the plan) or --plan PATH")
    findings = policy.evaluate(policy.resources_from_plan(plan), exceptions=exceptions)
    click.echo(policy.render_table(findings))
    if json_path is not None:
        data = {
            "stack": stack,
            "findings": [f.__dict__ for f in findings],
            "rules": [_rule_dict(r) for r in policy.RULES],
        }
        _write(json_path, json.dumps(data, indent=2) + "\n", "the findings")
    if any(f.blocking for f in findings):
        sys.exit(EXIT_FAIL)


def _rule_dict(rule: policy.Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "title": rule.title,
        "severity": rule.severity,
        "enforcement": rule.enforcement,
        "category": rule.category,
        "checkov": list(rule.checkov),
        "cis": list(rule.cis),
        "description": rule.description,
        "remediation": rule.remediation,
    }


@click.command("cost")
@click.option("--stack", "-s", required=True, help="Stack name: reads Pulumi.<stack>.yaml.")
@_JSON
@_PROJECT_DIR
def cost_command(stack: str, json_path: str | None, project_dir: Path | None) -> None:
    """Estimate the stack's monthly cost from its offline plan and the dated price table."""
    est = cost.estimate(_build(stack, project_dir))
    click.echo(cost.render_table(est))
    if json_path is not None:
        _write(json_path, json.dumps(est.to_dict(), indent=2) + "\n", "the estimate")


@click.command("parity")
@click.argument("stacks", nargs=-1, required=True)
@click.option("--config-only", is_flag=True, help="Compare parsed config only (no plans).")
@_PROJECT_DIR
def parity_command(stacks: tuple[str, ...], config_only: bool, project_dir: Path | None) -> None:
    """Show the settings and resource inputs that differ between STACKS (e.g. dev staging prod)."""
    if len(stacks) < 2:
        _fail("parity needs at least two stacks, e.g. `mlops parity dev staging prod`")
    configs = {s: _parsed_config(s, project_dir) for s in stacks}
    click.echo(parity.render("config", parity.compare(parity.config_columns(configs)), stacks))
    if config_only:
        return
    from mlops.cli import _close_event_loop, build_plan

    plans = [build_plan(s, project_dir) for s in stacks]
    _close_event_loop()  # once, after the last plan: the recorder reuses the loop
    click.echo("")
    click.echo(parity.render("resources", parity.compare(parity.resource_columns(plans)), stacks))


def _parsed_config(stack: str, project_dir: Path | None) -> dict[str, Any]:
    from infra import config as platform_config
    from mlops.stackfiles import StackFileError, read_stack_config

    project = _project(project_dir)
    try:
        values = read_stack_config(project, stack).values
    except StackFileError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    raw = {k.removeprefix("mlops:"): v for k, v in values.items() if k.startswith("mlops:")}
    try:
        parsed = platform_config.parse(
            raw, stack=stack, region=values.get("aws:region", "us-east-1")
        )
    except platform_config.ConfigError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    return parsed.model_dump(mode="json")


COMMANDS = (diff_command, policy_command, cost_command, parity_command)

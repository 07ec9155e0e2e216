"""`mlops diff|policy|cost|parity`: the review tools on plan data. Thin: parse, call, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from infra import policy
from mlops.cli import stacks
from mlops.cli.errors import UserError
from mlops.cli.options import project_dir_option, stack_option
from mlops.plan import Plan
from mlops.review import cost, diff, markdown, parity
from training_jobs.contract import DEFAULT_REGION

EXIT_FAIL = 1


def _write(path: str, text: str, what: str) -> None:
    if path == "-":
        click.echo(text, nl=False)
    else:
        Path(path).write_text(text)
        click.echo(f"wrote {what} to {path}", err=True)


def stack_exceptions(stack: str, project_dir: Path | None = None) -> list[policy.PolicyException]:
    """`mlops:policy_exceptions` of a stack file (a list of {rule, urn_contains|name, reason})."""
    values = stacks.values(stack, project_dir)
    try:
        return policy.parse_exceptions(values.get("mlops:policy_exceptions"))
    except policy.ExceptionConfigError as exc:
        issues = "\n".join(f"Pulumi.{stack}.yaml: mlops:{issue}" for issue in exc.issues)
        raise UserError(issues) from exc


def _build(stack: str, project_dir: Path | None) -> Plan:
    plan = stacks.build_plan(stack, project_dir)
    stacks.close_event_loop()
    return plan


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
@project_dir_option
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
        raise UserError(str(exc)) from exc
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
    try:
        project = stacks.project(project_dir)
    except UserError:
        if required:
            raise
        return []
    if not project.stack_file(stack).is_file() and not required:
        return []
    return stack_exceptions(stack, project_dir)


@click.command("policy")
@stack_option("Stack name: records the plan of Pulumi.<stack>.yaml.", required=False)
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
@project_dir_option
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
            raise UserError(str(exc)) from exc
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
@stack_option()
@_JSON
@project_dir_option
def cost_command(stack: str, json_path: str | None, project_dir: Path | None) -> None:
    """Estimate the stack's monthly cost from its offline plan and the dated price table."""
    est = cost.estimate(_build(stack, project_dir))
    click.echo(cost.render_table(est))
    if json_path is not None:
        _write(json_path, json.dumps(est.to_dict(), indent=2) + "\n", "the estimate")


@click.command("parity")
@click.argument("names", metavar="STACKS...", nargs=-1, required=True)
@click.option("--config-only", is_flag=True, help="Compare parsed config only (no plans).")
@project_dir_option
def parity_command(names: tuple[str, ...], config_only: bool, project_dir: Path | None) -> None:
    """Show the settings and resource inputs that differ between STACKS (e.g. dev staging prod)."""
    if len(names) < 2:
        raise UserError("parity needs at least two stacks, e.g. `mlops parity dev staging prod`")
    configs = {s: _parsed_config(s, project_dir) for s in names}
    click.echo(parity.render("config", parity.compare(parity.config_columns(configs)), names))
    if config_only:
        return
    plans = [stacks.build_plan(s, project_dir) for s in names]
    stacks.close_event_loop()  # once, after the last plan: the recorder reuses the loop
    click.echo("")
    click.echo(parity.render("resources", parity.compare(parity.resource_columns(plans)), names))


def _parsed_config(stack: str, project_dir: Path | None) -> dict[str, Any]:
    from infra import config as platform_config

    values = stacks.values(stack, project_dir)
    raw = {k.removeprefix("mlops:"): v for k, v in values.items() if k.startswith("mlops:")}
    try:
        parsed = platform_config.parse(
            raw, stack=stack, region=values.get("aws:region", DEFAULT_REGION)
        )
    except platform_config.ConfigError as exc:
        raise UserError(str(exc)) from exc
    return parsed.model_dump(mode="json")

"""Adapters from the rules of `infra.policy` to `pulumi_policy` policies.

One `ResourceValidationPolicy` per resource rule and one `StackValidationPolicy` per stack
rule (S3 bucket companions, ECR lifecycle, VPC flow logs: AWS models those as separate
resources, so only the whole stack can say whether a bucket has them). Building the
policies starts nothing; only `PolicyPack(...)` in `__main__.py` starts the analyzer server.

Exceptions come from the stack file (`mlops:policy_exceptions`), found from the stack name in
each URN and parsed by the same `parse_exceptions` as `mlops policy` (read here with pyyaml:
the pack does not import the CLI).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra import policy as rules

ROOT = Path(__file__).resolve().parents[2]
ExceptionsFor = Callable[[str], list[rules.PolicyException]]


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::...` → `<stack>`."""
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


@functools.cache
def exceptions_from_stack_file(stack: str, root: Path = ROOT) -> list[rules.PolicyException]:
    """`mlops:policy_exceptions` of `Pulumi.<stack>.yaml`; none when the file is missing or
    unreadable (the engine reports a broken stack file itself)."""
    try:
        data = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        return []
    return rules.parse_exceptions(config.get("mlops:policy_exceptions"))


def _level(rule: rules.Rule) -> EnforcementLevel:
    return (
        EnforcementLevel.MANDATORY if rule.enforcement == "mandatory" else EnforcementLevel.ADVISORY
    )


def _message(rule: rules.Rule, text: str) -> str:
    return f"[{rule.id}] {text}. Fix: {rule.remediation} ({rule.reference})"


def _excepted(
    rule: rules.Rule, urn: str, name: str, type_: str, text: str, exceptions: ExceptionsFor
) -> bool:
    finding = rules.Finding(rule.id, rule.severity, rule.enforcement, urn, name, type_, text)
    return any(e.matches(finding) for e in exceptions(stack_of(urn)))


def resource_validator(
    rule: rules.Rule, exceptions: ExceptionsFor = exceptions_from_stack_file
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        inputs: Mapping[str, Any] = args.props or {}
        ctx = rules.Context(rules.environment_of(inputs))
        for text in rules.check_resource(rule, args.resource_type, inputs, ctx):
            if not _excepted(rule, args.urn, args.name, args.resource_type, text, exceptions):
                report_violation(_message(rule, text), None)

    return validate


def stack_validator(
    rule: rules.Rule, exceptions: ExceptionsFor = exceptions_from_stack_file
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    assert rule.check_stack is not None
    check = rule.check_stack

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            rules.Resource(
                r.urn,
                r.resource_type,
                r.name,
                r.props or {},
                tuple(d.urn for d in (r.dependencies or [])),
            )
            for r in args.resources
        ]
        for r, text in check(resources):
            if not _excepted(rule, r.urn, r.name, r.type, text, exceptions):
                report_violation(_message(rule, text), r.urn)

    return validate


def build_policies(
    exceptions: ExceptionsFor = exceptions_from_stack_file,
) -> list[ResourceValidationPolicy | StackValidationPolicy]:
    out: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for rule in rules.RULES:
        common: dict[str, Any] = {
            "name": rule.id.lower(),
            "description": f"{rule.title}: {rule.description}",
            "enforcement_level": _level(rule),
            "severity": Severity(rule.severity),
            "remediation_steps": rule.remediation,
            "display_name": rule.title,
        }
        if rule.check_stack is not None:
            out.append(StackValidationPolicy(validate=stack_validator(rule, exceptions), **common))
        else:
            out.append(
                ResourceValidationPolicy(validate=resource_validator(rule, exceptions), **common)
            )
    return out

"""The rule model and registry; evaluation over plan data; the findings table.

Two scopes of rule:

- resource rules see one resource's inputs and a small context (its environment, from the
  `mlops:environment` tag or the stack's);
- stack rules see every resource, for properties that AWS models as separate resources
  (an S3 bucket's encryption, versioning, public-access block, TLS policy, logging,
  lifecycle; an ECR repository's lifecycle policy; a VPC's flow log).

A rule is registered where its check is written (`infra/policy/rules/<service>.py`), with
its metadata beside it: an id, a severity, an enforcement (mandatory rules fail
`mlops policy` and `pulumi preview`), a category, cross-references (checkov ids, CIS AWS
Foundations items), a description and a remediation.

Standard library only: `mlops policy`, `mlops diff` and the `pulumi_policy` pack (in its
own virtualenv) run these same functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, Unpack, get_args

from infra.policy.documents import taggable
from training_jobs import contract

if TYPE_CHECKING:
    from infra.policy.exceptions import PolicyException

Severity = Literal["critical", "high", "medium", "low"]
Enforcement = Literal["mandatory", "advisory"]
Category = Literal[
    "security", "identity", "resilience", "hardening", "cost", "operations", "governance"
]
# What a violation of a rule in each category means; `mlops diff` flags a change that newly
# fails a security or resilience rule as a security change (identity rules: it compares the
# IAM documents statement by statement instead).
CATEGORY_MEANING: dict[Category, str] = {
    "security": "exposes the platform or weakens a control: network exposure, encryption, "
    "instance metadata, image integrity, audit logs",
    "identity": "grants more than the workload needs: IAM actions, resources, trust",
    "resilience": "risks losing data or service: versioning, force-delete, deletion windows, "
    "backups, deletion protection, a second AZ",
    "hardening": "gives up defence in depth over an AWS default that already protects "
    "(a customer-managed key where AWS encrypts with its own)",
    "cost": "pays for what is not used: idle capacity, accumulating objects and images, "
    "extended support",
    "operations": "makes failures harder to see: execution logs, traces",
    "governance": "loses ownership and cost attribution: the platform tags",
}
SEVERITY_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class Resource:
    """What a rule sees of a resource: the same shape offline and in the pack."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    environment: str | None = None

    @property
    def guarded(self) -> bool:
        """Its data must survive a delete (contract.GUARDED_ENVIRONMENTS: staging, prod)."""
        return self.environment in contract.GUARDED_ENVIRONMENTS

    @property
    def retained(self) -> bool:
        """Its stateful resources are protected and kept (contract.RETAINED_ENVIRONMENTS)."""
        return self.environment in contract.RETAINED_ENVIRONMENTS


ResourceCheck = Callable[[Mapping[str, Any], Context], list[str]]
StackCheck = Callable[[Sequence[Resource]], list[tuple[Resource, str]]]
TypedCheck = Callable[[str, Mapping[str, Any], Context], list[str]]


class RuleDefinitionError(ValueError):
    """A rule is malformed or registered twice: a programming error, raised at import."""


_ID = re.compile(r"^MLOPS-[A-Z0-9]+-\d{3}$")
_CHECKOV = re.compile(r"^CKV2?_AWS_\d+$")
_CIS = re.compile(r"^\d+\.\d+ \d+(\.\d+)*$")  # benchmark version, then the item


@dataclass(frozen=True, kw_only=True)
class Rule:
    id: str
    title: str
    severity: Severity
    enforcement: Enforcement
    category: Category
    description: str
    remediation: str
    checkov: tuple[str, ...] = ()
    cis: tuple[str, ...] = ()  # "3.0 5.2": CIS AWS Foundations v3.0, item 5.2
    types: tuple[str, ...] = ()  # resource scope: the types the check applies to ("*": taggable)
    check: ResourceCheck | None = None
    check_typed: TypedCheck | None = None
    check_stack: StackCheck | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise RuleDefinitionError(f"rule {self.id!r}: {'; '.join(problems)}")

    @property
    def reference(self) -> str:
        return ", ".join([*self.checkov, *(f"CIS {c}" for c in self.cis)]) or "-"


def _problems(rule: Rule) -> list[str]:
    out = []
    if not _ID.match(rule.id):
        out.append("id must look like MLOPS-<SERVICE>-<3 digits>")
    for name in ("title", "description", "remediation"):
        if not str(getattr(rule, name)).strip():
            out.append(f"{name} is empty")
    if rule.severity not in get_args(Severity):
        out.append(f"severity {rule.severity!r}; allowed {', '.join(get_args(Severity))}")
    if rule.enforcement not in get_args(Enforcement):
        out.append(f"enforcement {rule.enforcement!r}; allowed mandatory, advisory")
    if rule.category not in CATEGORY_MEANING:
        out.append(f"category {rule.category!r}; allowed {', '.join(CATEGORY_MEANING)}")
    out += [f"checkov id {c!r} is not CKV_AWS_<n>" for c in rule.checkov if not _CHECKOV.match(c)]
    out += [f"CIS item {c!r} is not '<version> <item>'" for c in rule.cis if not _CIS.match(c)]
    given = [c for c in (rule.check, rule.check_typed, rule.check_stack) if c is not None]
    if len(given) != 1:
        out.append("give exactly one of check, check_typed, check_stack")
    elif rule.check_stack is None and not rule.types:
        out.append("a resource rule names the types it applies to")
    elif rule.check_stack is not None and rule.types:
        out.append("a stack rule sees every resource; it takes no types")
    return out


_REGISTRY: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add `rule` to the rules every evaluation runs; ids are unique."""
    if rule.id in _REGISTRY:
        raise RuleDefinitionError(f"rule {rule.id!r} is registered twice")
    _REGISTRY[rule.id] = rule
    return rule


def registered() -> tuple[Rule, ...]:
    """Every rule, in registration order (`infra/policy/rules/__init__.py` fixes it)."""
    return tuple(_REGISTRY.values())


def rules_in(*categories: Category) -> tuple[Rule, ...]:
    """The registered rules of `categories`, in registration order."""
    unknown = [c for c in categories if c not in CATEGORY_MEANING]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; allowed {', '.join(CATEGORY_MEANING)}")
    return tuple(r for r in _REGISTRY.values() if r.category in categories)


class RuleMeta(TypedDict):
    """The keywords of `resource_rule` and `stack_rule` besides `types`."""

    id: str
    title: str
    severity: Severity
    enforcement: Enforcement
    category: Category
    description: str
    remediation: str
    checkov: NotRequired[tuple[str, ...]]
    cis: NotRequired[tuple[str, ...]]


def resource_rule(
    *, types: tuple[str, ...], **meta: Unpack[RuleMeta]
) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register the decorated `check(inputs, ctx) -> [violation, ...]` as a resource rule."""

    def decorate(check: ResourceCheck) -> ResourceCheck:
        register(Rule(**meta, types=types, check=check))
        return check

    return decorate


def stack_rule(**meta: Unpack[RuleMeta]) -> Callable[[StackCheck], StackCheck]:
    """Register the decorated `check(resources) -> [(resource, violation), ...]`."""

    def decorate(check: StackCheck) -> StackCheck:
        register(Rule(**meta, check_stack=check))
        return check

    return decorate


def per_type(factory: Callable[[str], ResourceCheck], types: tuple[str, ...]) -> TypedCheck:
    """One check per type, for rules whose inputs differ in shape between types."""
    checks = {t: factory(t) for t in types}

    def check(type_: str, inputs: Mapping[str, Any], ctx: Context) -> list[str]:
        fn = checks.get(type_)
        return fn(inputs, ctx) if fn else []

    return check


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    enforcement: Enforcement
    urn: str
    name: str
    type: str
    message: str
    excepted: str | None = None  # the exception's reason when one applies

    @property
    def blocking(self) -> bool:
        return self.enforcement == "mandatory" and self.excepted is None

    def key(self) -> tuple[str, str]:
        """Identity across stacks and commits: rule and the urn's logical part."""
        return self.rule_id, self.urn.rsplit("::", 2)[-2] + "::" + self.name


def applies(rule: Rule, type_: str) -> bool:
    if rule.check is None and rule.check_typed is None:
        return False
    if rule.types == ("*",):
        return taggable(type_)
    return type_ in rule.types


def check_resource(rule: Rule, type_: str, inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    """Violations of a resource-scope rule for one resource (empty when it passes)."""
    if not applies(rule, type_):
        return []
    if rule.check_typed is not None:
        return rule.check_typed(type_, inputs, ctx)
    return rule.check(inputs, ctx) if rule.check is not None else []


def environment_of(inputs: Mapping[str, Any]) -> str | None:
    tags = inputs.get("tags")
    if isinstance(tags, Mapping):
        value = tags.get("mlops:environment")
        return str(value) if value else None
    return None


def stack_environment(resources: Iterable[Resource]) -> str | None:
    """The environment most resources are tagged with (untagged ones inherit it)."""
    counts: dict[str, int] = {}
    for r in resources:
        env = environment_of(r.inputs)
        if env:
            counts[env] = counts.get(env, 0) + 1
    return max(sorted(counts), key=lambda e: counts[e]) if counts else None


def evaluate(
    resources: Sequence[Resource],
    *,
    environment: str | None = None,
    exceptions: Sequence[PolicyException] = (),
    rules: Sequence[Rule] | None = None,
) -> list[Finding]:
    """Every violation of every rule (default: all registered); excepted ones are kept,
    marked with the reason."""
    env = environment or stack_environment(resources)
    findings: list[Finding] = []
    for rule in registered() if rules is None else rules:
        if rule.check_stack is not None:
            for r, message in rule.check_stack(resources):
                findings.append(_finding(rule, r, message))
            continue
        for r in resources:
            ctx = Context(environment_of(r.inputs) or env)
            for message in check_resource(rule, r.type, r.inputs, ctx):
                findings.append(_finding(rule, r, message))
    out = []
    for f in findings:
        reason = next((e.reason for e in exceptions if e.matches(f)), None)
        out.append(f if reason is None else replace(f, excepted=reason))
    out.sort(
        key=lambda f: (f.enforcement != "mandatory", SEVERITY_RANK[f.severity], f.rule_id, f.urn)
    )
    return out


def _finding(rule: Rule, r: Resource, message: str) -> Finding:
    return Finding(rule.id, rule.severity, rule.enforcement, r.urn, r.name, r.type, message)


def render_table(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no findings: every rule passes"
    rows = [
        (
            f.rule_id,
            f.enforcement + (" (excepted)" if f.excepted else ""),
            f.severity,
            f.name,
            f.message + (f" — excepted: {f.excepted}" if f.excepted else ""),
        )
        for f in findings
    ]
    headers = ("rule", "enforcement", "severity", "resource", "finding")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    blocking = sum(f.blocking for f in findings)
    advisory = sum(f.enforcement == "advisory" for f in findings)
    lines += ["", f"{blocking} mandatory violation(s), {advisory} advisory finding(s)"]
    return "\n".join(lines)


def resources_from_plan(plan: Any) -> list[Resource]:
    """Views of an `mlops.plan.Plan`'s custom resources (duck-typed: no import of the plan)."""
    return [
        Resource(r.urn, r.type, r.name, r.inputs, tuple(r.dependencies))
        for r in plan.resources
        if r.custom
    ]

"""The platform's policy rules over plan data, and the `pulumi_policy` pack that enforces them.

`mlops policy`, `mlops diff` and `pulumi preview --policy-pack infra/policy` run the same
rules. Importing this package registers every rule (`rules/`, one module per service) and
needs only the standard library and pydantic: the pack runs in its own virtualenv, and
nothing here imports `mlops`, the Pulumi SDK or the components. The pack's adapters
(`pack.py`, importing `pulumi_policy`) are loaded only by the pack.
"""

from infra.policy import rules  # noqa: F401  (importing it registers every rule)
from infra.policy.core import (
    CATEGORY_MEANING,
    SEVERITY_RANK,
    Category,
    Context,
    Enforcement,
    Finding,
    Resource,
    Rule,
    RuleDefinitionError,
    Severity,
    applies,
    check_resource,
    environment_of,
    evaluate,
    register,
    registered,
    render_table,
    resource_rule,
    resources_from_plan,
    rules_in,
    stack_environment,
    stack_rule,
)
from infra.policy.documents import (
    OPEN_CIDRS,
    allowed_pairs,
    get,
    is_write_action,
    open_ingress,
    policy_document,
    statements,
    taggable,
)
from infra.policy.exceptions import ExceptionConfigError, PolicyException, parse_exceptions

RULES: tuple[Rule, ...] = registered()
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}

__all__ = [
    "CATEGORY_MEANING",
    "OPEN_CIDRS",
    "RULES",
    "RULES_BY_ID",
    "SEVERITY_RANK",
    "Category",
    "Context",
    "Enforcement",
    "ExceptionConfigError",
    "Finding",
    "PolicyException",
    "Resource",
    "Rule",
    "RuleDefinitionError",
    "Severity",
    "allowed_pairs",
    "applies",
    "check_resource",
    "environment_of",
    "evaluate",
    "get",
    "is_write_action",
    "open_ingress",
    "parse_exceptions",
    "policy_document",
    "register",
    "registered",
    "render_table",
    "resource_rule",
    "resources_from_plan",
    "rules_in",
    "stack_environment",
    "stack_rule",
    "statements",
    "taggable",
]

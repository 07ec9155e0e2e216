"""Policy exceptions: an accepted finding — which rule, which resource, and why.

The one schema of `mlops:policy_exceptions` in `Pulumi.<stack>.yaml`: `infra.config`
validates the stack's config with it, and `mlops policy`, `mlops diff` and the pack read
the list with `parse_exceptions`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from infra.policy.core import Finding, registered

KEYS = ("rule", "reason", "urn_contains", "name")
MIN_REASON_CHARS = 10


class PolicyException(BaseModel):
    """One accepted policy finding: which rule, which resource, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str = Field(description="Rule id, e.g. MLOPS-S3-008.")
    urn_contains: str | None = Field(
        None, min_length=1, description="Substring of the resource URN."
    )
    name: str | None = Field(None, min_length=1, description="Exact logical resource name.")
    reason: str = Field(description="Why this is acceptable.")

    @field_validator("rule")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in rule_ids():
            raise ValueError(f"is not a rule id; allowed {', '.join(rule_ids())}")
        return value

    @field_validator("reason")
    @classmethod
    def _says_why(cls, value: str) -> str:
        value = value.strip()
        if len(value) < MIN_REASON_CHARS:
            raise ValueError(f"is too short; say why, at least {MIN_REASON_CHARS} characters")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> PolicyException:
        if (self.urn_contains is None) == (self.name is None):
            raise ValueError("give exactly one of urn_contains or name")
        return self

    def matches(self, finding: Finding) -> bool:
        if self.rule != finding.rule_id:
            return False
        if self.name is not None:
            return self.name == finding.name
        return self.urn_contains is not None and self.urn_contains in finding.urn


def rule_ids() -> list[str]:
    return sorted(r.id for r in registered())


class ExceptionConfigError(ValueError):
    """`policy_exceptions` is malformed; `issues` names each bad field, its value and what is
    allowed, one per line."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(self.issues))


def parse_exceptions(raw: Any) -> list[PolicyException]:
    """`mlops:policy_exceptions` of a stack file: a list (or its JSON) of mappings."""
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ExceptionConfigError([f"policy_exceptions: not a list ({exc})"]) from None
    if not isinstance(raw, list):
        raise ExceptionConfigError(
            [f"policy_exceptions: expected a list, got {type(raw).__name__}"]
        )
    out: list[PolicyException] = []
    issues: list[str] = []
    for i, item in enumerate(raw):
        where = f"policy_exceptions[{i}]"
        if not isinstance(item, Mapping):
            issues.append(f"{where}: expected a mapping with rule, reason and urn_contains or name")
            continue
        try:
            out.append(PolicyException.model_validate(item))
        except ValidationError as exc:
            issues += _describe(where, item, exc.errors(include_url=False))
    if issues:
        raise ExceptionConfigError(issues)
    return out


def _allowed(key: str) -> str:
    return {
        "rule": f"allowed {', '.join(rule_ids())}",
        "reason": f"say why, at least {MIN_REASON_CHARS} characters",
        "urn_contains": "a substring of the resource URN",
        "name": "the exact logical resource name",
    }[key]


def _describe(where: str, item: Mapping[str, Any], errors: list[ErrorDetails]) -> list[str]:
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    out = [f"{where}: unknown keys {unknown}; allowed {', '.join(KEYS)}"] if unknown else []
    for e in errors:
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            continue
        if not e["loc"]:  # the model's own check
            out.append(f"{where}: {message}")
            continue
        key = str(e["loc"][0])
        path = f"{where}.{key}"
        if e["type"] == "missing":
            out.append(f"{path}: missing; {_allowed(key)}")
        elif e["type"] == "value_error":  # ours: the message says what is allowed
            out.append(f"{path}: {item[key]!r} {message}")
        else:
            out.append(f"{path}: {item[key]!r}: {message}; {_allowed(key)}")
    return out

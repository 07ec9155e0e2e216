"""Shared fixtures: the project root and offline plans of the shipped stacks, as shipped
or with config overridden."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from mlops import recorder
from mlops.plan import Plan
from mlops.stackfiles import StackConfig, find_project, read_stack_config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_STACKS = ("dev", "staging", "prod", "local", "pr-template")
NAMESPACE = "mlops"

_plans: dict[str, Plan] = {}
_variants: dict[str, Plan] = {}


def plan_for(stack: str) -> Plan:
    """The offline plan of a shipped stack, recorded once per session."""
    if stack not in _plans:
        project = find_project(ROOT)
        _plans[stack] = recorder.record(project, stack, read_stack_config(project, stack))
    return _plans[stack]


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merged(base.get(key), value)
        return merged
    return override


def overridden(config: StackConfig, overrides: Mapping[str, Any]) -> StackConfig:
    """`config` with each override merged into the stack file's value: a key without a
    namespace is an `mlops:` key (`training`, `serving`, `environment`, ...); a mapping is
    merged key by key (recursively), anything else (a list, a scalar) replaces the value."""
    values = dict(config.values)
    for key, override in overrides.items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        raw = values.get(full)
        base = json.loads(raw) if raw and raw[:1] in "{[" else raw
        value = _merged(base, override)
        values[full] = value if isinstance(value, str) else json.dumps(value)
    return StackConfig(values, config.secret_keys)


def record_with(stack: str, /, *, as_stack: str | None = None, **overrides: Any) -> Plan:
    """The program's plan for shipped `stack` with `overrides` (see `overridden`), under
    the stack name `as_stack` if given (e.g. `pr-42` from the PR template). Recorded once
    per session for each distinct call."""
    key = json.dumps([stack, as_stack, overrides], sort_keys=True, default=str)
    if key not in _variants:
        project = find_project(ROOT)
        config = overridden(read_stack_config(project, stack), overrides)
        _variants[key] = recorder.record(project, as_stack or stack, config)
    return _variants[key]


class PlanWith(Protocol):
    def __call__(self, stack: str, /, *, as_stack: str | None = None, **overrides: Any) -> Plan: ...


@pytest.fixture(scope="session")
def plan_with() -> PlanWith:
    """`plan_with("dev", training={"spot": False})`: a shipped stack's plan with config
    overridden, for the branches no shipped stack reaches."""
    return record_with


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT

"""Shared fixtures: the project root and offline plans of the shipped stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops import recorder
from mlops.plan import Plan
from mlops.stackfiles import find_project, read_stack_config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_STACKS = ("dev", "staging", "prod", "local", "pr-template")

_plans: dict[str, Plan] = {}


def plan_for(stack: str) -> Plan:
    """The offline plan of a shipped stack, recorded once per session."""
    if stack not in _plans:
        project = find_project(ROOT)
        _plans[stack] = recorder.record(project, stack, read_stack_config(project, stack))
    return _plans[stack]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT

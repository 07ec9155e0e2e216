"""Plans of the shipped stacks, recorded once per session under Pulumi's mocks."""

from __future__ import annotations

import pytest

from mlops import recorder
from mlops.plan import Plan
from mlops.stackfiles import find_project, read_stack_config
from tests.conftest import ROOT, SHIPPED_STACKS

_cache: dict[str, Plan] = {}


def plan_for(stack: str) -> Plan:
    if stack not in _cache:
        project = find_project(ROOT)
        _cache[stack] = recorder.record(project, stack, read_stack_config(project, stack))
    return _cache[stack]


@pytest.fixture(scope="session", params=SHIPPED_STACKS)
def any_plan(request: pytest.FixtureRequest) -> Plan:
    return plan_for(request.param)


@pytest.fixture(scope="session")
def prod_plan() -> Plan:
    return plan_for("prod")


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    return plan_for("dev")


@pytest.fixture(scope="session")
def local_plan() -> Plan:
    return plan_for("local")

"""Plans of the shipped stacks, recorded once per session under Pulumi's mocks."""

from __future__ import annotations

import pytest

from mlops.plan import Plan
from tests.conftest import SHIPPED_STACKS, plan_for


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

"""Plans for the review tools: the real recorded stacks, plus hand mutations of them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from mlops.plan import Plan
from tests.infra.conftest import plan_for

__all__ = ["mutate", "plan_for"]


def mutate(plan: Plan, edits: dict[str, Callable[[dict[str, Any]], None]]) -> Plan:
    """A copy of `plan` with `edits[name](resource_dict)` applied; every name must exist."""
    data = copy.deepcopy(plan.to_dict())
    seen = set()
    for resource in data["resources"]:
        if resource["name"] in edits:
            edits[resource["name"]](resource)
            seen.add(resource["name"])
    missing = set(edits) - seen
    assert not missing, f"no resource named {sorted(missing)} in the {plan.stack} plan"
    return Plan.from_dict(data)


@pytest.fixture(scope="session")
def prod() -> Plan:
    return plan_for("prod")


@pytest.fixture(scope="session")
def dev() -> Plan:
    return plan_for("dev")

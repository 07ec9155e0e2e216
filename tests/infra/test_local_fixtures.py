"""The job tests' fixture plans are excerpts of the real local plan: they must not go stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.plan import Plan
from tests.conftest import ROOT

FIXTURES = sorted((ROOT / "tests" / "jobs" / "fixtures").glob("plan_local*.json"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_resources_match_the_live_local_plan(fixture: Path, local_plan: Plan) -> None:
    excerpt = json.loads(fixture.read_text())
    live = local_plan.by_urn()
    for resource in excerpt["resources"]:
        if resource["type"].startswith("mlops:") or resource["type"] == "pulumi:pulumi:Stack":
            continue
        urn = resource["urn"]
        assert urn in live, f"{fixture.name}: {urn} is gone from the local plan; refresh it"
        assert resource["inputs"] == live[urn].inputs, (
            f"{fixture.name}: {urn} differs from the local plan; refresh the fixture from "
            "`mlops plan --stack local --json`"
        )

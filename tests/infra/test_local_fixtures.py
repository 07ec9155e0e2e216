"""The job tests' fixture plans are excerpts of the real local plan: they must not go stale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlops.plan import Plan
from tests.conftest import ROOT

FIXTURES = sorted((ROOT / "tests" / "jobs" / "fixtures").glob("plan_local*.json"))
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")


def _without_image_digests(inputs: dict[str, Any]) -> Any:
    """Image digests follow the source code (every change to training_jobs gives the jobs
    image a new one); the fixtures pin everything else."""
    return json.loads(_DIGEST.sub("@sha256:<digest>", json.dumps(inputs, sort_keys=True)))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_resources_match_the_live_local_plan(fixture: Path, local_plan: Plan) -> None:
    excerpt = json.loads(fixture.read_text())
    live = local_plan.by_urn()
    for resource in excerpt["resources"]:
        if resource["type"].startswith("mlops:") or resource["type"] == "pulumi:pulumi:Stack":
            continue
        urn = resource["urn"]
        assert urn in live, f"{fixture.name}: {urn} is gone from the local plan; refresh it"
        assert _without_image_digests(resource["inputs"]) == _without_image_digests(
            live[urn].inputs
        ), (
            f"{fixture.name}: {urn} differs from the local plan; refresh the fixture from "
            "`mlops plan --stack local --json`"
        )

"""The local plan with one contract broken: the run fails naming the plan resource.

Each case runs the command a user runs (`python -m mlops_local demo`) on a copy of the
local plan edited as a careless change to the program would edit it (tests/local/breaks.py).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_local.engine import Engine
from mlops_local.moto_host import JOB_LABEL
from tests.conftest import ROOT
from tests.local.breaks import BREAKS

pytestmark = pytest.mark.container


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_broken_contract_fails_the_run_naming_the_resource(
    case: str, local_plan_path: Path, built: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    plan = copy.deepcopy(json.loads(local_plan_path.read_text()))
    resource = BREAKS[case](plan)
    broken = tmp_path / "broken-plan.json"
    broken.write_text(json.dumps(plan))
    result = subprocess.run(
        [sys.executable, "-m", "mlops_local", "demo", "--plan", str(broken), "--no-loop",
         "--work-dir", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert resource in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    # Nothing it started is left running.
    left = engine.command("ps", "--all", "--format", "{{.Names}} {{.Labels}}").stdout
    assert "mlflow-mlflow" not in left and JOB_LABEL not in left, left

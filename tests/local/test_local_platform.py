"""The local stack's plan, run end to end: what passes here is what the plan declares.

One run of the whole loop in this process (so the running pods can be inspected), then
the plan with one contract broken at a time, through the command a user runs: each must
fail, in one message that names the plan resource, and never with a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_local import least_privilege
from mlops_local.demo import tracking_login, verify_local
from mlops_local.engine import Engine, EngineError
from mlops_local.loop import LoopResult, LoopSettings, Timeline
from mlops_local.loop import run as run_loop
from mlops_local.plan import LocalPlan
from mlops_local.platform import LocalPlatform, PlatformSettings

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def running(
    engine: Engine,
    built: dict[str, str],
    local_plan_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalPlatform, LoopResult, Timeline]]:
    work = tmp_path_factory.mktemp("platform")
    timeline = Timeline(started=time.perf_counter(), out=sys.stdout)
    platform = LocalPlatform(
        LocalPlan.load(local_plan_path),
        engine,
        PlatformSettings(work_dir=work),
        on_step=timeline.mark,
    )
    with platform:
        tracking_login(platform)
        result = run_loop(platform, timeline, LoopSettings(rows=3_000, retrain_rows=3_000))
        yield platform, result, timeline


FIRST_PATH = (
    "Prepare",
    "Train",
    "Evaluate",
    "ReadDecision",
    "PromoteOrReject",
    "Register",
    "Promoted",
)


def test_the_plans_state_machine_registers_the_first_champion(
    running: tuple[LocalPlatform, LoopResult, Timeline],
) -> None:
    _, result, _ = running
    assert result.first.status == "SUCCEEDED"
    assert result.first.path == FIRST_PATH
    assert result.first.started_by == "operator"
    assert result.first_champion == "1"


def test_drift_retrains_through_the_plans_schedule_alarm_and_rule(
    running: tuple[LocalPlatform, LoopResult, Timeline],
) -> None:
    platform, result, _ = running
    assert (
        result.drift_job
        == json.loads(
            platform.client("scheduler").get_schedule(Name=platform.outputs["drift_schedule_name"])[
                "Target"
            ]["Input"]
        )["JobName"]
    )
    assert result.drift_summary["drifted_features"], result.drift_summary
    assert result.alarm == platform.outputs["drift_alarm_name"]
    assert result.alarm_state == "ALARM"
    assert result.rule == platform.outputs["retrain_rule_name"]
    assert result.retrain.started_by == f"rule {result.rule}"
    assert result.retrain.path == FIRST_PATH
    assert (result.champion, result.swapped_to) == ("2", "2")
    # register compiled and verified each version: the server runs ONNX, not pyfunc.
    import urllib.request

    server = platform.pod("mlops-serving/model-server").url(80)
    with urllib.request.urlopen(f"{server}/health/ready", timeout=10) as response:  # noqa: S310
        ready = json.loads(response.read())
    assert (ready["version"], ready["path"]) == ("2", "compiled"), ready
    # Served before and after the swap, and not one request failed.
    assert {"1", "2"} <= set(result.traffic.versions)
    assert result.traffic.failed == 0


def test_the_pods_run_with_the_plans_user_limits_and_read_only_root(
    running: tuple[LocalPlatform, LoopResult, Timeline], engine: Engine
) -> None:
    platform, _, _ = running
    for key, pod in platform.pods.items():
        run = pod.running.run
        assert run.read_only_root and run.run_as_user not in (None, 0), key
        assert pod.running.exec("id", "-u").strip() == str(run.run_as_user)
        with pytest.raises(EngineError, match="Read-only file system"):
            pod.running.exec("touch", "/written")
        info = json.loads(engine.command("inspect", run.name).stdout)[0]
        assert info["HostConfig"]["Memory"] == run.memory_limit_bytes, key


def test_mlops_verify_passes_on_the_running_platform(
    running: tuple[LocalPlatform, LoopResult, Timeline], tmp_path: Path
) -> None:
    platform, _, _ = running
    receipt = verify_local(platform, tmp_path)
    assert [c.name for c in receipt.checks] == [
        "batch-queue", "tracking-from-job", "model-server", "drift-schedule", "alarms",
        "retrain-rule",
    ]  # fmt: skip
    assert receipt.passed, receipt.render()
    written = json.loads((tmp_path / "up-receipt-local.json").read_text())
    assert written["passed"] and written["kind"] == "up"
    assert any("mlops-verify-noop" in c for c in written["created"])


def test_least_privilege_report_has_no_denied_call(
    running: tuple[LocalPlatform, LoopResult, Timeline],
) -> None:
    platform, _, _ = running
    report = least_privilege.build(platform)
    assert report.denied == []
    by_resource = {r.resource: r for r in report.roles}
    job = by_resource["mlops-local-training-job-role"]
    used = {action for action, _ in job.allowed}
    # The drift job's metrics (conditioned on the namespace) and the KMS use S3 implies.
    assert {"s3:PutObject", "cloudwatch:PutMetricData", "kms:GenerateDataKey"} <= used
    for role in ("retrain-role", "retrain-events-role", "retrain-drift-scheduler-role",
                 "model-server-role", "training-execution-role"):  # fmt: skip
        assert f"mlops-local-{role}" in by_resource, sorted(by_resource)

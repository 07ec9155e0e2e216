"""`mlops verify` against the emulator: the checks that need no running workload, the
receipt, and the command's answers to a missing stack or missing credentials. (The whole
verify, jobs and model server included, runs against the local platform in
tests/local/test_local_platform.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from mlops.cli import main
from mlops.verify import Check, UpReceipt, check_alarms, check_rule, check_schedule

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def _triggers(clients: Any, *, schedule_state: str = "ENABLED") -> dict[str, Any]:
    iam = clients("iam")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:retrain"
    clients("scheduler").create_schedule(
        Name="drift", ScheduleExpression="rate(1 day)", State=schedule_state,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:scheduler:::aws-sdk:batch:submitJob", "RoleArn": role, "Input": "{}"},
    )  # fmt: skip
    clients("cloudwatch").put_metric_alarm(
        AlarmName="drift-alarm", Namespace="MLOps/Drift", MetricName="MaxDriftScore",
        Statistic="Maximum", Period=3600, EvaluationPeriods=1, Threshold=0.1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    clients("events").put_rule(
        Name="on-drift", EventPattern=json.dumps({"source": ["aws.cloudwatch"]})
    )
    clients("events").put_targets(
        Rule="on-drift", Targets=[{"Id": "sfn", "Arn": machine, "RoleArn": role}]
    )
    return {
        "region": REGION, "drift_schedule_name": "drift", "drift_alarm_name": "drift-alarm",
        "retrain_rule_name": "on-drift", "state_machine_arn": machine,
    }  # fmt: skip


def test_the_triggers_of_the_loop_pass_when_they_exist_and_are_enabled(aws: Any) -> None:
    outputs = _triggers(aws)
    assert "ENABLED, rate(1 day)" in check_schedule(aws, outputs, Check("s"))
    assert "actions enabled" in check_alarms(aws, outputs, Check("a"))
    assert "the retrain state machine" in check_rule(aws, outputs, Check("r"))


def test_a_disabled_schedule_or_a_rule_aimed_elsewhere_fails_with_the_reason(aws: Any) -> None:
    from mlops.verify import VerifyError

    outputs = _triggers(aws, schedule_state="DISABLED")
    with pytest.raises(VerifyError, match="drift is DISABLED: the drift job never runs"):
        check_schedule(aws, outputs, Check("s"))
    elsewhere = outputs | {
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"
    }
    with pytest.raises(VerifyError, match="does not target"):
        check_rule(aws, elsewhere, Check("r"))
    with pytest.raises(VerifyError, match="no output 'drift_alarm_name'"):
        check_alarms(aws, {"region": REGION}, Check("a"))


def test_the_receipt_lists_every_check_and_passes_only_when_all_do(tmp_path: Path) -> None:
    receipt = UpReceipt(stack="dev", region=REGION, started_at="2026-12-02T00:00:00+00:00")
    receipt.checks = [
        Check("batch-queue", True, 4.0, "ok", created=["batch job a"]),
        Check("alarms", False, 0.1, "alarm x does not exist"),
    ]
    assert not receipt.passed
    receipt.write(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["kind"] == "up" and data["passed"] is False
    assert data["created"] == ["batch job a"]
    assert "FAIL  alarms" in receipt.render() and "1/2 checks passed" in receipt.render()


def test_verify_exits_2_naming_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_STACK_OUTPUTS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no Pulumi CLI
    runner = CliRunner()
    result = runner.invoke(main, ["verify", "--stack", "dev"])
    assert result.exit_code == 2
    assert "give --outputs FILE" in result.output
    result = runner.invoke(
        main, ["verify", "--stack", "dev", "--outputs", str(tmp_path / "x.json")]
    )
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "o.json").write_text(json.dumps({"region": REGION}))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = runner.invoke(
        main, ["verify", "--stack", "dev", "--outputs", str(tmp_path / "o.json")]
    )
    assert result.exit_code == 2 and "no AWS credentials" in result.output, result.output

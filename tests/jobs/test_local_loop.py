"""The drift → retrain loop of the local platform: the event-pattern matcher, the alarm
evaluator, monitoring seeded from the plan, and the whole loop once on real processes."""

from __future__ import annotations

import copy
import io
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from training_jobs import contract, sample_data
from training_jobs.local import alarms, demo, loop
from training_jobs.local.events import PatternError, matches, parse_pattern
from training_jobs.local.processes import port_in_use
from training_jobs.local.seed import (
    PlanError,
    event_rules_in,
    metric_alarms_in,
    pipeline_jobs,
    read_plan,
    seed_monitoring,
)
from training_jobs.local.stack import LocalConfig, LocalPlatform
from training_jobs.local.traffic import ServerClient, Tally, metric_value
from training_jobs.tracking import make_client

PLAN_PATH = Path(__file__).parent / "fixtures" / "plan_local_loop.json"
ALARM = "mlops-local-drift"
ALARM_ARN = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"
STATE_MACHINE = "arn:aws:sfn:us-east-1:123456789012:stateMachine/mlops-local-retrain-62cf635"


@pytest.fixture
def plan() -> dict[str, Any]:
    return read_plan(PLAN_PATH)


def _retrain_pattern(plan: dict[str, Any]) -> dict[str, Any]:
    (rule,) = [r for r in event_rules_in(plan) if r["Name"].startswith("mlops-local-retrain")]
    return parse_pattern(rule["EventPattern"])


def _event(state: str = "ALARM", arn: str = ALARM_ARN) -> dict[str, Any]:
    spec = alarms.AlarmSpec(
        name=arn.rsplit(":", 1)[-1],
        arn=arn,
        namespace=contract.DRIFT_METRIC_NAMESPACE,
        metric_name=contract.DRIFT_METRIC_MAX,
        dimensions=(("Model", "churn"),),
        statistic="Maximum",
        period_s=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        threshold=0.1,
        comparison="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        state="OK",
    )
    evaluation = alarms.Evaluation(state, "test", (0.5,), 1)  # type: ignore[arg-type]
    return alarms.state_change_event(
        spec, evaluation, region="us-east-1", now=datetime(2026, 1, 1, tzinfo=UTC), event_id="1"
    )


# -- the event-pattern matcher ---------------------------------------------------------------

PATTERN_CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"source": ["a"]}, {"source": "a"}, True),
    ({"source": ["a", "b"]}, {"source": "c"}, False),
    ({"source": ["a"]}, {}, False),
    ({"detail": {"state": {"value": ["ALARM"]}}}, {"detail": {"state": {"value": "ALARM"}}}, True),
    ({"detail": {"state": {"value": ["ALARM"]}}}, {"detail": {"state": {"value": "OK"}}}, False),
    ({"detail": {"state": {"value": ["ALARM"]}}}, {"detail": {"state": "ALARM"}}, False),
    ({"resources": ["arn:x"]}, {"resources": ["arn:y", "arn:x"]}, True),
    ({"resources": ["arn:x"]}, {"resources": ["arn:y"]}, False),
    ({"n": [5]}, {"n": 5.0}, True),
    ({"n": [1]}, {"n": True}, False),  # JSON true is not 1 (moto says it is: Python's True == 1)
    ({"s": [{"prefix": "mlops-"}]}, {"s": "mlops-local"}, True),
    ({"s": [{"prefix": "mlops-"}]}, {"s": "other"}, False),
    ({"s": [{"anything-but": ["OK", "INSUFFICIENT_DATA"]}]}, {"s": "ALARM"}, True),
    ({"s": [{"anything-but": "ALARM"}]}, {"s": "ALARM"}, False),
    ({"s": [{"exists": False}]}, {}, True),
    ({"s": [{"exists": True}]}, {}, False),
    ({"n": [{"numeric": [">=", 0.1, "<", 1]}]}, {"n": 0.5}, True),
    ({"n": [{"numeric": [">=", 0.1]}]}, {"n": 0.05}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), PATTERN_CASES)
def test_pattern_matching(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


@pytest.mark.parametrize(
    ("pattern", "event", "expected"), [c for c in PATTERN_CASES if c[1] != {"n": True}]
)
def test_pattern_matching_agrees_with_motos_matcher(
    pattern: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    # moto's TestEventPattern API is a stub, but its rule matcher is real: a second opinion.
    from moto.events.models import EventPattern

    assert EventPattern(None, pattern).matches_event(event) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"source": "a"}, "'source': 'a' must be an array"),
        ({"source": []}, "an empty array matches nothing"),
        ({"source": [{"wildcard": "a*"}]}, "filter 'wildcard' is not supported"),
        ({"n": [{"numeric": [">"]}]}, "numeric takes"),
    ],
)
def test_patterns_it_cannot_match_are_refused(pattern: dict[str, Any], message: str) -> None:
    with pytest.raises(PatternError, match=message):
        matches(pattern, {"source": "a", "n": 1})


def test_the_plans_retrain_rule_matches_only_the_drift_alarm_entering_alarm(
    plan: dict[str, Any],
) -> None:
    pattern = _retrain_pattern(plan)

    assert matches(pattern, _event("ALARM"))
    assert not matches(pattern, _event("OK"))
    assert not matches(pattern, _event("ALARM", arn=ALARM_ARN.replace("drift", "other")))


# -- the alarm evaluator ---------------------------------------------------------------------


def _spec(**changes: Any) -> alarms.AlarmSpec:
    spec = alarms.AlarmSpec(
        name="a",
        arn="arn:aws:cloudwatch:us-east-1:123456789012:alarm:a",
        namespace="N",
        metric_name="M",
        dimensions=(),
        statistic="Maximum",
        period_s=60,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        threshold=0.1,
        comparison="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        state="OK",
    )
    return alarms.AlarmSpec(**{**spec.__dict__, **changes})


@pytest.mark.parametrize(
    ("changes", "values", "state"),
    [
        ({}, [0.1], "ALARM"),  # at the threshold: "or equal"
        ({}, [0.0999], "OK"),
        ({}, [None], "OK"),  # missing is not breaching
        ({"treat_missing_data": "breaching"}, [None], "ALARM"),
        ({"treat_missing_data": "missing"}, [None], "INSUFFICIENT_DATA"),
        ({"treat_missing_data": "ignore", "state": "ALARM"}, [None], "ALARM"),
        ({"comparison": "GreaterThanThreshold"}, [0.1], "OK"),
        ({"comparison": "LessThanThreshold"}, [0.05], "ALARM"),
        ({"evaluation_periods": 3, "datapoints_to_alarm": 2}, [0.5, 0.0, 0.5], "ALARM"),
        ({"evaluation_periods": 3, "datapoints_to_alarm": 2}, [0.5, 0.0, None], "OK"),
    ],
)
def test_alarm_evaluation(changes: dict[str, Any], values: list[float | None], state: str) -> None:
    assert alarms.evaluate(_spec(**changes), values).state == state


def test_alarm_reason_names_the_datapoint_and_threshold() -> None:
    evaluation = alarms.evaluate(_spec(), [0.4321])
    assert evaluation.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [0.4321] was greater than or equal "
        "to the threshold (0.1)."
    )


def test_an_alarm_it_cannot_evaluate_is_named() -> None:
    with pytest.raises(alarms.AlarmError, match=r"alarm 'x': ComparisonOperator 'LessThanLower"):
        alarms.AlarmSpec.from_description(
            {"AlarmName": "x", "ComparisonOperator": "LessThanLowerThreshold"}
        )


def test_datapoints_land_in_their_periods() -> None:
    spec = _spec(evaluation_periods=3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [
        {"Timestamp": start + timedelta(seconds=130), "Maximum": 0.2},
        {"Timestamp": start + timedelta(seconds=10), "Maximum": 0.1},
        {"Timestamp": start + timedelta(seconds=20), "Maximum": 0.3},
    ]
    assert alarms.period_values(spec, points, start) == [0.3, None, 0.2]


# -- monitoring seeded from the plan, evaluated in the emulator ------------------------------


def test_plan_alarms_rules_and_pipeline_are_read(plan: dict[str, Any]) -> None:
    drift = next(a for a in metric_alarms_in(plan) if a["AlarmName"] == ALARM)
    assert {k: drift[k] for k in ("Namespace", "MetricName", "Statistic", "Threshold")} == {
        "Namespace": contract.DRIFT_METRIC_NAMESPACE,
        "MetricName": contract.DRIFT_METRIC_MAX,
        "Statistic": "Maximum",
        "Threshold": contract.DRIFT_THRESHOLD_DEFAULT,
    }
    assert drift["Dimensions"] == [{"Name": contract.DRIFT_DIMENSION_MODEL, "Value": "churn"}]
    rule = next(r for r in event_rules_in(plan) if r["Name"].startswith("mlops-local-retrain"))
    assert [t["Arn"] for t in rule["Targets"]] == [STATE_MACHINE]
    assert pipeline_jobs(plan, STATE_MACHINE) == ("prepare", "train", "evaluate", "register")


def test_pipeline_jobs_name_an_unknown_state_machine(plan: dict[str, Any]) -> None:
    with pytest.raises(PlanError, match="no state machine named 'nope'"):
        pipeline_jobs(plan, "arn:aws:sfn:us-east-1:1:stateMachine/nope")


def test_drift_alarm_goes_to_alarm_in_the_emulator_and_routes_to_the_pipeline(
    aws_env: None, plan: dict[str, Any]
) -> None:
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        events = boto3.client("events", region_name="us-east-1")
        seeded = seed_monitoring(
            plan,
            cloudwatch=cloudwatch,
            sns=boto3.client("sns", region_name="us-east-1"),
            events=events,
        )
        seed_monitoring(plan, cloudwatch=cloudwatch, sns=boto3.client("sns"), events=events)

        def put(value: float) -> None:
            cloudwatch.put_metric_data(
                Namespace=contract.DRIFT_METRIC_NAMESPACE,
                MetricData=[
                    {
                        "MetricName": contract.DRIFT_METRIC_MAX,
                        "Dimensions": [{"Name": "Model", "Value": "churn"}],
                        "Value": value,
                        "Timestamp": datetime.now(UTC),
                    }
                ],
            )

        put(0.04)
        _, quiet = alarms.evaluate_alarm(cloudwatch, ALARM)
        state_quiet = alarms.describe(cloudwatch, ALARM).state
        put(0.37)
        before, loud = alarms.evaluate_alarm(cloudwatch, ALARM)
        stored = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
        routed = loop.route_event(
            events,
            alarms.state_change_event(before, loud, region="us-east-1", now=datetime.now(UTC)),
        )
        topic_arns = {t["TopicArn"] for t in boto3.client("sns").list_topics()["Topics"]}

    assert ALARM in seeded.alarms and len(seeded.rules) == 2
    assert (quiet.state, state_quiet) == ("OK", "OK")
    assert (loud.state, stored["StateValue"]) == ("ALARM", "ALARM")
    assert "[0.37] was greater than or equal to the threshold (0.1)" in stored["StateReason"]
    assert set(stored["AlarmActions"]) <= topic_arns  # the plan's topic, as the emulator names it
    assert [t["Arn"] for _, t in routed] == [STATE_MACHINE]


def test_alarm_missing_from_the_emulator_is_named(aws_env: None) -> None:
    with mock_aws(), pytest.raises(alarms.AlarmError, match="alarm 'gone' does not exist"):
        alarms.evaluate_alarm(boto3.client("cloudwatch", region_name="us-east-1"), "gone")


def test_metric_value_reads_prometheus_text() -> None:
    text = (
        "# HELP mlops_serve_capture_uploaded_records_total x\n"
        "mlops_serve_capture_uploaded_records_total 4005.0\n"
        "mlops_serve_capture_uploaded_records_created 1.7e9\n"
        'mlops_serve_requests_total{route="/invocations",status="200"} 3.0\n'
        'mlops_serve_requests_total{route="/metrics",status="200"} 2.0\n'
    )
    assert metric_value(text, "mlops_serve_capture_uploaded_records_total") == 4005
    assert metric_value(text, "mlops_serve_requests_total") == 5
    assert metric_value(text, "absent") == 0


def test_demo_without_a_drift_alarm_in_the_plan_says_the_loop_is_skipped(
    plan: dict[str, Any],
) -> None:
    broken = copy.deepcopy(plan)
    del broken["outputs"]["drift_alarm_name"]
    with pytest.raises(loop.LoopError, match="the plan has no drift alarm"):
        loop.run(
            _platform_stub(broken),
            server=None,  # type: ignore[arg-type]
            timeline=loop.Timeline(0.0, io.StringIO()),
            config=loop.LoopConfig(),
            model_name="churn",
        )


def _platform_stub(plan: dict[str, Any]) -> Any:
    class Stub:
        outputs = plan["outputs"]

    return Stub()


# -- the whole loop, once, on real processes -------------------------------------------------


@pytest.mark.e2e
def test_drift_loop_retrains_promotes_and_the_server_hot_swaps(
    aws_env: None, plan: dict[str, Any], tmp_path: Path
) -> None:
    args = demo.parse_args(["demo", "--rows", "3000", "--traffic-rows", "1000"])
    out = io.StringIO()
    with (
        LocalPlatform(LocalConfig(work_dir=tmp_path / "work"), plan) as platform,
        ExitStack() as processes,
    ):
        timeline = loop.Timeline(0.0, out)
        result = demo.run_demo(args, platform, out, timeline, processes)
        assert result.loop is not None, out.getvalue()
        looped = result.loop

        cloudwatch = platform.client("cloudwatch")
        alarm = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
        client = make_client(platform.tracking_uri)
        champion = client.get_model_version_by_alias("churn", "champion")
        versions = sorted(int(v.version) for v in client.search_model_versions("name = 'churn'"))
        # The demo's server is still running: ask it which version answers now.
        answer = Tally()
        http = ServerClient(looped.server_host, looped.server_port)
        answered_by = http.predict(sample_data.generate(3, seed=5), answer)
        http.close()
        ports = (platform.moto_port, platform.mlflow_port, looped.server_port)

    assert set(looped.drift.drifted_features) == {
        "monthly_charges",
        "support_calls_90d",
        "logins_30d",
        "plan",
    }
    assert (looped.alarm_state, alarm["StateValue"]) == ("ALARM", "ALARM")
    assert "Threshold Crossed" in alarm["StateReason"]
    assert looped.rule_name.startswith("mlops-local-retrain-on-drift")
    assert looped.retrain.decision == "promote"
    assert (versions, str(champion.version), looped.swapped_to) == ([1, 2], "2", "2")
    assert champion.run_id == looped.retrain.run_id
    assert answered_by == "2"
    assert looped.traffic.failed == 0 and looped.traffic.requests >= 21
    assert set(looped.traffic.versions) == {"1", "2"}
    assert not any(port_in_use(p) for p in ports)
    text = out.getvalue()
    for step in ("serving", "shifted traffic", "drift", "alarm", "event", "retrain", "hot swap"):
        assert f"] {step}" in text

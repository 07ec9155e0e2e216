"""CloudWatch metric alarms, evaluated the way CloudWatch would; moto stores alarms but never
evaluates them.

`evaluate` is the pure rule: the last N periods' values (oldest first, None where no data
arrived) against the alarm's threshold, comparison, M-of-N and missing-data treatment.
`evaluate_alarm` reads the alarm back from the emulator, asks it for the metric statistics
of those periods, applies the rule and sets the state with a CloudWatch-style reason.
`state_change_event` is the EventBridge event CloudWatch emits on a state change.

One simplification: periods end at "now" rather than on CloudWatch's period boundaries, so
a metric published a moment ago is evaluated at once instead of when its period closes.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

State = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]

COMPARISONS: Final[Mapping[str, tuple[Callable[[float, float], bool], str]]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
TREAT_MISSING: Final = ("missing", "ignore", "breaching", "notBreaching")


class AlarmError(Exception):
    """The alarm cannot be evaluated here; the message names the alarm and the field."""


@dataclass(frozen=True)
class AlarmSpec:
    """The parts of a metric alarm its evaluation depends on."""

    name: str
    arn: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str
    state: State

    @classmethod
    def from_description(cls, alarm: Mapping[str, Any]) -> AlarmSpec:
        """From one `DescribeAlarms` MetricAlarms entry."""
        name = str(alarm.get("AlarmName", "?"))
        comparison = str(alarm.get("ComparisonOperator"))
        if comparison not in COMPARISONS:
            raise AlarmError(
                f"alarm {name!r}: ComparisonOperator {comparison!r} is not evaluated locally "
                f"(supported: {', '.join(COMPARISONS)})"
            )
        if not alarm.get("Statistic") or not alarm.get("MetricName"):
            raise AlarmError(
                f"alarm {name!r}: only single-metric alarms with a Statistic are evaluated locally"
            )
        periods = int(alarm.get("EvaluationPeriods") or 1)
        treat = str(alarm.get("TreatMissingData") or "missing")
        if treat not in TREAT_MISSING:
            raise AlarmError(
                f"alarm {name!r}: TreatMissingData {treat!r} is not one of {TREAT_MISSING}"
            )
        return cls(
            name=name,
            arn=str(alarm.get("AlarmArn", "")),
            namespace=str(alarm["Namespace"]),
            metric_name=str(alarm["MetricName"]),
            dimensions=tuple(
                (str(d["Name"]), str(d["Value"])) for d in alarm.get("Dimensions") or ()
            ),
            statistic=str(alarm["Statistic"]),
            period_s=int(alarm["Period"]),
            evaluation_periods=periods,
            datapoints_to_alarm=int(alarm.get("DatapointsToAlarm") or periods),
            threshold=float(alarm["Threshold"]),
            comparison=comparison,
            treat_missing_data=treat,
            state=alarm.get("StateValue") or "INSUFFICIENT_DATA",
        )


@dataclass(frozen=True)
class Evaluation:
    state: State
    reason: str
    values: tuple[float | None, ...]
    breaching: int


def evaluate(spec: AlarmSpec, values: Sequence[float | None]) -> Evaluation:
    """The state `spec` should be in given the last `evaluation_periods` values, oldest first."""
    if len(values) != spec.evaluation_periods:
        raise ValueError(
            f"alarm {spec.name!r} evaluates {spec.evaluation_periods} period(s), "
            f"got {len(values)} value(s)"
        )
    compare, words = COMPARISONS[spec.comparison]
    present = [v for v in values if v is not None]
    missing = len(values) - len(present)
    breaching = sum(1 for v in present if compare(v, spec.threshold))
    if spec.treat_missing_data == "breaching":
        breaching += missing
    shown = ", ".join("no data" if v is None else f"{v:.4g}" for v in values)
    crossed = (
        f"{breaching} out of the last {len(values)} datapoints [{shown}] "
        f"{'was' if breaching == 1 else 'were'} {words} the threshold ({spec.threshold:g})"
    )
    if breaching >= spec.datapoints_to_alarm:
        return Evaluation("ALARM", f"Threshold Crossed: {crossed}.", tuple(values), breaching)
    if not present and spec.treat_missing_data == "missing":
        return Evaluation(
            "INSUFFICIENT_DATA",
            f"Insufficient Data: no datapoints in the last {len(values)} period(s).",
            tuple(values),
            0,
        )
    if not present and spec.treat_missing_data == "ignore":
        return Evaluation(spec.state, "No datapoints; missing data is ignored.", tuple(values), 0)
    return Evaluation(
        "OK",
        f"Threshold not crossed: {crossed} (needs {spec.datapoints_to_alarm} to alarm).",
        tuple(values),
        breaching,
    )


def period_values(
    spec: AlarmSpec, datapoints: Sequence[Mapping[str, Any]], start: datetime
) -> list[float | None]:
    """`GetMetricStatistics` datapoints placed in the alarm's periods from `start`."""
    values: list[float | None] = [None] * spec.evaluation_periods
    for point in datapoints:
        index = int((_utc(point["Timestamp"]) - start).total_seconds() // spec.period_s)
        index = min(max(index, 0), spec.evaluation_periods - 1)
        value = float(point[spec.statistic])
        current = values[index]
        # Two datapoints in one period (emulator bucketing): keep the one the statistic favours.
        if (
            current is None
            or (spec.statistic == "Maximum" and value > current)
            or (spec.statistic == "Minimum" and value < current)
        ):
            values[index] = value
    return values


def describe(cloudwatch: Any, name: str) -> AlarmSpec:
    found = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])
    alarms = found.get("MetricAlarms") or []
    if not alarms:
        raise AlarmError(f"alarm {name!r} does not exist in the emulator; was the plan seeded?")
    return AlarmSpec.from_description(alarms[0])


def evaluate_alarm(
    cloudwatch: Any, name: str, now: datetime | None = None
) -> tuple[AlarmSpec, Evaluation]:
    """Evaluate alarm `name` in the emulator and set its state; returns it as it was before."""
    spec = describe(cloudwatch, name)
    end = _utc(now or datetime.now(UTC))
    start = end - timedelta(seconds=spec.period_s * spec.evaluation_periods)
    stats = cloudwatch.get_metric_statistics(
        Namespace=spec.namespace,
        MetricName=spec.metric_name,
        Dimensions=[{"Name": k, "Value": v} for k, v in spec.dimensions],
        # The emulator drops sub-second precision on the bounds: a metric put this very
        # second must still fall inside.
        StartTime=start,
        EndTime=end + timedelta(seconds=1),
        Period=spec.period_s,
        Statistics=[spec.statistic],
    )
    evaluation = evaluate(spec, period_values(spec, stats.get("Datapoints") or [], start))
    if evaluation.state != spec.state:
        cloudwatch.set_alarm_state(
            AlarmName=spec.name,
            StateValue=evaluation.state,
            StateReason=evaluation.reason,
            StateReasonData=json.dumps(
                {
                    "version": "1.0",
                    "statistic": spec.statistic,
                    "period": spec.period_s,
                    "recentDatapoints": [v for v in evaluation.values if v is not None],
                    "threshold": spec.threshold,
                    "evaluatedDatapoints": evaluation.breaching,
                }
            ),
        )
    return spec, evaluation


def state_change_event(
    spec: AlarmSpec,
    evaluation: Evaluation,
    *,
    region: str,
    now: datetime,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" event EventBridge receives for this transition."""
    account = spec.arn.split(":")[4] if spec.arn.count(":") >= 5 else ""
    when = _utc(now).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": when,
        "region": region,
        "resources": [spec.arn],
        "detail": {
            "alarmName": spec.name,
            "state": {"value": evaluation.state, "reason": evaluation.reason, "timestamp": when},
            "previousState": {"value": spec.state},
            "configuration": {
                "metrics": [
                    {
                        "metricStat": {
                            "metric": {
                                "namespace": spec.namespace,
                                "name": spec.metric_name,
                                "dimensions": dict(spec.dimensions),
                            },
                            "period": spec.period_s,
                            "stat": spec.statistic,
                        }
                    }
                ]
            },
        },
    }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

"""Seed the emulator from an offline plan (`mlops plan --stack local --json PATH`).

The plan is the Pulumi program's resource graph recorded under mocks. Seeding creates what
the jobs touch — every S3 bucket by its physical name, versioned when the plan's
BucketVersioning says Enabled — and the plan's stack outputs become the file the jobs read
through MLOPS_STACK_OUTPUTS. Nothing here imports `infra` or Pulumi: the plan is data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from training_jobs import contract

PLAN_SCHEMA: Final = 1
BUCKET_TYPES: Final = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
VERSIONING_TYPES: Final = frozenset(
    {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
)


class PlanError(Exception):
    """The plan file cannot seed the local platform; the message says why."""


class SeedResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    buckets: dict[str, bool]  # physical name → versioned
    created: tuple[str, ...]
    outputs: dict[str, Any]


def read_plan(path: Path) -> dict[str, Any]:
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PlanError(
            f"--plan: {str(path)!r} does not exist; write it with "
            "`mlops plan --stack local --json PATH`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"--plan: {str(path)!r} is not JSON ({exc.msg} at line {exc.lineno})"
        ) from exc
    if not isinstance(plan, dict):
        raise PlanError(f"--plan: {str(path)!r} holds a {type(plan).__name__}, not a plan object")
    return plan


def buckets_in(plan: Mapping[str, Any]) -> dict[str, bool]:
    """Physical bucket name → whether the plan enables versioning on it."""
    if plan.get("schema") != PLAN_SCHEMA:
        raise PlanError(
            f"plan schema {plan.get('schema')!r} is not supported (expected {PLAN_SCHEMA}); "
            "regenerate it with this version's `mlops plan`"
        )
    resources = plan.get("resources")
    if not isinstance(resources, list):
        raise PlanError("plan has no 'resources' list")
    by_urn: dict[str, str] = {}
    buckets: dict[str, bool] = {}
    for resource in resources:
        if resource.get("type") in BUCKET_TYPES:
            name = (resource.get("inputs") or {}).get("bucket")
            if not isinstance(name, str) or not name:
                raise PlanError(
                    f"bucket resource {resource.get('name')!r} has no physical name "
                    "(inputs.bucket); the local stack must name its buckets"
                )
            buckets[name] = False
            if resource.get("urn"):
                by_urn[str(resource["urn"])] = name
    for resource in resources:
        if resource.get("type") not in VERSIONING_TYPES:
            continue
        inputs = resource.get("inputs") or {}
        target = inputs.get("bucket")
        if target not in buckets:  # an id the recorder could not resolve: follow the edge
            target = next(
                (by_urn[d] for d in resource.get("dependencies", []) if d in by_urn), None
            )
        if target is None:
            raise PlanError(f"versioning resource {resource.get('name')!r} names no planned bucket")
        status = (inputs.get("versioningConfiguration") or {}).get("status")
        buckets[str(target)] = status == "Enabled"
    return buckets


def stack_outputs(plan: Mapping[str, Any], buckets: Mapping[str, bool]) -> dict[str, Any]:
    """The plan's outputs, checked: every data bucket the jobs read is one the plan creates."""
    outputs = dict(plan.get("outputs") or {})
    missing = [o for o in contract.OUTPUT_BUCKETS.values() if not outputs.get(o)]
    if missing:
        raise PlanError(f"plan outputs lack {', '.join(missing)}")
    unknown = [
        f"{o}={outputs[o]}" for o in contract.OUTPUT_BUCKETS.values() if outputs[o] not in buckets
    ]
    if unknown:
        raise PlanError(f"plan outputs name buckets the plan does not create: {', '.join(unknown)}")
    return outputs


def seed(plan: Mapping[str, Any], s3: Any, region: str = "us-east-1") -> SeedResult:
    """Create the plan's buckets (idempotently) and return the stack outputs to write."""
    buckets = buckets_in(plan)
    outputs = stack_outputs(plan, buckets)
    created: list[str] = []
    for name, versioned in sorted(buckets.items()):
        if not _exists(s3, name):
            kwargs: dict[str, Any] = {"Bucket": name}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**kwargs)
            created.append(name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return SeedResult(buckets=dict(buckets), created=tuple(created), outputs=outputs)


def _exists(s3: Any, name: str) -> bool:
    # CreateBucket on a bucket we own succeeds silently in us-east-1, so ask first.
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def write_outputs(outputs: Mapping[str, Any], path: Path) -> Path:
    """The `pulumi stack output --json` equivalent the jobs read via MLOPS_STACK_OUTPUTS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(outputs), indent=2, sort_keys=True) + "\n")
    return path


# ---------------------------------------------------------------------------------------
# Monitoring and the retrain trigger: alarms, their topics, event rules and their targets.

ALARM_TYPE: Final = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_TYPE: Final = "aws:sns/topic:Topic"
RULE_TYPE: Final = "aws:cloudwatch/eventRule:EventRule"
TARGET_TYPE: Final = "aws:cloudwatch/eventTarget:EventTarget"
STATE_MACHINE_TYPE: Final = "aws:sfn/stateMachine:StateMachine"
JOB_DEFINITION_TYPE: Final = "aws:batch/jobDefinition:JobDefinition"
BATCH_SYNC: Final = "arn:aws:states:::batch:submitJob.sync"
# PutMetricAlarm parameters, from the Pulumi input names the plan records.
_ALARM_FIELDS: Final = {
    "namespace": "Namespace",
    "metricName": "MetricName",
    "statistic": "Statistic",
    "period": "Period",
    "evaluationPeriods": "EvaluationPeriods",
    "datapointsToAlarm": "DatapointsToAlarm",
    "threshold": "Threshold",
    "comparisonOperator": "ComparisonOperator",
    "treatMissingData": "TreatMissingData",
    "alarmDescription": "AlarmDescription",
}
_ACTION_FIELDS: Final = {
    "alarmActions": "AlarmActions",
    "okActions": "OKActions",
    "insufficientDataActions": "InsufficientDataActions",
}


class MonitoringSeed(BaseModel):
    model_config = ConfigDict(frozen=True)

    topics: dict[str, str]  # ARN in the plan → ARN in the emulator
    alarms: tuple[str, ...]
    rules: tuple[str, ...]


def _resources(plan: Mapping[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in plan.get("resources") or () if r.get("type") == type_]


def _physical_name(resource: Mapping[str, Any]) -> str:
    name = (resource.get("inputs") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise PlanError(
            f"{resource.get('type')} {resource.get('name')!r} has no physical name (inputs.name)"
        )
    return name


def metric_alarms_in(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PutMetricAlarm arguments for every single-metric alarm the plan declares."""
    alarms = []
    for resource in _resources(plan, ALARM_TYPE):
        inputs = resource.get("inputs") or {}
        if inputs.get("metricQueries"):
            continue  # metric-math alarms are not evaluated locally
        kwargs: dict[str, Any] = {"AlarmName": _physical_name(resource)}
        kwargs |= {api: inputs[key] for key, api in _ALARM_FIELDS.items() if key in inputs}
        kwargs |= {api: list(inputs[key]) for key, api in _ACTION_FIELDS.items() if key in inputs}
        kwargs["Dimensions"] = [
            {"Name": str(k), "Value": str(v)} for k, v in (inputs.get("dimensions") or {}).items()
        ]
        missing = [f for f in ("MetricName", "Namespace", "Period", "Threshold") if f not in kwargs]
        if missing:
            raise PlanError(f"alarm {resource.get('name')!r} lacks {', '.join(missing)}")
        alarms.append(kwargs)
    return alarms


def event_rules_in(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rules with an event pattern, each with its targets: {Name, EventPattern, Targets}."""
    targets: dict[str, list[dict[str, str]]] = {}
    for resource in _resources(plan, TARGET_TYPE):
        inputs = resource.get("inputs") or {}
        target = {"Id": str(resource.get("name"))[:64], "Arn": str(inputs.get("arn"))}
        if inputs.get("roleArn"):
            target["RoleArn"] = str(inputs["roleArn"])
        targets.setdefault(str(inputs.get("rule")), []).append(target)
    rules = []
    for resource in _resources(plan, RULE_TYPE):
        inputs = resource.get("inputs") or {}
        if not inputs.get("eventPattern"):
            continue  # schedules fire on time, not on events; nothing local reacts to them
        name = _physical_name(resource)
        rules.append(
            {
                "Name": name,
                "EventPattern": str(inputs["eventPattern"]),
                "Description": str(inputs.get("description", "")),
                "Targets": targets.get(name, []),
            }
        )
    return rules


def seed_monitoring(
    plan: Mapping[str, Any], *, cloudwatch: Any, sns: Any, events: Any
) -> MonitoringSeed:
    """Create the plan's SNS topics, metric alarms and event rules (all idempotent calls)."""
    topics: dict[str, str] = {}
    created_topics: dict[str, str] = {}
    for resource in _resources(plan, TOPIC_TYPE):
        name = _physical_name(resource)
        created_topics[name] = str(sns.create_topic(Name=name)["TopicArn"])
    for alarm in metric_alarms_in(plan):
        for field in _ACTION_FIELDS.values():
            actions = []
            for arn in alarm.get(field, ()):
                # The offline plan's ARNs are the mocks' guesses; the emulator's are real.
                name = arn.replace("/", ":").rsplit(":", 1)[-1]
                topics.setdefault(arn, created_topics.get(name, arn))
                actions.append(topics[arn])
            if field in alarm:
                alarm[field] = actions
        cloudwatch.put_metric_alarm(**alarm)
    rules = event_rules_in(plan)
    for rule in rules:
        events.put_rule(
            Name=rule["Name"],
            EventPattern=rule["EventPattern"],
            Description=rule["Description"],
            State="ENABLED",
        )
        if rule["Targets"]:
            events.put_targets(Rule=rule["Name"], Targets=rule["Targets"])
    return MonitoringSeed(
        topics=topics,
        alarms=tuple(a["AlarmName"] for a in metric_alarms_in(plan)),
        rules=tuple(r["Name"] for r in rules),
    )


def pipeline_jobs(plan: Mapping[str, Any], state_machine_arn: str) -> tuple[str, ...]:
    """The job modules the state machine runs on its promote path, in order, read from the
    plan: each Batch task's job definition and that definition's `python -m` command."""
    name = state_machine_arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    machines = [r for r in _resources(plan, STATE_MACHINE_TYPE) if _physical_name(r) == name]
    if not machines:
        raise PlanError(f"the plan declares no state machine named {name!r} ({state_machine_arn})")
    definition = json.loads(machines[0]["inputs"]["definition"])
    modules: dict[str, str] = {}
    for resource in _resources(plan, JOB_DEFINITION_TYPE):
        properties = json.loads((resource.get("inputs") or {}).get("containerProperties") or "{}")
        command = properties.get("command") or []
        if len(command) >= 3 and command[-2] == "-m":
            modules[_physical_name(resource)] = str(command[-1]).rsplit(".", 1)[-1]
    states = definition.get("States") or {}
    jobs: list[str] = []
    current: str | None = definition.get("StartAt")
    seen: set[str] = set()
    while current is not None and current not in seen:
        seen.add(current)
        state = states.get(current) or {}
        if state.get("Type") == "Task" and state.get("Resource") == BATCH_SYNC:
            job_definition = str((state.get("Parameters") or {}).get("JobDefinition", ""))
            job = modules.get(job_definition.rsplit("/", 1)[-1].split(":")[0])
            if job is None:
                raise PlanError(f"state {current!r} runs {job_definition!r}, not a planned job")
            jobs.append(job)
        if state.get("Type") == "Choice":  # the first choice is the promote path
            current = ((state.get("Choices") or [{}])[0]).get("Next") or state.get("Default")
        else:
            current = state.get("Next")
    return tuple(jobs)

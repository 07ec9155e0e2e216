"""The platform's loop on the local platform, every step done by what the plan declares:

    operator     raw data → the plan's state machine (prepare → train → evaluate → register,
                 four Batch jobs in the jobs image, under the job role) → first champion
    model server (the plan's Deployment) serves it ← normal, then shifted traffic → captures
    schedule     the plan's drift schedule submits the drift job, as its scheduler role
    alarm        the drift metrics put the plan's drift alarm in ALARM
    rule         the alarm's state-change event matches the plan's retrain rule; its target
                 starts the state machine as the rule's role → new champion → hot swap

What AWS does on its own and the emulator does not is done here, in the open, and said on
the timeline: firing a schedule (the emulator stores schedules but never fires them),
evaluating an alarm, delivering an event to its rule's target (the emulator cannot target
Step Functions). Each is done as the service would do it: as the role the plan gives it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from mlops_local import alarms
from mlops_local.events import matches, parse_pattern
from mlops_local.platform import Credentials, LocalPlatform, PlatformError
from mlops_local.traffic import ServerClient, Tally
from training_jobs import contract, sample_data

RAW_KEY: Final = "churn/sample.csv"
# The new labelled data the retrain reads, beside the sample under the prefix prepare reads.
RETRAIN_KEY: Final = "churn/labelled-after-shift.csv"
RETRAIN_ID_OFFSET: Final = 1_000_000
UPLOADED_METRIC: Final = "mlops_serve_capture_uploaded_records_total"
PROBE_ROWS: Final = 5
SCHEDULE_TYPE: Final = "aws:scheduler/schedule:Schedule"
UNIVERSAL_SUBMIT_JOB: Final = "arn:aws:scheduler:::aws-sdk:batch:submitJob"
SCHEDULER_PRINCIPAL: Final = "scheduler.amazonaws.com"
EVENTS_PRINCIPAL: Final = "events.amazonaws.com"
FINISHED: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


class LoopError(Exception):
    """A step of the loop failed; the message says which, why, and the failing job's log."""


@dataclass(frozen=True)
class LoopSettings:
    rows: int = 5_000
    corrupt: int = 6
    seed: int = 0
    normal_rows: int = 1_000
    shifted_rows: int = 2_000
    batch_rows: int = 100
    retrain_rows: int = 5_000
    traffic_seed: int = 101
    retrain_seed: int = 11
    timeout_s: float = 600.0


@dataclass
class Timeline:
    """Steps with their time since `started`, printed as they happen."""

    started: float
    out: TextIO
    entries: list[tuple[float, str, str]] = field(default_factory=list)

    def mark(self, step: str, detail: str = "") -> None:
        seconds = time.perf_counter() - self.started
        self.entries.append((seconds, step, detail))
        self.out.write(f"  [{seconds:6.1f}s] {step:<16} {detail}\n")
        self.out.flush()


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str
    path: tuple[str, ...]  # the states entered, in order
    seconds: float
    started_by: str

    @property
    def name(self) -> str:
        return self.arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class LoopResult:
    first: Execution
    first_champion: str
    drift_job: str
    drift_summary: dict[str, Any]
    alarm: str
    alarm_state: str
    rule: str
    retrain: Execution
    champion: str
    swapped_to: str | None
    traffic: Tally

    def to_json(self) -> dict[str, Any]:
        return {
            "first_execution": {
                "name": self.first.name,
                "status": self.first.status,
                "path": list(self.first.path),
            },
            "first_champion": self.first_champion,
            "drift_job": self.drift_job,
            "drift": self.drift_summary,
            "alarm": {"name": self.alarm, "state": self.alarm_state},
            "rule": self.rule,
            "retrain_execution": {
                "name": self.retrain.name,
                "status": self.retrain.status,
                "path": list(self.retrain.path),
                "started_by": self.retrain.started_by,
            },
            "champion": self.champion,
            "swapped_to": self.swapped_to,
            "requests": self.traffic.requests,
            "failed_requests": self.traffic.failed,
            "versions_answered": self.traffic.versions,
        }


# --- the pipeline ------------------------------------------------------------------------


def start_pipeline(
    platform: LocalPlatform, credentials: Credentials | None, *, started_by: str
) -> tuple[str, float]:
    sfn = platform.client("stepfunctions", credentials)
    name = f"{started_by}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    arn = sfn.start_execution(
        stateMachineArn=platform.outputs[contract.OUTPUT_STATE_MACHINE_ARN], name=name, input="{}"
    )["executionArn"]
    return str(arn), time.perf_counter()


def wait_pipeline(
    platform: LocalPlatform, arn: str, started: float, *, started_by: str, timeout_s: float
) -> Execution:
    """Wait for the execution to finish; a failure names the state and its job's log."""
    sfn = platform.client("stepfunctions")
    deadline = time.monotonic() + timeout_s
    while (status := sfn.describe_execution(executionArn=arn)["status"]) not in FINISHED:
        if time.monotonic() > deadline:
            raise LoopError(f"execution {arn} still {status} after {timeout_s:g}s")
        time.sleep(1)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    path = tuple(
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    )
    execution = Execution(arn, status, path, time.perf_counter() - started, started_by)
    if status != "SUCCEEDED" or "NotifyFailure" in path:
        raise LoopError(_execution_failure(platform, execution, events))
    return execution


def _execution_failure(platform: LocalPlatform, execution: Execution, events: list[Any]) -> str:
    lines = [
        f"pipeline execution {execution.name} {execution.status}: {' → '.join(execution.path)}"
    ]
    for event in events:
        failed = event.get("taskFailedEventDetails")
        if failed:
            lines.append(f"  {failed.get('error')}: {str(failed.get('cause'))[:400]}")
            with_job = _job_in(failed.get("cause"))
            if with_job:
                lines.append(job_log_tail(platform, with_job))
    return "\n".join(lines)


def _job_in(cause: Any) -> str | None:
    try:
        detail = json.loads(cause) if isinstance(cause, str) else {}
    except json.JSONDecodeError:
        return None
    job = detail.get("JobId") or detail.get("jobId") if isinstance(detail, dict) else None
    return str(job) if job else None


def job_log_tail(platform: LocalPlatform, job_id: str, lines: int = 20) -> str:
    """The job's status and the end of its CloudWatch log (where the awslogs driver puts it)."""
    batch, logs = platform.client("batch"), platform.client("logs")
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    container = job.get("container") or {}
    definition = platform.applied.names.get(str(job["jobDefinition"]), str(job["jobDefinition"]))
    head = (
        f"  job {job['jobName']} (job definition {definition}) {job['status']}"
        + (f" exit {container['exitCode']}" if container.get("exitCode") is not None else "")
        + (f" {job['statusReason']}" if job.get("statusReason") else "")
    )
    stream = container.get("logStreamName")
    group = _log_group(batch, job)
    if not stream or not group:
        return head + " (no log)"
    try:
        found = logs.get_log_events(logGroupName=group, logStreamName=stream)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return head + f" (no log: {group}/{stream} does not exist)"
    messages = [e["message"] for e in found]
    return head + f"; {group}/{stream} ends with:\n    " + "\n    ".join(messages[-lines:])


def _log_group(batch: Any, job: Mapping[str, Any]) -> str:
    """The job definition's awslogs group (Batch's default group without one)."""
    found = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
    properties = found[0].get("containerProperties") or {} if found else {}
    options = (properties.get("logConfiguration") or {}).get("options") or {}
    return str(options.get("awslogs-group") or "/aws/batch/job")


def champion(platform: LocalPlatform, model_name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from training_jobs.tracking import is_not_found, make_client

    client = make_client(str(platform.outputs[contract.OUTPUT_TRACKING_URI]))
    try:
        return str(client.get_model_version_by_alias(model_name, contract.CHAMPION_ALIAS).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


# --- what AWS services do on their own ---------------------------------------------------


def fire_schedule(platform: LocalPlatform, name: str) -> str:
    """What EventBridge Scheduler does when the schedule comes due: call its universal
    target's API with its input, as its role. Returns the Batch job id."""
    schedule = platform.client("scheduler").get_schedule(Name=name)
    if schedule.get("State", "ENABLED") != "ENABLED":
        raise LoopError(f"schedule {name} is {schedule['State']}: it would never fire")
    target = schedule["Target"]
    if target["Arn"] != UNIVERSAL_SUBMIT_JOB:
        raise LoopError(
            f"schedule {name} targets {target['Arn']}; the local run fires only "
            f"{UNIVERSAL_SUBMIT_JOB}"
        )
    credentials = platform.role_credentials(target["RoleArn"], SCHEDULER_PRINCIPAL)
    # The universal target's input is the API's own request, PascalCase.
    request = {k[0].lower() + k[1:]: v for k, v in json.loads(target["Input"]).items()}
    try:
        job = platform.client("batch", credentials).submit_job(**request)
    except Exception as exc:
        raise LoopError(
            f"schedule {name}: batch:SubmitJob as {target['RoleArn']} failed: {exc}"
        ) from exc
    return str(job["jobId"])


def wait_job(platform: LocalPlatform, job_id: str, timeout_s: float) -> dict[str, Any]:
    batch = platform.client("batch")
    deadline = time.monotonic() + timeout_s
    while True:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            break
        if time.monotonic() > deadline:
            raise LoopError(f"job {job['jobName']} still {job['status']} after {timeout_s:g}s")
        time.sleep(1)
    if job["status"] != "SUCCEEDED":
        raise LoopError(f"job {job['jobName']} FAILED\n{job_log_tail(platform, job_id)}")
    return dict(job)


def job_summary(platform: LocalPlatform, job: Mapping[str, Any]) -> dict[str, Any]:
    """The result of a job's last step (the `done` line `run_job` prints), read from its log."""
    tail = job_log_tail(platform, str(job["jobId"]), lines=5)
    for line in reversed(tail.splitlines()):
        text = line.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                result = value.get("result")
                return result if isinstance(result, dict) else value
    return {}


def deliver_alarm_event(platform: LocalPlatform, event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What EventBridge does with the event: every enabled rule whose pattern matches it
    invokes its targets, as the target's role. Returns (rule, started execution ARN)."""
    events = platform.client("events")
    started = []
    for rule in events.list_rules().get("Rules", []):
        if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
            continue
        if not matches(parse_pattern(rule["EventPattern"]), event):
            continue
        for target in events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", []):
            if ":states:" not in target["Arn"]:
                continue  # SNS and others: notifications only, nothing runs locally
            if not target.get("RoleArn"):
                raise LoopError(
                    f"rule {rule['Name']} targets {target['Arn']} without a role: "
                    "EventBridge cannot start a state machine without one"
                )
            credentials = platform.role_credentials(target["RoleArn"], EVENTS_PRINCIPAL)
            try:
                arn = platform.client("stepfunctions", credentials).start_execution(
                    stateMachineArn=target["Arn"], input=json.dumps(event)
                )["executionArn"]
            except Exception as exc:
                raise LoopError(
                    f"rule {rule['Name']}: states:StartExecution as {target['RoleArn']} "
                    f"failed: {exc}"
                ) from exc
            started.append((str(rule["Name"]), str(arn)))
    return started


# --- the loop ----------------------------------------------------------------------------


def upload(platform: LocalPlatform, key: str, body: bytes) -> str:
    bucket = str(platform.outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_RAW]])
    platform.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
    return f"s3://{bucket}/{key}"


def _traffic_line(tally: Tally) -> str:
    versions = ", ".join(f"v{v}" for v in tally.versions) or "none"
    return f"{tally.rows} rows in {tally.requests} requests → {versions}, {tally.failed} failed"


def plan_schedules(platform: LocalPlatform) -> list[str]:
    return [str(r.inputs["name"]) for r in platform.plan.plan.of_type(SCHEDULE_TYPE)]


def run(platform: LocalPlatform, timeline: Timeline, settings: LoopSettings) -> LoopResult:
    outputs = platform.outputs
    model_name = contract.DEFAULT_MODEL_NAME
    server = platform.pod("mlops-serving/model-server")
    host_port = server.running.run.ports[0]

    # 1. The operator's first pipeline run, as after a first `pulumi up`.
    frame = sample_data.with_corrupt_rows(
        sample_data.generate(settings.rows, settings.seed), settings.corrupt
    )
    where = upload(platform, RAW_KEY, frame.to_csv(index=False).encode())
    timeline.mark("raw data", f"{settings.rows} rows + {settings.corrupt} corrupt → {where}")
    arn, started = start_pipeline(platform, None, started_by="operator")
    first = wait_pipeline(
        platform, arn, started, started_by="operator", timeout_s=settings.timeout_s
    )
    first_champion = champion(platform, model_name)
    if first_champion is None:
        raise LoopError(
            f"execution {first.name} succeeded ({' → '.join(first.path)}) but no "
            f"version of {model_name} is champion"
        )
    timeline.mark(
        "pipeline",
        f"{first.name}: {' → '.join(first.path)} in {first.seconds:.0f}s "
        f"→ champion v{first_champion}",
    )

    traffic = Tally()
    client = ServerClient("127.0.0.1", host_port)
    try:
        probe = sample_data.generate(PROBE_ROWS, settings.traffic_seed + 7)
        # Until its next poll of the registry the server answers 503 "no champion yet":
        # expected, so these probes are not counted as failed traffic.
        waited = client.wait_for_version(first_champion, probe, timeout_s=120)
        timeline.mark(
            "serving",
            f"{server.key} answers with {model_name} v{first_champion} "
            f"({waited.failed} probe(s) answered 503 no-model before)",
        )
        normal = client.send(
            sample_data.generate(settings.normal_rows, settings.traffic_seed), settings.batch_rows
        )
        traffic.add(normal)
        timeline.mark("normal traffic", _traffic_line(normal))
        shifted_rows = sample_data.shift(
            sample_data.generate(settings.shifted_rows, settings.traffic_seed + 1),
            seed=settings.traffic_seed + 2,
        )
        shifted = client.send(shifted_rows, settings.batch_rows)
        traffic.add(shifted)
        timeline.mark("shifted traffic", _traffic_line(shifted))
        if traffic.failed:
            raise LoopError(f"{traffic.failed} request(s) failed: {'; '.join(traffic.failures)}")
        uploaded = client.wait_for_metric(UPLOADED_METRIC, traffic.rows, timeout_s=120)
        captures = outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_CAPTURES]]
        timeline.mark(
            "captures",
            f"{uploaded:.0f} records in s3://{captures}/{contract.PREFIX_CAPTURES}{model_name}/",
        )

        # 2. The drift schedule comes due.
        schedules = plan_schedules(platform)
        if not schedules:
            raise LoopError("the plan declares no drift schedule (aws:scheduler/schedule:Schedule)")
        job_id = fire_schedule(platform, schedules[0])
        timeline.mark(
            "schedule",
            f"{schedules[0]} fired (the emulator never fires schedules: done "
            "here, as its role) → drift job",
        )
        drift_job = wait_job(platform, job_id, settings.timeout_s)
        summary = job_summary(platform, drift_job)
        timeline.mark(
            "drift",
            f"job {drift_job['jobName']} SUCCEEDED: drifted "
            f"{', '.join(summary.get('drifted_features', [])) or 'none'}"
            f" (max {summary.get('max_feature')} {float(summary.get('max_score') or 0):.2f})",
        )

        # 3. CloudWatch evaluates the alarm; EventBridge routes its state change.
        cloudwatch = platform.client("cloudwatch")
        alarm_name = str(outputs[contract.OUTPUT_DRIFT_ALARM_NAME])
        before, evaluation = alarms.evaluate_alarm(cloudwatch, alarm_name)
        after = alarms.describe(cloudwatch, alarm_name)
        timeline.mark(
            "alarm",
            f"{alarm_name} {before.state} → {after.state} (evaluated here from "
            f"its metric: the emulator evaluates no alarm): {evaluation.reason}",
        )
        if after.state != "ALARM":
            raise LoopError(
                f"alarm {alarm_name} is {after.state}, not ALARM: nothing starts the retrain"
            )
        retrain_body = (
            sample_data.shift(
                sample_data.generate(
                    settings.retrain_rows, settings.retrain_seed, id_offset=RETRAIN_ID_OFFSET
                ),
                seed=settings.retrain_seed + 1,
            )
            .to_csv(index=False)
            .encode()
        )
        where = upload(platform, RETRAIN_KEY, retrain_body)
        timeline.mark(
            "labels", f"{settings.retrain_rows} labelled rows from after the shift → {where}"
        )
        event = alarms.state_change_event(
            before, evaluation, region=platform.plan.region, now=datetime.now(UTC)
        )
        started = time.perf_counter()
        routed = deliver_alarm_event(platform, event)
        if not routed:
            raise LoopError(
                f"the ALARM event of {alarm_name} matched no rule that targets a state machine"
            )
        rule, retrain_arn = routed[0]
        timeline.mark(
            "event",
            f"rule {rule} matched → state machine started as the rule's role "
            "(delivered here: the emulator cannot target Step Functions)",
        )
        retrain = wait_pipeline(
            platform, retrain_arn, started, started_by=f"rule {rule}", timeout_s=settings.timeout_s
        )
        new_champion = champion(platform, model_name) or first_champion
        timeline.mark(
            "retrain",
            f"{retrain.name}: {' → '.join(retrain.path)} in {retrain.seconds:.0f}s "
            f"→ champion v{new_champion}",
        )

        swapped_to = None
        if new_champion != first_champion:
            polled = client.wait_for_version(new_champion, probe, timeout_s=120)
            traffic.add(polled)
            swapped_to = new_champion
            timeline.mark(
                "hot swap",
                f"server answers with v{new_champion} after {polled.requests} "
                f"probe(s), {polled.failed} failed",
            )
        else:
            timeline.mark("hot swap", f"not needed: the champion is still v{first_champion}")
        traffic.add(client.send(shifted_rows.head(settings.batch_rows), settings.batch_rows))
    finally:
        client.close()
    if traffic.failed:
        raise LoopError(f"{traffic.failed} request(s) failed: {'; '.join(traffic.failures)}")
    return LoopResult(
        first=first,
        first_champion=first_champion,
        drift_job=str(drift_job["jobName"]),
        drift_summary=summary,
        alarm=alarm_name,
        alarm_state=after.state,
        rule=rule,
        retrain=retrain,
        champion=new_champion,
        swapped_to=swapped_to,
        traffic=traffic,
    )


__all__ = ["LoopError", "LoopSettings", "PlatformError", "Timeline", "run"]

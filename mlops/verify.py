"""`mlops verify`: proof that a deployed stack works, written down as an up receipt.

Each check does what a user of the platform would do, through the stack's own resources,
and records pass/fail, its time, and what it created and cleaned up:

    batch-queue       a no-op job through the stack's queue, on one of its job definitions
    tracking-from-job a job that reaches MLflow as the pipeline's jobs do (its URI, its
                      account, the password its execution role reads)
    model-server      /health/ready through the Service; a prediction when a champion exists
    drift-schedule    the drift schedule exists and is enabled
    alarms            the drift alarm exists with its actions enabled
    retrain-rule      the retrain rule exists, is enabled and targets the state machine
    pipeline          (--pipeline) the retrain state machine end to end, on a tiny dataset
                      when the raw prefix is empty (the object is removed afterwards)

The receipt mirrors the sweep's destroy receipt: JSON for machines, a summary for people.
Checks never stop at the first failure: the receipt lists every one.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from training_jobs import contract

RECEIPT_SCHEMA: Final = 1
NOOP_COMMAND: Final = ["python", "-c", "print('mlops verify: no-op job')"]
TRACKING_COMMAND: Final = ["python", "-m", "training_jobs.verify"]
SAMPLE_KEY: Final = "churn/mlops-verify-sample.csv"
SAMPLE_ROWS: Final = 400
FINISHED_JOB: Final = frozenset({"SUCCEEDED", "FAILED"})
FINISHED_EXECUTION: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})

ClientFactory = Callable[[str], Any]


class VerifyError(Exception):
    """A check failed; its message is what the receipt records."""


@dataclass
class Check:
    name: str
    passed: bool = False
    seconds: float = 0.0
    detail: str = ""
    created: list[str] = field(default_factory=list)
    cleaned_up: list[str] = field(default_factory=list)


@dataclass
class UpReceipt:
    stack: str
    region: str
    started_at: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RECEIPT_SCHEMA,
            "kind": "up",
            "stack": self.stack,
            "region": self.region,
            "started_at": self.started_at,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "created": [x for c in self.checks for x in c.created],
            "cleaned_up": [x for c in self.checks for x in c.cleaned_up],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def render(self) -> str:
        lines = [f"up receipt: stack {self.stack} ({self.region}), {self.started_at}"]
        for check in self.checks:
            mark = "pass" if check.passed else "FAIL"
            lines.append(f"  {mark}  {check.name:<18} {check.seconds:6.1f}s  {check.detail}")
        total = sum(c.passed for c in self.checks)
        lines.append(f"{total}/{len(self.checks)} checks passed")
        return "\n".join(lines)


@dataclass(frozen=True)
class VerifySettings:
    server_url: str | None = None  # where the model server's Service answers from here
    pipeline: bool = False
    job_timeout_s: float = 900.0  # a queue scaled to zero starts an instance first
    pipeline_timeout_s: float = 3600.0
    poll_s: float = 2.0


def _run(check: Check, body: Callable[[Check], str]) -> Check:
    started = time.perf_counter()
    try:
        check.detail = body(check)
        check.passed = True
    except VerifyError as exc:
        check.detail = str(exc)
    except Exception as exc:  # noqa: BLE001 - an AWS or network error fails this check only
        check.detail = f"{type(exc).__name__}: {exc}"
    check.seconds = time.perf_counter() - started
    return check


def _output(outputs: Mapping[str, Any], name: str) -> Any:
    value = outputs.get(name)
    if value in (None, "", [], {}):
        raise VerifyError(f"the stack has no output {name!r} (deployed from an older program?)")
    return value


# --- Batch -------------------------------------------------------------------------------


def _wait_job(batch: Any, job_id: str, settings: VerifySettings) -> dict[str, Any]:
    deadline = time.monotonic() + settings.job_timeout_s
    while True:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in FINISHED_JOB:
            return dict(job)
        if time.monotonic() > deadline:
            raise VerifyError(
                f"job {job['jobName']} still {job['status']} after {settings.job_timeout_s:g}s"
            )
        time.sleep(settings.poll_s)


def _submit(clients: ClientFactory, outputs: Mapping[str, Any], name: str, command: list[str],
            settings: VerifySettings, check: Check) -> dict[str, Any]:  # fmt: skip
    definitions = _output(outputs, contract.OUTPUT_JOB_DEFINITION_ARNS)
    definition = definitions.get("prepare") or next(iter(definitions.values()))
    batch = clients("batch")
    job = batch.submit_job(
        jobName=name,
        jobQueue=_output(outputs, contract.OUTPUT_JOB_QUEUE_ARN),
        jobDefinition=definition,
        containerOverrides={"command": command},
    )
    check.created.append(f"batch job {name} ({job['jobId']}; Batch keeps finished jobs ~7 days)")
    finished = _wait_job(batch, str(job["jobId"]), settings)
    if finished["status"] != "SUCCEEDED":
        container = finished.get("container") or {}
        raise VerifyError(
            f"job {name} FAILED (exit {container.get('exitCode')}, "
            f"{finished.get('statusReason') or container.get('reason') or 'no reason given'}); "
            f"its log stream: {container.get('logStreamName')}"
        )
    return finished


def check_queue(
    clients: ClientFactory, outputs: Mapping[str, Any], settings: VerifySettings, check: Check
) -> str:
    job = _submit(clients, outputs, "mlops-verify-noop", NOOP_COMMAND, settings, check)
    return f"no-op job SUCCEEDED on {job['jobQueue'].rsplit('/', 1)[-1]}"


def check_tracking_from_job(
    clients: ClientFactory, outputs: Mapping[str, Any], settings: VerifySettings, check: Check
) -> str:
    _submit(clients, outputs, "mlops-verify-tracking", TRACKING_COMMAND, settings, check)
    uri = outputs.get(contract.OUTPUT_TRACKING_URI, "(its job definition's URI)")
    return f"a Batch job reached MLflow at {uri} and was let in"


# --- the model server --------------------------------------------------------------------


def _http(
    url: str, method: str = "GET", body: bytes | None = None, timeout_s: float = 10
) -> tuple[int, bytes, dict[str, str]]:
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, parts.path or "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def sample_request(rows: int = 3) -> bytes:
    from training_jobs import sample_data, schema

    frame = sample_data.generate(rows, 7)
    names = list(schema.FEATURE_NAMES)
    data = [list(r) for r in frame[names].itertuples(index=False, name=None)]
    return json.dumps({"dataframe_split": {"columns": names, "data": data}}, default=str).encode()


def check_model_server(outputs: Mapping[str, Any], settings: VerifySettings, check: Check) -> str:
    url = (
        settings.server_url
        or outputs.get(contract.OUTPUT_MODEL_SERVER_ENDPOINT)
        or _output(outputs, contract.OUTPUT_MODEL_SERVER_URL)
    )
    base = str(url).rstrip("/")
    try:
        status, body, _ = _http(f"{base}/health/ready")
    except OSError as exc:
        raise VerifyError(
            f"{base} does not answer from here ({exc}); it is reachable inside the VPC or the "
            "cluster: run verify there, or pass --server-url after `kubectl -n "
            f"{outputs.get('serving_namespace', 'mlops-serving')} port-forward "
            "svc/model-server 8080:80`"
        ) from exc
    if status != 200:
        raise VerifyError(f"{base}/health/ready answered {status}: {body[:200]!r}")
    state = json.loads(body or b"{}").get("status")
    if state == "no-model":
        return (
            f"{base} ready, no champion yet (503 on /invocations until the pipeline registers one)"
        )
    status, body, headers = _http(f"{base}/invocations", "POST", sample_request())
    if status != 200:
        raise VerifyError(f"{base}/invocations answered {status}: {body[:200]!r}")
    predictions = json.loads(body).get("predictions") or []
    version = headers.get("x-model-version", "?")
    return f"{base} ready; 3 rows → {len(predictions)} predictions from version {version}"


# --- the loop's triggers -----------------------------------------------------------------


def check_schedule(clients: ClientFactory, outputs: Mapping[str, Any], check: Check) -> str:
    name = _output(outputs, contract.OUTPUT_DRIFT_SCHEDULE_NAME)
    schedule = clients("scheduler").get_schedule(Name=name)
    if schedule.get("State") != "ENABLED":
        raise VerifyError(f"schedule {name} is {schedule.get('State')}: the drift job never runs")
    return f"{name} ENABLED, {schedule['ScheduleExpression']} → {schedule['Target']['Arn']}"


def check_alarms(clients: ClientFactory, outputs: Mapping[str, Any], check: Check) -> str:
    name = _output(outputs, contract.OUTPUT_DRIFT_ALARM_NAME)
    alarms = clients("cloudwatch").describe_alarms(AlarmNames=[name]).get("MetricAlarms") or []
    if not alarms:
        raise VerifyError(f"alarm {name} does not exist")
    alarm = alarms[0]
    if not alarm.get("ActionsEnabled", True):
        raise VerifyError(f"alarm {name} has its actions disabled")
    return f"{name} exists ({alarm['StateValue']}), actions enabled"


def check_rule(clients: ClientFactory, outputs: Mapping[str, Any], check: Check) -> str:
    name = _output(outputs, contract.OUTPUT_RETRAIN_RULE_NAME)
    events = clients("events")
    rule = events.describe_rule(Name=name)
    if rule.get("State") != "ENABLED":
        raise VerifyError(f"rule {name} is {rule.get('State')}: drift never starts a retrain")
    machine = _output(outputs, contract.OUTPUT_STATE_MACHINE_ARN)
    targets = events.list_targets_by_rule(Rule=name).get("Targets") or []
    if not any(t["Arn"] == machine and t.get("RoleArn") for t in targets):
        raise VerifyError(f"rule {name} does not target {machine} with a role")
    return f"{name} ENABLED → the retrain state machine"


# --- the pipeline ------------------------------------------------------------------------


def check_pipeline(
    clients: ClientFactory, outputs: Mapping[str, Any], settings: VerifySettings, check: Check
) -> str:
    from training_jobs import sample_data

    s3 = clients("s3")
    raw = _output(outputs, contract.OUTPUT_BUCKETS[contract.BUCKET_RAW])
    existing = s3.list_objects_v2(Bucket=raw, Prefix="churn/", MaxKeys=1).get("KeyCount", 0)
    uploaded = None
    if not existing:
        body = sample_data.generate(SAMPLE_ROWS, 3).to_csv(index=False).encode()
        uploaded = s3.put_object(Bucket=raw, Key=SAMPLE_KEY, Body=body, ContentType="text/csv")
        check.created.append(
            f"s3://{raw}/{SAMPLE_KEY} ({SAMPLE_ROWS} sample rows: the raw prefix was empty)"
        )
    try:
        sfn = clients("stepfunctions")
        name = f"mlops-verify-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        machine = _output(outputs, contract.OUTPUT_STATE_MACHINE_ARN)
        arn = sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
        check.created.append(f"execution {name}")
        deadline = time.monotonic() + settings.pipeline_timeout_s
        while (
            status := sfn.describe_execution(executionArn=arn)["status"]
        ) not in FINISHED_EXECUTION:
            if time.monotonic() > deadline:
                raise VerifyError(
                    f"execution {name} still {status} after {settings.pipeline_timeout_s:g}s"
                )
            time.sleep(settings.poll_s)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        path = [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]
        if status != "SUCCEEDED" or "NotifyFailure" in path:
            raise VerifyError(f"execution {name} {status}: {' → '.join(path)}")
        return f"execution {name} SUCCEEDED: {' → '.join(path)}"
    finally:
        if uploaded is not None:
            version = uploaded.get("VersionId")
            extra = {"VersionId": version} if version else {}
            s3.delete_object(Bucket=raw, Key=SAMPLE_KEY, **extra)
            check.cleaned_up.append(
                f"s3://{raw}/{SAMPLE_KEY}" + (f" (version {version})" if version else "")
            )


def verify(
    clients: ClientFactory,
    outputs: Mapping[str, Any],
    *,
    stack: str,
    settings: VerifySettings,
    report: Callable[[Check], None] = lambda check: None,
) -> UpReceipt:
    receipt = UpReceipt(
        stack=stack,
        region=str(outputs.get(contract.OUTPUT_REGION, "")),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    steps: list[tuple[str, Callable[[Check], str]]] = [
        ("batch-queue", lambda c: check_queue(clients, outputs, settings, c)),
        ("tracking-from-job", lambda c: check_tracking_from_job(clients, outputs, settings, c)),
        ("model-server", lambda c: check_model_server(outputs, settings, c)),
        ("drift-schedule", lambda c: check_schedule(clients, outputs, c)),
        ("alarms", lambda c: check_alarms(clients, outputs, c)),
        ("retrain-rule", lambda c: check_rule(clients, outputs, c)),
    ]
    if settings.pipeline:
        steps.append(("pipeline", lambda c: check_pipeline(clients, outputs, settings, c)))
    for name, body in steps:
        check = _run(Check(name), body)
        receipt.checks.append(check)
        report(check)
    return receipt

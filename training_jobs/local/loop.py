"""The drift → retrain loop on the local platform, end to end, with real processes.

    model server (champion) ← normal traffic, then shifted traffic → captures in S3
    → drift job → CloudWatch metric → drift alarm evaluated → ALARM
    → the plan's EventBridge rule matches the state change → its target's steps
      (prepare → train → evaluate → register) on new labelled data → new champion
    → the running server hot-swaps to it, while probes check no request fails

Every AWS-side object comes from the offline plan seeded into the emulator: the alarm and
the rule are read back from moto, never restated here. What AWS does on its own and moto
does not — evaluating an alarm, routing its state-change event, running the state
machine's Batch jobs — is done here, in the open, each step on the timeline.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from training_jobs import contract, lifecycle, sample_data
from training_jobs.drift.job import DriftResult, DriftSettings
from training_jobs.drift.job import run as run_drift
from training_jobs.local import alarms
from training_jobs.local.events import matches, parse_pattern
from training_jobs.local.processes import ManagedProcess, free_port
from training_jobs.local.seed import pipeline_jobs
from training_jobs.local.stack import LocalPlatform, applied_env
from training_jobs.local.traffic import ServerClient, Tally
from training_jobs.storage import put_if_changed
from training_jobs.tracking import make_client

# The new labelled data the retrain reads, next to the original sample under the prefix the
# pipeline's prepare job reads (its default --raw-key), with ids that cannot collide.
RETRAIN_KEY: Final = "churn/labelled-after-shift.csv"
RETRAIN_ID_OFFSET: Final = 1_000_000
LIFECYCLE_JOBS: Final = ("prepare", "train", "evaluate", "register")
UPLOADED_METRIC: Final = "mlops_serve_capture_uploaded_records_total"
PROBE_ROWS: Final = 5


class LoopError(Exception):
    """The loop cannot go on; the message says which step and why."""


@dataclass(frozen=True)
class LoopConfig:
    traffic_rows: int = 2_000  # per phase: normal, then shifted
    batch_rows: int = 100
    retrain_rows: int = 5_000
    traffic_seed: int = 101
    retrain_seed: int = 11
    poll_interval_s: float = 1.0
    flush_interval_s: float = 1.0
    wait_timeout_s: float = 120.0


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
class LoopResult:
    server_host: str
    server_port: int
    served_version: str
    drift: DriftResult
    alarm_name: str
    alarm_state: str
    alarm_reason: str
    rule_name: str
    target_arn: str
    retrain: lifecycle.LifecycleResult
    swapped_to: str | None
    traffic: Tally


class ModelServer:
    """`python -m training_jobs.serve` for the champion, as a managed child process."""

    def __init__(self, platform: LocalPlatform, model_name: str, config: LoopConfig) -> None:
        self.host = platform.config.host
        self.port = free_port(self.host)
        env = platform.env() | {
            "MLOPS_SERVE_MODEL_NAME": model_name,
            "MLOPS_SERVE_TRACKING_URI": platform.tracking_uri,
            "MLOPS_SERVE_HOST": self.host,
            "MLOPS_SERVE_PORT": str(self.port),
            "MLOPS_SERVE_CAPTURE_BUCKET": str(
                platform.outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_CAPTURES]]
            ),
            "MLOPS_SERVE_CAPTURE_FLUSH_INTERVAL_S": str(config.flush_interval_s),
            "MLOPS_SERVE_POLL_INTERVAL_S": str(config.poll_interval_s),
            "MLOPS_SERVE_DRAIN_GRACE_S": "2",
        }
        self.process = ManagedProcess(
            "model server",
            [sys.executable, "-m", "training_jobs.serve"],
            env=env,
            log_path=platform.logs_dir / "serve.log",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ModelServer:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()


def retrain_data(config: LoopConfig) -> bytes:
    """Labelled rows from after the shift: what the retrain learns the new distribution from."""
    rows = sample_data.generate(
        config.retrain_rows, config.retrain_seed, id_offset=RETRAIN_ID_OFFSET
    )
    shifted = sample_data.shift(rows, seed=config.retrain_seed + 1)
    return str(shifted.to_csv(index=False)).encode()


def route_event(events: Any, event: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(rule, target) for every enabled rule in the emulator whose pattern matches `event`."""
    routed = []
    for rule in events.list_rules().get("Rules", []):
        if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
            continue
        if matches(parse_pattern(rule["EventPattern"]), event):
            for target in events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", []):
                routed.append((str(rule["Name"]), dict(target)))
    return routed


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _client(server: ModelServer) -> Iterator[ServerClient]:
    client = ServerClient(server.host, server.port)
    try:
        yield client
    finally:
        client.close()


def run(
    platform: LocalPlatform,
    server: ModelServer,
    timeline: Timeline,
    config: LoopConfig,
    *,
    model_name: str,
) -> LoopResult:
    alarm_name = platform.outputs.get("drift_alarm_name")
    if not alarm_name:
        raise LoopError(
            "the plan has no drift alarm (stack output drift_alarm_name); write the plan with "
            "`mlops plan --stack local --json PATH`"
        )
    traffic = Tally()
    server.process.wait_healthy(f"{server.url}/health/ready", config.wait_timeout_s)
    with _client(server) as client:
        probe = sample_data.generate(PROBE_ROWS, config.traffic_seed + 7)
        # Ready may mean "no champion yet" (503 on /invocations) until the server's next
        # poll of the alias finds the champion the lifecycle just registered.
        deadline = time.monotonic() + config.wait_timeout_s
        waiting = Tally()
        while (served := client.predict(probe, waiting)) is None:
            if time.monotonic() > deadline:
                raise LoopError(f"the model server never served the champion: {waiting.failures}")
            time.sleep(config.poll_interval_s / 2)
        timeline.mark("serving", f"model server {server.url} answers with {model_name} v{served}")

        normal = sample_data.generate(config.traffic_rows, config.traffic_seed)
        sent = client.send(normal, config.batch_rows)
        traffic.add(sent)
        timeline.mark("normal traffic", _traffic_line(sent))

        window_start = _utcnow()
        shifted = sample_data.shift(
            sample_data.generate(config.traffic_rows, config.traffic_seed + 1),
            seed=config.traffic_seed + 2,
        )
        sent = client.send(shifted, config.batch_rows)
        traffic.add(sent)
        window_end = _utcnow()
        timeline.mark("shifted traffic", _traffic_line(sent))
        if traffic.failed:
            raise LoopError(f"{traffic.failed} request(s) failed: {'; '.join(traffic.failures)}")

        captures = str(platform.outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_CAPTURES]])
        uploaded = client.wait_for_metric(
            UPLOADED_METRIC, traffic.rows, timeout_s=config.wait_timeout_s
        )
        timeline.mark(
            "captures",
            f"{uploaded:.0f} records in s3://{captures}/{contract.PREFIX_CAPTURES}{model_name}/",
        )

        with applied_env(platform.env()):
            drift = run_drift(
                DriftSettings(
                    model_name=model_name,
                    stack_outputs=platform.outputs_path,
                    tracking_uri=platform.tracking_uri,
                    window_start=window_start,
                    window_end=window_end,
                ),
                s3=platform.s3_client(),
                cloudwatch=platform.client("cloudwatch"),
                mlflow_client=make_client(platform.tracking_uri),
            )
        scores = {f.name: f.score for f in drift.findings}
        timeline.mark(
            "drift",
            f"{drift.current_rows} shifted rows vs v{drift.model_version}'s training data: "
            + (
                ", ".join(f"{n} {scores[n]:.2f}" for n in drift.drifted_features)
                or f"none (max {drift.max_feature} {drift.max_score:.3f})"
            )
            + f"; {drift.metrics_published} metrics to {contract.DRIFT_METRIC_NAMESPACE}",
        )

        cloudwatch = platform.client("cloudwatch")
        before, evaluation = alarms.evaluate_alarm(cloudwatch, str(alarm_name))
        after = alarms.describe(cloudwatch, str(alarm_name))
        timeline.mark("alarm", f"{alarm_name} {before.state} → {after.state}: {evaluation.reason}")
        if after.state != "ALARM":
            raise LoopError(
                f"alarm {alarm_name} is {after.state}, not ALARM, so nothing starts the retrain "
                f"({evaluation.reason})"
            )

        event = alarms.state_change_event(
            before, evaluation, region=platform.config.region, now=_utcnow()
        )
        routed = route_event(platform.client("events"), event)
        state_machine = platform.outputs.get("state_machine_arn")
        chosen = [(r, t) for r, t in routed if t.get("Arn") == state_machine]
        if not chosen:
            rules = ", ".join(r for r, _ in routed) or "no rule"
            raise LoopError(
                f"the ALARM event of {alarm_name} matched {rules}, but no rule targets the retrain "
                f"state machine ({state_machine})"
            )
        rule_name, target = chosen[0]
        jobs = pipeline_jobs(platform.plan, str(target["Arn"]))
        if jobs != LIFECYCLE_JOBS:
            raise LoopError(
                f"the state machine runs {' → '.join(jobs) or 'no Batch job'}; the local retrain "
                f"runs {' → '.join(LIFECYCLE_JOBS)}, so it cannot stand in for it"
            )
        timeline.mark("event", f"rule {rule_name} matched → {target['Arn']} ({' → '.join(jobs)})")

        raw = str(platform.outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_RAW]])
        _, written = put_if_changed(
            platform.s3_client(), raw, RETRAIN_KEY, retrain_data(config), "text/csv"
        )
        with applied_env(platform.env()):
            # Default settings, as the pipeline's Batch jobs get: prepare reads the whole
            # raw prefix, old sample and new labelled rows alike.
            retrain = lifecycle.run(
                lifecycle.Settings(stack_outputs=platform.outputs_path),
                s3=platform.s3_client(),
                mlflow_client=make_client(platform.tracking_uri),
            )
        timeline.mark(
            "retrain",
            f"{config.retrain_rows} shifted labelled rows {'uploaded' if written else 'unchanged'}"
            f" to s3://{raw}/{RETRAIN_KEY}; {retrain.rows_accepted} rows → {retrain.decision} "
            f"({'; '.join(retrain.reasons)}) → {retrain.alias} v{retrain.champion_version}",
        )

        swapped_to: str | None = None
        if retrain.champion_version is not None and retrain.champion_version != served:
            polled = client.wait_for_version(
                retrain.champion_version, probe, timeout_s=config.wait_timeout_s
            )
            traffic.add(polled)
            swapped_to = retrain.champion_version
            timeline.mark(
                "hot swap",
                f"server answers with v{swapped_to} after {polled.requests} probe(s), "
                f"{polled.failed} failed",
            )
        else:
            timeline.mark("hot swap", f"not needed: the champion is still v{served}")
        # The server is still up: a last look that nothing failed since the swap.
        final = client.send(shifted.head(config.batch_rows), config.batch_rows)
        traffic.add(final)
    if traffic.failed:
        raise LoopError(f"{traffic.failed} request(s) failed: {'; '.join(traffic.failures)}")
    return LoopResult(
        server_host=server.host,
        server_port=server.port,
        served_version=served,
        drift=drift,
        alarm_name=str(alarm_name),
        alarm_state=after.state,
        alarm_reason=evaluation.reason,
        rule_name=rule_name,
        target_arn=str(target["Arn"]),
        retrain=retrain,
        swapped_to=swapped_to,
        traffic=traffic,
    )


def _traffic_line(tally: Tally) -> str:
    versions = ", ".join(f"v{v}" for v in tally.versions) or "none"
    return f"{tally.rows} rows in {tally.requests} requests → {versions}, {tally.failed} failed"

"""The local demo: the whole lifecycle against the embedded platform, then the drift →
retrain loop with the real model server, on a timeline.

    python -m training_jobs.local demo --plan plan.json                 # fresh, then cleaned up
    python -m training_jobs.local demo --plan plan.json --no-loop       # the lifecycle only
    python -m training_jobs.local demo --plan plan.json --work-dir .mlops-local   # kept:
        run it again and the summary shows the same dataset version and no new registry entry
    python -m training_jobs.local up --plan plan.json --work-dir .mlops-local     # just serve

`--plan` is the offline plan of the `local` stack (`mlops plan --stack local --json PATH`);
without it a built-in plan with the four data buckets is used, and the loop (which needs the
plan's drift alarm and retrain rule) is skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from training_jobs import contract, lifecycle, sample_data
from training_jobs.common import EnvironmentProblem, JobError
from training_jobs.drift.errors import DriftInputError
from training_jobs.local import loop
from training_jobs.local.alarms import AlarmError
from training_jobs.local.events import PatternError
from training_jobs.local.processes import ServerError
from training_jobs.local.seed import PlanError, read_plan
from training_jobs.local.stack import LocalConfig, LocalPlatform, PortBusy, applied_env
from training_jobs.local.traffic import TrafficError
from training_jobs.storage import get_bytes, put_if_changed
from training_jobs.tracking import make_client

RAW_KEY = "churn/sample.csv"
MAX_REJECTS_SHOWN = 3
# What stops the demo with one message (exit 1): the platform or a loop step misbehaved.
LOOP_FAILURES = (loop.LoopError, TrafficError, AlarmError, PatternError, DriftInputError)


@dataclass(frozen=True)
class DemoResult:
    lifecycle: lifecycle.LifecycleResult
    loop: loop.LoopResult | None


def builtin_plan() -> dict[str, Any]:
    """The smallest plan that seeds what the jobs touch, for running without `mlops plan`."""
    resources: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {"region": "us-east-1", "environment": "local"}
    for role in contract.DATA_BUCKET_ROLES:
        name = f"mlops-local-{role}"
        urn = f"urn:pulumi:local::mlops-platform::aws:s3/bucket:Bucket::{name}"
        resources.append(
            {"urn": urn, "type": "aws:s3/bucket:Bucket", "name": name, "inputs": {"bucket": name}}
        )
        resources.append(
            {
                "type": "aws:s3/bucketVersioning:BucketVersioning",
                "name": f"{name}-versioning",
                "dependencies": [urn],
                "inputs": {"bucket": name, "versioningConfiguration": {"status": "Enabled"}},
            }
        )
        outputs[contract.OUTPUT_BUCKETS[role]] = name
    return {
        "schema": 1,
        "project": "mlops-platform",
        "stack": "local",
        "resources": resources,
        "outputs": outputs,
    }


def upload_sample(platform: LocalPlatform, rows: int, corrupt: int, seed: int) -> bool:
    """Sample rows plus a few broken ones into the raw bucket; unchanged bytes are not rewritten."""
    frame = sample_data.with_corrupt_rows(sample_data.generate(rows, seed), corrupt)
    raw_bucket = str(platform.outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_RAW]])
    _, written = put_if_changed(
        platform.s3_client(), raw_bucket, RAW_KEY, frame.to_csv(index=False).encode(), "text/csv"
    )
    return written


def _step_printer(out: TextIO) -> Any:
    interesting = (
        "rows",
        "accepted",
        "rejected",
        "count",
        "written",
        "dataset_version",
        "run_id",
        "decision",
        "version",
        "created",
        "moved",
        "champion_version",
    )

    def log(step: str, /, **fields: Any) -> None:
        shown = " ".join(f"{k}={fields[k]}" for k in interesting if k in fields)
        out.write(f"  · {step:<22} {shown}\n")
        out.flush()

    return log


def summary(result: lifecycle.LifecycleResult, seconds: float) -> str:
    metrics = ", ".join(f"{k} {result.metrics[k]:.3f}" for k in ("roc_auc", "accuracy", "log_loss"))
    return "\n".join(
        [
            f"dataset version   {result.dataset_version}",
            f"rows              {result.rows_accepted} accepted, {result.rows_rejected} rejected "
            f"(reasons in {result.rejects_key})",
            f"MLflow run        {result.run_id}"
            + (" (reused: same data, params and code)" if result.run_reused else " (new)"),
            f"holdout metrics   {metrics}",
            f"decision          {result.decision}: {'; '.join(result.reasons)}",
            f"registry          {result.model_name} v{result.registered_version}"
            + (" (new version)" if result.version_created else " (already registered)"),
            f"alias             {result.alias} → v{result.champion_version}",
            f"lifecycle took    {seconds:.1f}s",
        ]
    )


def demo(
    args: argparse.Namespace, platform: LocalPlatform, out: TextIO
) -> lifecycle.LifecycleResult:
    uploaded = upload_sample(platform, args.rows, args.corrupt, args.seed)
    out.write(
        f"raw data          s3://{platform.outputs['raw_bucket']}/{RAW_KEY} "
        f"({args.rows} rows + {args.corrupt} corrupt; {'uploaded' if uploaded else 'unchanged'})\n"
    )
    with applied_env(platform.env()):
        # The raw prefix the pipeline's prepare job reads by default (everything under
        # churn/), so a re-run after the loop trains on what the retrain trained on.
        settings = lifecycle.Settings(stack_outputs=platform.outputs_path)
        started = time.perf_counter()
        result = lifecycle.run(
            settings,
            s3=platform.s3_client(),
            mlflow_client=make_client(platform.tracking_uri),
            on_step=_step_printer(out),
        )
        seconds = time.perf_counter() - started
    out.write("\n" + summary(result, seconds) + "\n")
    curated = str(platform.outputs[contract.OUTPUT_BUCKETS[contract.BUCKET_CURATED]])
    rejects = json.loads(get_bytes(platform.s3_client(), curated, result.rejects_key))
    for row in rejects["rows"][:MAX_REJECTS_SHOWN]:
        out.write(f"  rejected row {row['row']}: {'; '.join(row['reasons'])}\n")
    return result


def loop_config(args: argparse.Namespace) -> loop.LoopConfig:
    return loop.LoopConfig(traffic_rows=args.traffic_rows, retrain_rows=args.retrain_rows)


def run_demo(
    args: argparse.Namespace,
    platform: LocalPlatform,
    out: TextIO,
    timeline: loop.Timeline,
    processes: ExitStack,
) -> DemoResult:
    """The lifecycle, then the loop; the model server is stopped by `processes`."""
    with_loop = not args.no_loop and bool(platform.outputs.get("drift_alarm_name"))
    config = loop_config(args)
    server = None
    if with_loop:
        # Started now, so its imports overlap the first lifecycle; it loads the champion
        # as soon as the alias exists.
        model_name = str(lifecycle.Settings.model_fields["model_name"].default)
        server = loop.ModelServer(platform, model_name, config)
        processes.callback(server.stop)
        server.start()
    first = demo(args, platform, out)
    timeline.mark("lifecycle", f"{first.model_name} {first.alias} → v{first.champion_version}")
    if server is None:
        if not args.no_loop:
            out.write(
                "drift → retrain loop skipped: the plan has no drift alarm (give --plan from "
                "`mlops plan --stack local --json PATH`)\n"
            )
        return DemoResult(lifecycle=first, loop=None)
    out.write("\ndrift → retrain loop (seconds since start)\n")
    result = loop.run(platform, server, timeline, config, model_name=first.model_name)
    return DemoResult(lifecycle=first, loop=result)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training_jobs.local",
        description="Run the platform locally: moto_server + MLflow on loopback, seeded from "
        "the offline plan.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("demo", "start, seed, upload sample data, run the lifecycle, summarise, stop"),
        ("up", "start and seed, print the environment for jobs, serve until Ctrl-C"),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--plan", type=Path, help="offline plan JSON (mlops plan --json)")
        sub.add_argument(
            "--work-dir",
            type=Path,
            help="keep MLflow's database and the emulated S3 here across runs (default: a "
            "temporary directory, removed at the end)",
        )
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--moto-port", type=int, default=None, help="default: a free port")
        sub.add_argument("--mlflow-port", type=int, default=None, help="default: a free port")
        sub.add_argument("--startup-timeout", type=float, default=180.0, metavar="SECONDS")
        if name == "demo":
            sub.add_argument("--rows", type=int, default=5_000)
            sub.add_argument("--corrupt", type=int, default=6, help="broken rows to append")
            sub.add_argument("--seed", type=int, default=0)
            sub.add_argument("--json", action="store_true", help="print the result as JSON last")
            sub.add_argument(
                "--no-loop",
                action="store_true",
                help="stop after the lifecycle (no serving, traffic, drift or retrain)",
            )
            sub.add_argument("--traffic-rows", type=int, default=2_000, help="rows per phase")
            sub.add_argument("--retrain-rows", type=int, default=5_000, help="labelled rows")
    args = parser.parse_args(argv)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error(f"--host: {args.host!r} is not a loopback address; the emulator has no auth")
    if args.command == "demo" and (args.rows < 50 or args.corrupt < 0):
        parser.error(f"--rows {args.rows} / --corrupt {args.corrupt}: need ≥ 50 rows, ≥ 0 corrupt")
    if args.command == "demo" and not (100 <= args.traffic_rows <= 50_000):
        parser.error(f"--traffic-rows {args.traffic_rows}: need 100 to 50000 (per phase)")
    if args.command == "demo" and not (200 <= args.retrain_rows <= 100_000):
        parser.error(f"--retrain-rows {args.retrain_rows}: need 200 to 100000")
    return args


def loop_summary(result: loop.LoopResult) -> dict[str, Any]:
    return {
        "served_version": result.served_version,
        "drifted_features": list(result.drift.drifted_features),
        "max_drift": {"feature": result.drift.max_feature, "score": result.drift.max_score},
        "drift_report": result.drift.report_html_uri,
        "alarm": {"name": result.alarm_name, "state": result.alarm_state},
        "rule": result.rule_name,
        "target": result.target_arn,
        "retrain": {
            "decision": result.retrain.decision,
            "registered_version": result.retrain.registered_version,
            "champion_version": result.retrain.champion_version,
        },
        "swapped_to": result.swapped_to,
        "requests": result.traffic.requests,
        "failed_requests": result.traffic.failed,
        "versions_answered": result.traffic.versions,
    }


def _serve_forever(platform: LocalPlatform, out: TextIO) -> None:
    env = platform.env()
    out.write("local platform up; point jobs at it with:\n")
    for key in (
        "AWS_ENDPOINT_URL",
        "MLFLOW_S3_ENDPOINT_URL",
        "MLFLOW_TRACKING_URI",
        "MLOPS_STACK_OUTPUTS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    ):
        out.write(f"  export {key}={env[key]}\n")
    out.write("Ctrl-C stops everything.\n")
    out.flush()
    while True:
        time.sleep(3600)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    # The demo prints its own timeline: MLflow's run links and registry chatter are noise here.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # SIGTERM (a closed terminal, `kill`, CI cancelling) unwinds like Ctrl-C, so the
    # context managers stop every server this process started.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan = read_plan(args.plan) if args.plan else builtin_plan()
    except PlanError as exc:
        sys.stderr.write(f"python -m training_jobs.local: error: {exc}\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="mlops-local-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        config = LocalConfig(
            work_dir=work_dir,
            host=args.host,
            moto_port=args.moto_port,
            mlflow_port=args.mlflow_port,
            persist=args.work_dir is not None,
            startup_timeout_s=args.startup_timeout,
        )
        started = time.perf_counter()
        timeline = loop.Timeline(started=started, out=out)
        try:
            with LocalPlatform(config, plan) as platform, ExitStack() as processes:
                out.write(
                    f"platform          moto_server {platform.s3_endpoint}, MLflow "
                    f"{platform.tracking_uri} (up in {time.perf_counter() - started:.1f}s; "
                    f"work dir {work_dir}{'' if args.work_dir else ', temporary'})\n"
                )
                out.flush()
                if args.command == "up":
                    _serve_forever(platform, out)
                    return 0
                timeline.mark("platform up", "moto_server + MLflow, seeded from the plan")
                result = run_demo(args, platform, out, timeline, processes)
            if args.json:
                out.write(json.dumps(result.lifecycle.model_dump(mode="json")) + "\n")
                if result.loop is not None:
                    out.write(json.dumps({"loop": loop_summary(result.loop)}) + "\n")
        except (PlanError, PortBusy, ServerError, JobError, EnvironmentProblem) as exc:
            sys.stderr.write(f"python -m training_jobs.local: error: {exc}\n")
            return 2 if isinstance(exc, PlanError | PortBusy | JobError) else 1
        except LOOP_FAILURES as exc:
            logs = (
                f"their logs are in {work_dir / 'logs'}"
                if args.work_dir
                else "give --work-dir DIR to keep their logs"
            )
            sys.stderr.write(
                f"python -m training_jobs.local: error: {exc}\n(servers stopped; {logs})\n"
            )
            return 1
        except KeyboardInterrupt:
            sys.stderr.write("python -m training_jobs.local: interrupted; servers stopped\n")
            return 130
    out.write(f"total             {time.perf_counter() - started:.1f}s, servers stopped\n")
    return 0

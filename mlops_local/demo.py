"""`python -m mlops_local demo --plan PLAN`: the local stack's plan, run on this machine.

    start     the emulator with the plan's AWS resources, IAM enforced; the plan's
              Deployments (MLflow, the model server) on the container engine
    loop      the plan's pipeline (first champion), traffic, the drift schedule, the alarm,
              the retrain rule, the new champion, the hot swap (mlops_local.loop)
    prove     `mlops verify` against the running platform, and the least-privilege report
              of every call each role made (denied calls fail the run)

Everything it starts stops at the end, on Ctrl-C and on failure. Exit status: 0 when the
loop, the verification and the least-privilege report all pass; 1 when one fails (the
message names the step and the plan resource); 2 for bad input.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from mlops_local import least_privilege
from mlops_local.apply import ApplyError
from mlops_local.contracts import ContractError
from mlops_local.engine import EngineError, EngineUnavailable, detect
from mlops_local.images import ImageNotBuilt
from mlops_local.loop import LoopError, LoopSettings, Timeline
from mlops_local.loop import run as run_loop
from mlops_local.plan import LocalPlan, PlanError
from mlops_local.platform import LocalPlatform, PlatformError, PlatformSettings
from mlops_local.pods import PodFailed, PodSpecError
from mlops_local.processes import ServerError
from mlops_local.traffic import TrafficError

PROG = "python -m mlops_local"
# What stops the run with one message (exit 1): the plan cannot run as written here.
FAILURES = (
    LoopError,
    TrafficError,
    PlatformError,
    ApplyError,
    ContractError,
    PodFailed,
    PodSpecError,
    ServerError,
    EngineError,
    ImageNotBuilt,
    least_privilege.LeastPrivilegeError,
)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def tracking_login(platform: LocalPlatform) -> None:
    """This process talks to MLflow as the platform's jobs do: the account their job
    definitions name, the password in the Secrets Manager secret the plan creates."""
    arn = platform.outputs["tracking_credentials_secret_arn"]
    password = platform.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    user = "mlops-admin"
    for resource in platform.plan.plan.of_type("aws:batch/jobDefinition:JobDefinition"):
        env = json.loads(resource.inputs["containerProperties"]).get("environment") or []
        user = next((e["value"] for e in env if e["name"] == "MLFLOW_TRACKING_USERNAME"), user)
    os.environ["MLFLOW_TRACKING_USERNAME"] = user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = str(password)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The local platform: the `local` stack's plan on this machine's container engine."""


@main.command("demo")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The local stack's plan (mlops plan --stack local --json PATH).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep logs, outputs, receipts and reports here (default: a temporary directory).",
)
@click.option("--emulator-port", type=click.IntRange(1024, 65535), default=4566, show_default=True)
@click.option("--no-loop", is_flag=True, help="Stop after the first pipeline run.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line last.")
@click.option("--rows", type=click.IntRange(min=200, max=200_000), default=5_000, show_default=True)
def demo_command(
    plan_path: Path,
    work_dir: Path | None,
    emulator_port: int,
    no_loop: bool,
    as_json: bool,
    rows: int,
) -> None:
    """Run the plan: pipeline, serving, drift, alarm, retrain, hot swap; then verify it."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan = LocalPlan.load(plan_path)
        engine = detect().check_ready()
    except PlanError as exc:
        raise click.UsageError(str(exc)) from exc
    except EngineUnavailable as exc:
        click.echo(f"{PROG}: error: {exc}", err=True)
        sys.exit(1)
    with tempfile.TemporaryDirectory(prefix="mlops-local-") as scratch:
        root = work_dir or Path(scratch)
        code = _run(plan, engine, root, emulator_port, no_loop, as_json, rows)
        if code and work_dir is None:
            click.echo(
                "(logs were in a temporary directory; give --work-dir DIR to keep them)", err=True
            )
    sys.exit(code)


def _run(
    plan: LocalPlan, engine: Any, root: Path, port: int, no_loop: bool, as_json: bool, rows: int
) -> int:
    out = sys.stdout
    started = time.perf_counter()
    timeline = Timeline(started=started, out=out)
    out.write(
        f"local platform: the plan of stack {plan.plan.stack!r} ({plan.path}) on {engine.name}\n"
    )
    settings = LoopSettings(rows=rows)
    result: dict[str, Any] = {}
    platform = LocalPlatform(
        plan, engine, PlatformSettings(work_dir=root, emulator_port=port), on_step=timeline.mark
    )
    try:
        with platform:
            tracking_login(platform)
            if no_loop:
                execution, champion = first_pipeline(platform, settings)
                timeline.mark(
                    "pipeline",
                    f"{execution.name}: {' → '.join(execution.path)} in "
                    f"{execution.seconds:.0f}s → champion v{champion}",
                )
            else:
                result["loop"] = run_loop(platform, timeline, settings).to_json()
            receipt = verify_local(platform, root)
            out.write("\n" + receipt.render() + f"\n(receipt: {root / RECEIPT})\n")
            result["up_receipt"] = {"passed": receipt.passed, "path": str(root / RECEIPT)}
        report = least_privilege.build(platform)
        report_path = root / "least-privilege.json"
        report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        out.write("\n" + report.render() + f"\n(report: {report_path})\n")
        result["least_privilege"] = report.summary()
        report.check()
        if not receipt.passed:
            raise LoopError(
                f"mlops verify: {sum(not c.passed for c in receipt.checks)} check(s) failed"
            )
    except FAILURES as exc:
        click.echo(f"{PROG}: error: {exc}", err=True)
        _show_denied(platform)
        return 1
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted; everything it started is stopped", err=True)
        return 130
    out.write(f"total             {time.perf_counter() - started:.1f}s, everything stopped\n")
    if as_json:
        out.write(json.dumps(result) + "\n")
    return 0


RECEIPT = "up-receipt-local.json"


def first_pipeline(platform: LocalPlatform, settings: LoopSettings) -> tuple[Any, str | None]:
    from mlops_local.loop import RAW_KEY, champion, start_pipeline, upload, wait_pipeline
    from training_jobs import sample_data

    frame = sample_data.generate(settings.rows, settings.seed)
    upload(platform, RAW_KEY, frame.to_csv(index=False).encode())
    arn, t0 = start_pipeline(platform, None, started_by="operator")
    execution = wait_pipeline(
        platform, arn, t0, started_by="operator", timeout_s=settings.timeout_s
    )
    return execution, champion(platform, "churn")


def verify_local(platform: LocalPlatform, root: Path) -> Any:
    """`mlops verify --stack local` against the running platform, as the operator."""
    from mlops.verify import VerifySettings, verify

    server = platform.pod("mlops-serving/model-server")
    receipt = verify(
        platform.client,
        platform.outputs,
        stack=platform.plan.plan.stack,
        # The Service's port, where the host network puts it (the pod's own port).
        settings=VerifySettings(server_url=server.url(80), job_timeout_s=300, poll_s=1),
    )
    receipt.write(root / RECEIPT)
    return receipt


def _show_denied(platform: LocalPlatform) -> None:
    """After a failure: the calls the plan's roles were denied, if any (often the cause)."""
    if not platform.calls_path.exists():
        return
    try:
        report = least_privilege.build(platform)
    except (OSError, ValueError, KeyError):
        return  # the failure's own message is what matters; the report is a hint
    for r, action, resource in report.denied:
        click.echo(f"  denied: {r.resource} ({r.role}) may not {action} on {resource}", err=True)


@main.command("up")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The local stack's plan (mlops plan --stack local --json PATH).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo/up"),
    show_default=True,
    help="Logs, outputs and the IAM call log.",
)
@click.option("--emulator-port", type=click.IntRange(1024, 65535), default=4566, show_default=True)
def up_command(plan_path: Path, work_dir: Path, emulator_port: int) -> None:
    """Start the platform and keep it up until Ctrl-C: point the AWS CLI, the jobs, or
    `mlops verify --stack local` at it with the variables it prints."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan = LocalPlan.load(plan_path)
        engine = detect().check_ready()
    except PlanError as exc:
        raise click.UsageError(str(exc)) from exc
    except EngineUnavailable as exc:
        click.echo(f"{PROG}: error: {exc}", err=True)
        sys.exit(1)
    timeline = Timeline(started=time.perf_counter(), out=sys.stdout)
    settings = PlatformSettings(work_dir=work_dir, emulator_port=emulator_port)
    try:
        with LocalPlatform(plan, engine, settings, on_step=timeline.mark) as platform:
            tracking_login(platform)
            server = platform.pod("mlops-serving/model-server").url(80)
            env = platform.env() | {
                "MLOPS_STACK_OUTPUTS": str(platform.outputs_path.resolve()),
                "MLFLOW_TRACKING_USERNAME": os.environ["MLFLOW_TRACKING_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": os.environ["MLFLOW_TRACKING_PASSWORD"],
            }
            click.echo("\nlocal platform up (the operator's identity; IAM is enforced):")
            for key, value in sorted(env.items()):
                click.echo(f"  export {key}='{value}'")
            click.echo(
                f"then: mlops verify --stack local --server-url {server} [--pipeline]\n"
                "Ctrl-C stops everything."
            )
            while True:
                time.sleep(3600)
    except FAILURES as exc:
        click.echo(f"{PROG}: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"{PROG}: stopped", err=True)

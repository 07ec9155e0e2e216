"""What every job module shares: settings, user errors, step logs and the `main()` frame.

A job is `Settings` (flags or `MLOPS_*` environment variables) → a pure `run(settings,
*, clients...)` that returns a typed result → a thin `main()` built with `run_job`, which
makes the clients, prints one JSON line per step and turns user errors into one message on
stderr with exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from training_jobs import contract
from training_jobs.platform import PlatformError, PlatformOutputs, load_outputs

ENV_PREFIX = "MLOPS_"
EXIT_USER_ERROR = 2
EXIT_ENVIRONMENT_ERROR = 1

# Names become S3 key segments and MLflow names: keep them boring.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class JobError(Exception):
    """A problem the user can fix; the message names the setting, the value and what is allowed."""


class EnvironmentProblem(Exception):
    """The job could not reach what it needs (credentials, endpoint); not a bug in the input."""


def flag(field: str) -> str:
    """How a setting is spelled on the command line and in the environment."""
    return f"--{field.replace('_', '-')} / {ENV_PREFIX}{field.upper()}"


class StepLogger(Protocol):
    def __call__(self, step: str, /, **fields: Any) -> None: ...


def discard_steps(step: str, /, **fields: Any) -> None:
    """The default step logger of `run` functions: tests and callers may pass their own."""


def json_step_logger(job: str, stream: Any = None) -> StepLogger:
    """One JSON object per line: time, job, step and the step's fields."""

    def log(step: str, /, **fields: Any) -> None:
        line = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "job": job}
        line["step"] = step
        line.update(fields)
        print(json.dumps(line, default=str, sort_keys=False), file=stream or sys.stdout, flush=True)

    return log


class JobSettings(BaseSettings):
    """Settings every job shares: where the platform is."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        cli_kebab_case=True,
        cli_exit_on_error=False,
        extra="ignore",
        frozen=True,
    )

    stack_outputs: Path | None = Field(
        None, description="`pulumi stack output --json` file naming the platform's buckets"
    )
    raw_bucket: str | None = Field(None, description="raw data bucket; if unset: stack outputs")
    curated_bucket: str | None = Field(
        None, description="curated data bucket; if unset: stack outputs"
    )
    models_bucket: str | None = Field(None, description="models bucket; if unset: stack outputs")
    region: str | None = Field(None, description="AWS region; if unset: stack outputs, then AWS")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; if unset: stack outputs, then MLFLOW_TRACKING_URI"
    )
    dataset: str = Field("churn", pattern=NAME_PATTERN, description="dataset name")
    experiment: str = Field(
        contract.DEFAULT_MODEL_NAME, pattern=NAME_PATTERN, description="MLflow experiment"
    )
    model_name: str = Field(
        contract.DEFAULT_MODEL_NAME, pattern=NAME_PATTERN, description="registered model name"
    )
    pipeline_execution: str | None = Field(
        None,
        description="the Step Functions execution running this job (the pipeline sets it); "
        "the steps then hand each other pointers of that execution only",
    )


def _outputs(settings: JobSettings) -> PlatformOutputs | None:
    if settings.stack_outputs is None:
        return None
    try:
        return load_outputs(settings.stack_outputs)
    except PlatformError as exc:
        raise JobError(str(exc)) from exc


def bucket(settings: JobSettings, role: str) -> str:
    """The bucket for a data-lake role: the explicit setting wins over the stack outputs."""
    field = contract.OUTPUT_BUCKETS[role]
    explicit = getattr(settings, field, None)
    if explicit:
        return str(explicit)
    outputs = _outputs(settings)
    if outputs is None:
        raise JobError(
            f"{flag(field)}: not set, and no {flag('stack_outputs')} file to read it from; "
            f"give the {role} bucket name or the stack's `pulumi stack output --json` file"
        )
    return str(getattr(outputs, field))


def bucket_origin(settings: JobSettings, role: str) -> str:
    """Where a bucket name came from, for error messages."""
    field = contract.OUTPUT_BUCKETS[role]
    if getattr(settings, field, None):
        return flag(field)
    return f"{flag('stack_outputs')}={settings.stack_outputs}"


def region(settings: JobSettings) -> str | None:
    if settings.region:
        return settings.region
    outputs = _outputs(settings)
    return outputs.region if outputs is not None else environment_region()


def environment_region() -> str | None:
    """AWS_REGION (what the job definitions and pod specs set, and the SDKs' standard
    name), then AWS_DEFAULT_REGION. botocore reads only the second: without this, a
    client other than S3's (which falls back to us-east-1) fails with NoRegionError."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def tracking_uri(settings: JobSettings) -> str:
    """The explicit setting, then the stack outputs, then MLFLOW_TRACKING_URI.

    Never MLflow's own fallback (a sqlite file in the working directory): a job that
    silently tracks into its container's scratch space loses every run it records.
    """
    if settings.tracking_uri:
        return settings.tracking_uri
    outputs = _outputs(settings)
    if outputs is not None and outputs.tracking_uri:
        return outputs.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    raise JobError(
        f"{flag('tracking_uri')}: not set, and neither the stack outputs nor "
        "MLFLOW_TRACKING_URI name an MLflow server; give its URL (e.g. http://127.0.0.1:5000)"
    )


def code_version(explicit: str | None) -> str:
    """MLOPS_CODE_VERSION (the image's git sha in CI), else the installed package version."""
    if explicit:
        return explicit
    try:
        return metadata.version("mlops-platform")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def pointer_keys(prefix: str, name: str, settings: JobSettings) -> tuple[str, ...]:
    """The pointers a step writes: `latest.json` (for people and manual runs) and, inside a
    pipeline execution, that execution's own (what the next step of it reads)."""
    keys = [contract.pointer_key(prefix, name)]
    if settings.pipeline_execution:
        keys.append(contract.pointer_key(prefix, name, settings.pipeline_execution))
    return tuple(keys)


def canonical_json(value: Any) -> bytes:
    """The one serialisation hashes are taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        parts.append(f"{flag(field)}: {error.get('input')!r} is not allowed: {error['msg']}")
    return "; ".join(parts)


S = TypeVar("S", bound=JobSettings)
R = TypeVar("R", bound=BaseModel)


def parse_settings(settings_cls: type[S], argv: Sequence[str] | None, prog: str) -> S:
    """Settings from flags (argv) over environment; raises JobError with the offending flag."""
    try:
        return settings_cls(
            _cli_parse_args=list(sys.argv[1:] if argv is None else argv),
            _cli_prog_name=prog,
        )
    except ValidationError as exc:
        raise JobError(describe_validation_error(exc)) from exc
    except SettingsError as exc:
        raise JobError(f"{prog}: {exc} (see --help)") from exc


def run_job(
    job: str,
    settings_cls: type[S],
    body: Callable[[S, StepLogger], R],
    argv: Sequence[str] | None = None,
    *,
    failures: tuple[type[Exception], ...] = (),
) -> int:
    """Parse settings, run `body`, log the result; user errors become one line on stderr.

    `failures` are service errors (S3 refusals, MLflow errors) reported as one line with
    exit status 1 instead of a traceback.
    """
    log = json_step_logger(job)
    prog = f"python -m training_jobs.{job}"
    try:
        settings = parse_settings(settings_cls, argv, prog)
        result = body(settings, log)
    except JobError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_USER_ERROR
    except EnvironmentProblem as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_ENVIRONMENT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except failures as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        sys.stderr.write(f"{prog}: error: {type(exc).__name__}: {first_line}\n")
        return EXIT_ENVIRONMENT_ERROR
    log("done", result=result.model_dump(mode="json"))
    return 0

"""The one frame every job runs in: settings, user errors, step logs and `run_job`.

A job is settings → a pure `run(settings, *, clients...)` returning a typed result → a
thin `main()` that hands `run_job` a body building the clients. The pipeline steps, the
drift job and the model server all start there, so they parse flags alike, resolve the
platform alike (explicit setting, then the stack outputs), refuse to run without an MLflow
server where they use one, print one JSON object per line, and report a user error as one
line on stderr with exit status 2.

Settings are read, highest first, from `--kebab-flags`, the job's own variables
(`<prefix><FIELD>`: `MLOPS_` for the pipeline steps, `MLOPS_DRIFT_`, `MLOPS_SERVE_`), the
platform-wide names the Pulumi program writes into job definitions (`MLOPS_TRACKING_URI`,
`MLOPS_CURATED_BUCKET`, ...; `PLATFORM_VARIABLES`), then the defaults.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final, Protocol, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from training_jobs import contract
from training_jobs.platform import PlatformError, PlatformOutputs, load_outputs

ENV_PREFIX: Final = contract.ENV_PREFIX
EXIT_USER_ERROR: Final = 2
EXIT_ENVIRONMENT_ERROR: Final = 1
EXIT_INTERRUPTED: Final = 130

# Names become S3 key segments and MLflow names: keep them boring.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

# Settings every workload shares with the platform → the variable the Pulumi program (job
# definitions, the retrain state machine) or an operator's shell sets for all of them.
PLATFORM_VARIABLES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "stack_outputs": contract.VAR_STACK_OUTPUTS,
        "region": contract.VAR_REGION,
        "tracking_uri": contract.VAR_TRACKING_URI,
        "model_name": contract.VAR_MODEL_NAME,
        "experiment": contract.VAR_EXPERIMENT,
        "pipeline_execution": contract.PIPELINE_EXECUTION_VARIABLE,
        **{field: contract.bucket_variable(r) for r, field in contract.OUTPUT_BUCKETS.items()},
    }
)


class JobError(Exception):
    """A problem the user can fix; the message names the setting, the value and what is allowed."""


class EnvironmentProblem(Exception):
    """The job could not reach what it needs (credentials, endpoint); not a bug in the input."""


def flag(
    field: str, prefix: str = ENV_PREFIX, platform: Mapping[str, str] = PLATFORM_VARIABLES
) -> str:
    """How a setting is spelled, in precedence order: `--raw-key / MLOPS_RAW_KEY`, and for
    a platform-wide setting of a job with a prefix of its own, both variables
    (`--tracking-uri / MLOPS_SERVE_TRACKING_URI / MLOPS_TRACKING_URI`)."""
    names = [f"--{field.replace('_', '-')}", f"{prefix}{field.upper()}"]
    shared = platform.get(field)
    if shared is not None and shared not in names:
        names.append(shared)
    return " / ".join(names)


class PlatformVariables(PydanticBaseSettingsSource):
    """The platform-wide variables of the settings a job shares with the platform, below
    the job's own `<prefix><FIELD>`: a drift job given `MLOPS_CURATED_BUCKET` by its job
    definition reads it without a `MLOPS_DRIFT_CURATED_BUCKET` of its own."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        fields = settings_cls.model_fields
        self.variables = {field: name for field, name in variables.items() if field in fields}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = self.variables.get(field_name)
        return (os.environ.get(name) if name else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {f: os.environ[name] for f, name in self.variables.items() if name in os.environ}


class BaseJobSettings(BaseSettings):
    """Settings of every job: the frame's parsing rules and where the platform is.

    A subclass sets its `env_prefix`; `platform_variables` and `bucket_fields` say which of
    its settings also have a platform-wide name and which name a data-lake bucket.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_exit_on_error=False,
        extra="ignore",
        frozen=True,
    )

    platform_variables: ClassVar[Mapping[str, str]] = PLATFORM_VARIABLES
    # Bucket role → the setting naming it; unset, the stack outputs' bucket of that role.
    bucket_fields: ClassVar[Mapping[str, str]] = contract.OUTPUT_BUCKETS

    stack_outputs: Path | None = Field(
        None, description="`pulumi stack output --json` file naming the platform's resources"
    )
    region: str | None = Field(None, description="AWS region; if unset: stack outputs, then AWS")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; if unset: stack outputs, then MLFLOW_TRACKING_URI"
    )

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix") or "")

    @classmethod
    def flag(cls, field: str) -> str:
        """How this job's setting `field` is spelled (see `flag`)."""
        return flag(field, cls.env_prefix(), cls.platform_variables)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        platform = PlatformVariables(settings_cls, cls.platform_variables)
        return init_settings, env_settings, platform, dotenv_settings, file_secret_settings


class JobSettings(BaseJobSettings):
    """Settings the pipeline steps (prepare, train, evaluate, register) share."""

    raw_bucket: str | None = Field(None, description="raw data bucket; if unset: stack outputs")
    curated_bucket: str | None = Field(
        None, description="curated data bucket; if unset: stack outputs"
    )
    models_bucket: str | None = Field(None, description="models bucket; if unset: stack outputs")
    dataset: str = Field(contract.DEFAULT_DATASET, pattern=NAME_PATTERN, description="dataset name")
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


# ---------------------------------------------------------------------------------------
# The platform, from explicit settings first, then the stack outputs.


def stack_outputs(settings: BaseJobSettings) -> PlatformOutputs | None:
    if settings.stack_outputs is None:
        return None
    try:
        return load_outputs(settings.stack_outputs)
    except PlatformError as exc:
        raise JobError(str(exc)) from exc


def find_bucket(settings: BaseJobSettings, role: str) -> str | None:
    """The bucket for a data-lake role: the explicit setting, else the stack outputs'."""
    explicit = getattr(settings, type(settings).bucket_fields[role], None)
    if explicit:
        return str(explicit)
    outputs = stack_outputs(settings)
    return None if outputs is None else str(getattr(outputs, contract.OUTPUT_BUCKETS[role]))


def bucket(settings: BaseJobSettings, role: str) -> str:
    """`find_bucket`, where the job cannot run without it."""
    name = find_bucket(settings, role)
    if name is None:
        raise JobError(
            f"{settings.flag(type(settings).bucket_fields[role])}: not set, and no "
            f"{settings.flag('stack_outputs')} file to read it from; give the {role} bucket "
            "name or the stack's `pulumi stack output --json` file"
        )
    return name


def bucket_origin(settings: BaseJobSettings, role: str) -> str:
    """Where a bucket name came from, for error messages."""
    field = type(settings).bucket_fields[role]
    if getattr(settings, field, None):
        return settings.flag(field)
    return f"{settings.flag('stack_outputs')}={settings.stack_outputs}"


def region(settings: BaseJobSettings) -> str | None:
    if settings.region:
        return settings.region
    outputs = stack_outputs(settings)
    return outputs.region if outputs is not None else environment_region()


def environment_region() -> str | None:
    """AWS_REGION (what the job definitions and pod specs set, and the SDKs' standard
    name), then AWS_DEFAULT_REGION. botocore reads only the second: without this, a
    client other than S3's (which falls back to us-east-1) fails with NoRegionError."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def tracking_uri(settings: BaseJobSettings) -> str:
    """The explicit setting, then the stack outputs, then MLFLOW_TRACKING_URI.

    Never MLflow's own fallback (`./mlruns` or a sqlite file in the working directory): a
    job that silently tracks into its container's scratch space loses every run it records,
    and a server that reads an empty registry there serves nothing.
    """
    if settings.tracking_uri:
        return settings.tracking_uri
    outputs = stack_outputs(settings)
    if outputs is not None and outputs.tracking_uri:
        return outputs.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    raise JobError(
        f"{settings.flag('tracking_uri')}: not set, and neither the stack outputs nor "
        "MLFLOW_TRACKING_URI name an MLflow server; give its URL (e.g. http://127.0.0.1:5000)"
    )


def aws_client(service: str, settings: BaseJobSettings) -> Any:
    """A boto3 client in the job's region (boto3 honours AWS_ENDPOINT_URL, so the emulator
    needs no branch); a region nobody gave is reported as the setting to give."""
    import boto3
    from botocore.exceptions import NoRegionError

    try:
        return boto3.client(service, region_name=region(settings))
    except NoRegionError as exc:
        raise JobError(
            f"{settings.flag('region')}: not set, and neither the stack outputs nor "
            "AWS_REGION name one"
        ) from exc


# ---------------------------------------------------------------------------------------
# Small shared pieces.


def code_version(explicit: str | None) -> str:
    """MLOPS_CODE_VERSION (the image's git sha in CI), else the installed package version."""
    if explicit:
        return explicit
    try:
        return metadata.version("mlops-platform")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def canonical_json(value: Any) -> bytes:
    """The one serialisation hashes are taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# ---------------------------------------------------------------------------------------
# Step logs: one JSON object per line.


class StepLogger(Protocol):
    def __call__(self, step: str, /, **fields: Any) -> None: ...


def discard_steps(step: str, /, **fields: Any) -> None:
    """The default step logger of `run` functions: tests and callers may pass their own."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def json_step_logger(job: str, stream: Any = None) -> StepLogger:
    """One JSON object per line on stdout: time, job, step and the step's fields."""

    def log(step: str, /, **fields: Any) -> None:
        line = {"ts": _now(), "job": job, "step": step, **fields}
        print(json.dumps(line, default=str), file=stream or sys.stdout, flush=True)

    return log


class JsonLogFormatter(logging.Formatter):
    """`logging` records as JSON lines with the step lines' keys, for the libraries and
    the long-running parts (the model server) that log rather than report steps."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "job": self.job,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(job: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(job))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


# ---------------------------------------------------------------------------------------
# The frame.


def describe_validation_error(
    exc: ValidationError, settings_cls: type[BaseJobSettings] = JobSettings
) -> str:
    """Every bad setting with its flag and variables, the value given and the rule."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            parts.append(message)
        elif error["type"] == "missing":
            parts.append(f"{settings_cls.flag(str(error['loc'][0]))}: not set; it is required")
        else:
            where = settings_cls.flag(str(error["loc"][0]))
            parts.append(f"{where}: {error.get('input')!r} is not allowed: {message}")
    return "; ".join(parts)


S = TypeVar("S", bound=BaseJobSettings)


def parse_settings(settings_cls: type[S], argv: Sequence[str] | None, prog: str) -> S:
    """Settings from flags (argv) over environment; raises JobError with the offending flag."""
    try:
        return settings_cls(
            _cli_parse_args=list(sys.argv[1:] if argv is None else argv),
            _cli_prog_name=prog,
        )
    except ValidationError as exc:
        raise JobError(describe_validation_error(exc, settings_cls)) from exc
    except SettingsError as exc:
        raise JobError(f"{exc} (see --help)") from exc


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()) or "(no message)"


def run_job(
    job: str,
    settings_cls: type[S],
    body: Callable[[S, StepLogger], BaseModel | None],
    argv: Sequence[str] | None = None,
    *,
    failures: tuple[type[Exception], ...] = (),
) -> int:
    """`python -m training_jobs.<job>`: parse settings, run `body`, log its result.

    `body(settings, log)` builds the clients and calls the job's `run`. A batch job returns
    its typed result, printed as the `done` step; a service (the model server) returns
    None when it has stopped. JobError exits 2 and EnvironmentProblem 1, each as one line
    on stderr naming what to fix; `failures` are service errors (S3 refusals, MLflow
    errors) reported the same way with exit status 1 instead of a traceback.
    """
    log = json_step_logger(job)
    prog = f"python -m training_jobs.{job}"
    try:
        settings = parse_settings(settings_cls, argv, prog)
        result = body(settings, log)
    except JobError as exc:
        sys.stderr.write(f"{prog}: error: {_one_line(str(exc))}\n")
        return EXIT_USER_ERROR
    except EnvironmentProblem as exc:
        sys.stderr.write(f"{prog}: error: {_one_line(str(exc))}\n")
        return EXIT_ENVIRONMENT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return EXIT_INTERRUPTED
    except failures as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        sys.stderr.write(f"{prog}: error: {type(exc).__name__}: {first_line}\n")
        return EXIT_ENVIRONMENT_ERROR
    if result is None:
        log("done")
    else:
        log("done", result=result.model_dump(mode="json"))
    return 0

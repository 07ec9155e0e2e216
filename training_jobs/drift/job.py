"""`python -m training_jobs.drift`: compare a window of captured inferences with the
champion's training data, write a JSON and an HTML report, publish drift metrics.

Settings come from flags or `MLOPS_DRIFT_*` variables (`--last-hours 6` or
`MLOPS_DRIFT_LAST_HOURS=6`); the buckets from explicit settings or the stack outputs file
(`MLOPS_STACK_OUTPUTS`). Exit status: 0 when the comparison ran, drift or not (the metric
and its alarm act on drift); 2 on bad input, with one message naming what to fix; 1 when
AWS or MLflow cannot be reached.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Self

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from training_jobs import contract, schema
from training_jobs.common import (
    EXIT_ENVIRONMENT_ERROR,
    EXIT_USER_ERROR,
    NAME_PATTERN,
    environment_region,
)
from training_jobs.drift import sources
from training_jobs.drift.analysis import FeatureDrift, Thresholds, compare
from training_jobs.drift.columns import ParquetColumns
from training_jobs.drift.errors import DriftInputError
from training_jobs.drift.report import ReportContext, max_finding, report_html, report_json
from training_jobs.platform import PlatformError, PlatformOutputs, load_outputs

log = logging.getLogger(__name__)

PROG: Final = "python -m training_jobs.drift"
ENV_PREFIX: Final = "MLOPS_DRIFT_"
DEFAULT_LAST_HOURS: Final = 24.0
# CloudWatch accepts up to 1,000 data points per PutMetricData; 20 keeps requests small
# and works with every emulator.
_METRICS_PER_REQUEST: Final = 20


def flag(field: str) -> str:
    """How a setting is spelled on the command line and in the environment."""
    return f"--{field.replace('_', '-')} / {ENV_PREFIX}{field.upper()}"


def _platform_alias(field: str) -> AliasChoices:
    """Platform-wide settings are also read under the names every job shares
    (`MLOPS_CURATED_BUCKET`, `MLOPS_TRACKING_URI`, ... as the Batch job definitions set
    them), besides `MLOPS_DRIFT_<FIELD>` and the `--flag`."""
    return AliasChoices(field, f"{ENV_PREFIX}{field.upper()}", f"MLOPS_{field.upper()}")


class DriftSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        cli_kebab_case=True,
        cli_exit_on_error=False,
        extra="ignore",
        frozen=True,
    )

    model_name: str = Field("churn", pattern=NAME_PATTERN, description="registered model")
    dataset: str = Field(
        "churn",
        pattern=NAME_PATTERN,
        description="dataset name, when the champion's run has no `dataset` tag",
    )
    tracking_uri: str | None = Field(
        None,
        validation_alias=_platform_alias("tracking_uri"),
        description="MLflow tracking URI (default: stack outputs, then MLFLOW_TRACKING_URI)",
    )
    window_start: datetime | None = Field(
        None, description="start of the window, ISO 8601 (UTC if no offset)"
    )
    window_end: datetime | None = Field(
        None, description="end of the window, ISO 8601, exclusive (default: now)"
    )
    last_hours: float | None = Field(
        None, gt=0, description=f"window = the last N hours (default {DEFAULT_LAST_HOURS:g})"
    )
    wasserstein_threshold: float = Field(
        contract.DRIFT_THRESHOLD_DEFAULT,
        gt=0,
        description="normalised Wasserstein at or above which a numeric feature drifts",
    )
    jensen_shannon_threshold: float = Field(
        contract.DRIFT_THRESHOLD_DEFAULT,
        gt=0,
        description="Jensen-Shannon distance at which a categorical feature drifts",
    )
    stack_outputs: Path | None = Field(
        None,
        validation_alias=AliasChoices("stack_outputs", "MLOPS_STACK_OUTPUTS"),
        description="`pulumi stack output --json` file (also read from MLOPS_STACK_OUTPUTS)",
    )
    curated_bucket: str | None = Field(
        None,
        validation_alias=_platform_alias("curated_bucket"),
        description="training data (default: outputs)",
    )
    captures_bucket: str | None = Field(
        None,
        validation_alias=_platform_alias("captures_bucket"),
        description="captured inferences (default: outputs)",
    )
    models_bucket: str | None = Field(
        None,
        validation_alias=_platform_alias("models_bucket"),
        description="where reports go (default: outputs)",
    )
    region: str | None = Field(
        None,
        validation_alias=_platform_alias("region"),
        description="AWS region (default: outputs, then AWS)",
    )
    chunk_rows: int = Field(250_000, ge=1_000, description="rows read per chunk")
    download_workers: int = Field(8, ge=1, le=64, description="parallel capture downloads")
    work_dir: Path | None = Field(None, description="spool directory (default: a temporary one)")

    @model_validator(mode="after")
    def _one_window(self) -> Self:
        if self.window_start is not None and self.last_hours is not None:
            raise ValueError(
                f"give either {flag('window_start')} or {flag('last_hours')}, not both"
            )
        start, end = self.window_start, self.window_end
        if start is not None and end is not None and _utc(end) <= _utc(start):
            raise ValueError(
                f"{flag('window_end')} ({end.isoformat()}) must be after "
                f"{flag('window_start')} ({start.isoformat()})"
            )
        return self


@dataclass(frozen=True)
class Buckets:
    curated: str
    captures: str
    models: str


@dataclass(frozen=True)
class DriftResult:
    model_name: str
    model_version: str
    dataset_version: str
    window_start: datetime
    window_end: datetime
    reference_rows: int
    current_rows: int
    drift_detected: bool
    max_score: float
    max_feature: str
    drifted_features: tuple[str, ...]
    findings: tuple[FeatureDrift, ...]
    report_json_uri: str
    report_html_uri: str
    metrics_published: int

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "model_version": self.model_version,
            "dataset_version": self.dataset_version,
            "window": [self.window_start.isoformat(), self.window_end.isoformat()],
            "rows": {"reference": self.reference_rows, "current": self.current_rows},
            "drift_detected": self.drift_detected,
            "drifted_features": list(self.drifted_features),
            "max_score": round(self.max_score, 6),
            "max_feature": self.max_feature,
            "report": self.report_html_uri,
        }


def _utc(value: datetime) -> datetime:
    """Naive times are UTC; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_window(settings: DriftSettings, now: datetime) -> tuple[datetime, datetime]:
    end = _utc(settings.window_end) if settings.window_end is not None else _utc(now)
    if settings.window_start is not None:
        start = _utc(settings.window_start)
        if end <= start:
            raise DriftInputError(
                f"{flag('window_start')} ({start.isoformat()}) is not before the window end "
                f"({end.isoformat()})"
            )
        return start, end
    return end - timedelta(hours=settings.last_hours or DEFAULT_LAST_HOURS), end


def _outputs(settings: DriftSettings) -> PlatformOutputs | None:
    if settings.stack_outputs is None:
        return None
    try:
        return load_outputs(settings.stack_outputs)
    except PlatformError as exc:
        raise DriftInputError(str(exc)) from exc


def resolve_buckets(settings: DriftSettings) -> Buckets:
    """Explicit bucket settings win over the stack outputs; a gap names both ways to fill it."""
    explicit = {
        contract.BUCKET_CURATED: settings.curated_bucket,
        contract.BUCKET_CAPTURES: settings.captures_bucket,
        contract.BUCKET_MODELS: settings.models_bucket,
    }
    outputs = None if all(explicit.values()) else _outputs(settings)
    names: dict[str, str] = {}
    for role, value in explicit.items():
        field = contract.OUTPUT_BUCKETS[role]
        if value:
            names[role] = value
        elif outputs is not None:
            names[role] = str(getattr(outputs, field))
        else:
            raise DriftInputError(
                f"{flag(field)}: not set, and no stack outputs file "
                f"(--stack-outputs / MLOPS_STACK_OUTPUTS) to read it from"
            )
    return Buckets(
        curated=names[contract.BUCKET_CURATED],
        captures=names[contract.BUCKET_CAPTURES],
        models=names[contract.BUCKET_MODELS],
    )


@contextmanager
def _work_dir(explicit: Path | None) -> Iterator[Path]:
    if explicit is not None:
        explicit.mkdir(parents=True, exist_ok=True)
        yield explicit
        return
    with tempfile.TemporaryDirectory(prefix="mlops-drift-") as name:
        yield Path(name)


def report_prefix(model_name: str, window_end: datetime) -> str:
    """One folder per model and window end: a re-run of the same window overwrites it."""
    return f"{contract.PREFIX_DRIFT_REPORTS}{model_name}/{window_end:%Y-%m-%dT%H%M%SZ}/"


def metric_data(
    model_name: str, findings: Sequence[FeatureDrift], timestamp: datetime
) -> list[dict[str, Any]]:
    """Per-feature scores and their maximum, named as the monitoring alarms expect."""
    model = {"Name": contract.DRIFT_DIMENSION_MODEL, "Value": model_name}
    data = [
        {
            "MetricName": contract.DRIFT_METRIC_FEATURE,
            "Dimensions": [model, {"Name": contract.DRIFT_DIMENSION_FEATURE, "Value": f.name}],
            "Timestamp": timestamp,
            "Value": f.score,
            "Unit": "None",
        }
        for f in findings
    ]
    data.append(
        {
            "MetricName": contract.DRIFT_METRIC_MAX,
            "Dimensions": [model],
            "Timestamp": timestamp,
            "Value": max_finding(findings).score,
            "Unit": "None",
        }
    )
    return data


def publish_metrics(cloudwatch: Any, data: Sequence[dict[str, Any]]) -> int:
    for offset in range(0, len(data), _METRICS_PER_REQUEST):
        cloudwatch.put_metric_data(
            Namespace=contract.DRIFT_METRIC_NAMESPACE,
            MetricData=list(data[offset : offset + _METRICS_PER_REQUEST]),
        )
    return len(data)


def run(
    settings: DriftSettings,
    *,
    s3: Any,
    cloudwatch: Any,
    mlflow_client: sources.MlflowClientLike,
    now: datetime | None = None,
    features: Sequence[schema.Column] = schema.FEATURES,
) -> DriftResult:
    """Compare the window's captures with the champion's training data; report and publish."""
    generated_at = _utc(now or datetime.now(UTC))
    start, end = resolve_window(settings, generated_at)
    buckets = resolve_buckets(settings)
    thresholds = Thresholds(
        wasserstein=settings.wasserstein_threshold,
        jensen_shannon=settings.jensen_shannon_threshold,
    )
    champion = sources.champion(mlflow_client, settings.model_name)
    log.info(
        "drift.start model=%s version=%s dataset_version=%s window=%s/%s",
        champion.model_name,
        champion.version,
        champion.dataset_version,
        start.isoformat(),
        end.isoformat(),
    )
    with _work_dir(settings.work_dir) as work:
        current_paths, capture_objects = sources.download_captures(
            s3,
            buckets.captures,
            settings.model_name,
            features,
            start,
            end,
            work / "current",
            chunk_rows=settings.chunk_rows,
            workers=settings.download_workers,
        )
        reference_paths = sources.download_reference(
            s3,
            buckets.curated,
            champion.dataset or settings.dataset,
            champion.dataset_version,
            work / "reference",
        )
        reference = ParquetColumns("reference", reference_paths, settings.chunk_rows)
        current = ParquetColumns("current", current_paths, settings.chunk_rows)
        findings = compare(reference, current, features, thresholds)

    context = ReportContext(
        model_name=champion.model_name,
        model_version=champion.version,
        run_id=champion.run_id,
        dataset_version=champion.dataset_version,
        window_start=start,
        window_end=end,
        generated_at=generated_at,
        reference_rows=reference.rows,
        current_rows=current.rows,
        capture_objects=capture_objects,
        thresholds=thresholds,
    )
    prefix = report_prefix(settings.model_name, end)
    uris = {}
    for name, body, content_type in (
        ("report.json", report_json(context, findings), "application/json"),
        ("report.html", report_html(context, findings), "text/html; charset=utf-8"),
    ):
        key = prefix + name
        s3.put_object(Bucket=buckets.models, Key=key, Body=body, ContentType=content_type)
        uris[name] = f"s3://{buckets.models}/{key}"
    published = publish_metrics(
        cloudwatch, metric_data(settings.model_name, findings, generated_at)
    )

    top = max_finding(findings)
    drifted = tuple(f.name for f in findings if f.drifted)
    log.info(
        "drift.done drifted=%s max_feature=%s max_score=%.6f report=%s",
        ",".join(drifted) or "-",
        top.name,
        top.score,
        uris["report.html"],
    )
    return DriftResult(
        model_name=champion.model_name,
        model_version=champion.version,
        dataset_version=champion.dataset_version,
        window_start=start,
        window_end=end,
        reference_rows=reference.rows,
        current_rows=current.rows,
        drift_detected=bool(drifted),
        max_score=top.score,
        max_feature=top.name,
        drifted_features=drifted,
        findings=tuple(findings),
        report_json_uri=uris["report.json"],
        report_html_uri=uris["report.html"],
        metrics_published=published,
    )


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        if error["loc"]:
            field = str(error["loc"][0])
            parts.append(f"{flag(field)}: {error.get('input')!r} is not allowed: {error['msg']}")
        else:
            parts.append(str(error["msg"]).removeprefix("Value error, "))
    return "; ".join(parts)


def parse_settings(argv: Sequence[str] | None) -> DriftSettings:
    try:
        return DriftSettings(
            _cli_parse_args=list(sys.argv[1:] if argv is None else argv),
            _cli_prog_name=PROG,
        )
    except ValidationError as exc:
        raise DriftInputError(describe_validation_error(exc)) from exc
    except SettingsError as exc:
        raise DriftInputError(f"{exc} (see --help)") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Build the clients, run, print one JSON summary line; user errors are one line, exit 2."""
    # Heavy clients are imported here, not at module import.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = parse_settings(argv)
        resolve_buckets(settings)  # a missing bucket is named before any client is built
        outputs = _outputs(settings)
        region = settings.region or (outputs.region if outputs is not None else None)
        region = region or environment_region()
        tracking_uri = settings.tracking_uri or (
            outputs.tracking_uri if outputs is not None else None
        )
        result = run(
            settings,
            s3=boto3.client("s3", region_name=region),
            cloudwatch=boto3.client("cloudwatch", region_name=region),
            mlflow_client=MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri),
        )
    except DriftInputError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USER_ERROR
    except NoRegionError:
        sys.stderr.write(f"{PROG}: error: {flag('region')}: not set; give it or AWS_REGION\n")
        return EXIT_USER_ERROR
    except (BotoCoreError, ClientError, MlflowException) as exc:
        sys.stderr.write(f"{PROG}: error: cannot reach AWS or MLflow: {exc}\n")
        return EXIT_ENVIRONMENT_ERROR
    sys.stdout.write(json.dumps(result.summary()) + "\n")
    return 0

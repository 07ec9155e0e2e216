"""`python -m training_jobs.drift`: compare a window of captured inferences with the
champion's training data, write a JSON and an HTML report, publish drift metrics.

Runs in the jobs' frame (`training_jobs.common.run_job`). Settings come from flags or
`MLOPS_DRIFT_*` variables (`--last-hours 6` or `MLOPS_DRIFT_LAST_HOURS=6`), and the
platform-wide ones (buckets, model name, MLflow, region, stack outputs) also from the
`MLOPS_*` names the Batch job definition sets; buckets and the MLflow server not given
explicitly come from the stack outputs file. Exit status: 0 when the comparison ran, drift
or not (the metric and its alarm act on drift); 2 on bad input, with one message naming
what to fix; 1 when AWS or MLflow cannot be reached.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from training_jobs import contract, schema
from training_jobs.common import (
    NAME_PATTERN,
    BaseJobSettings,
    StepLogger,
    aws_client,
    bucket,
    discard_steps,
    run_job,
    tracking_uri,
)
from training_jobs.drift import sources
from training_jobs.drift.analysis import FeatureDrift, Thresholds, compare
from training_jobs.drift.columns import ParquetColumns
from training_jobs.drift.errors import DriftInputError
from training_jobs.drift.report import ReportContext, max_finding, report_html, report_json

DEFAULT_LAST_HOURS: Final = 24.0
# CloudWatch accepts up to 1,000 data points per PutMetricData; 20 keeps requests small
# and works with every emulator.
_METRICS_PER_REQUEST: Final = 20


class DriftSettings(BaseJobSettings):
    """`MLOPS_DRIFT_<FIELD>`, and for the platform-wide settings (buckets, model name,
    tracking URI, region, stack outputs) also the `MLOPS_<FIELD>` the job definition sets."""

    model_config = SettingsConfigDict(env_prefix=contract.DRIFT_ENV_PREFIX)

    model_name: str = Field(
        contract.DEFAULT_MODEL_NAME, pattern=NAME_PATTERN, description="registered model"
    )
    dataset: str = Field(
        contract.DEFAULT_DATASET,
        pattern=NAME_PATTERN,
        description="dataset name, when the champion's run has no `dataset` tag",
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
    curated_bucket: str | None = Field(None, description="training data (default: outputs)")
    captures_bucket: str | None = Field(None, description="captured inferences (default: outputs)")
    models_bucket: str | None = Field(None, description="where reports go (default: outputs)")
    chunk_rows: int = Field(250_000, ge=1_000, description="rows read per chunk")
    download_workers: int = Field(8, ge=1, le=64, description="parallel capture downloads")
    work_dir: Path | None = Field(None, description="spool directory (default: a temporary one)")

    @model_validator(mode="after")
    def _one_window(self) -> Self:
        if self.window_start is not None and self.last_hours is not None:
            raise ValueError(
                f"give either {self.flag('window_start')} or {self.flag('last_hours')}, not both"
            )
        start, end = self.window_start, self.window_end
        if start is not None and end is not None and _utc(end) <= _utc(start):
            raise ValueError(
                f"{self.flag('window_end')} ({end.isoformat()}) must be after "
                f"{self.flag('window_start')} ({start.isoformat()})"
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

    def summary(self) -> DriftSummary:
        return DriftSummary(
            model=self.model_name,
            model_version=self.model_version,
            dataset_version=self.dataset_version,
            window=(self.window_start.isoformat(), self.window_end.isoformat()),
            rows={"reference": self.reference_rows, "current": self.current_rows},
            drift_detected=self.drift_detected,
            drifted_features=self.drifted_features,
            max_score=round(self.max_score, 6),
            max_feature=self.max_feature,
            report=self.report_html_uri,
        )


class DriftSummary(BaseModel):
    """The `done` line's result: what an operator (and the local loop) reads of a run."""

    model_config = ConfigDict(frozen=True)

    model: str
    model_version: str
    dataset_version: str
    window: tuple[str, str]
    rows: dict[str, int]
    drift_detected: bool
    drifted_features: tuple[str, ...]
    max_score: float
    max_feature: str
    report: str


def _utc(value: datetime) -> datetime:
    """Naive times are UTC; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_window(settings: DriftSettings, now: datetime) -> tuple[datetime, datetime]:
    end = _utc(settings.window_end) if settings.window_end is not None else _utc(now)
    if settings.window_start is not None:
        start = _utc(settings.window_start)
        if end <= start:
            raise DriftInputError(
                f"{settings.flag('window_start')} ({start.isoformat()}) is not before the "
                f"window end ({end.isoformat()})"
            )
        return start, end
    return end - timedelta(hours=settings.last_hours or DEFAULT_LAST_HOURS), end


def resolve_buckets(settings: DriftSettings) -> Buckets:
    """Explicit bucket settings win over the stack outputs; a gap names both ways to fill it."""
    return Buckets(
        curated=bucket(settings, contract.BUCKET_CURATED),
        captures=bucket(settings, contract.BUCKET_CAPTURES),
        models=bucket(settings, contract.BUCKET_MODELS),
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
    on_step: StepLogger = discard_steps,
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
    on_step(
        "champion",
        model=champion.model_name,
        version=champion.version,
        dataset_version=champion.dataset_version,
        window=[start.isoformat(), end.isoformat()],
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
        on_step("captures", bucket=buckets.captures, objects=capture_objects)
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
    for finding in findings:
        on_step(
            "feature",
            name=finding.name,
            method=finding.method,
            score=round(finding.score, 6),
            drifted=finding.drifted,
            psi=round(finding.psi, 6),
        )

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
    on_step(
        "report",
        rows={"reference": reference.rows, "current": current.rows},
        json=uris["report.json"],
        html=uris["report.html"],
    )
    published = publish_metrics(
        cloudwatch, metric_data(settings.model_name, findings, generated_at)
    )
    on_step("metrics", namespace=contract.DRIFT_METRIC_NAMESPACE, published=published)

    top = max_finding(findings)
    drifted = tuple(f.name for f in findings if f.drifted)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Build the clients and run in the jobs' frame: one JSON line per step, the summary
    as the `done` line; user errors are one line on stderr, exit 2."""
    # Heavy clients are imported here, not at module import.
    from botocore.exceptions import BotoCoreError, ClientError
    from mlflow.exceptions import MlflowException

    def body(settings: DriftSettings, log: StepLogger) -> DriftSummary:
        from training_jobs.tracking import make_client

        resolve_buckets(settings)  # a missing bucket or server is named before any client
        uri = tracking_uri(settings)
        result = run(
            settings,
            s3=aws_client("s3", settings),
            cloudwatch=aws_client("cloudwatch", settings),
            mlflow_client=make_client(uri),
            on_step=log,
        )
        return result.summary()

    return run_job(
        contract.JOB_DRIFT,
        DriftSettings,
        body,
        argv,
        failures=(BotoCoreError, ClientError, MlflowException),
    )

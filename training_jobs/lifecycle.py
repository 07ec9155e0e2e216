"""lifecycle: prepare → train → evaluate → register, in one process.

The same sequence the Step Functions state machine runs as four Batch jobs; the local demo
and the drift → retrain loop call `run` directly. Every step is idempotent, so running the
lifecycle twice on unchanged data yields the same dataset version, reuses the MLflow run
and registers nothing new.

The one composite: it imports the four job modules to call their `run` functions. No job
module imports another (tests/jobs/test_job_imports.py), so each Batch job loads only what
its own step needs.

    python -m training_jobs.lifecycle --stack-outputs outputs.json --raw-key churn/
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict

from training_jobs import contract, evaluate, prepare, register, train
from training_jobs.common import (
    JobError,
    JobSettings,
    StepLogger,
    discard_steps,
    flag,
    region,
    run_job,
    tracking_uri,
)
from training_jobs.storage import S3Client, make_s3_client
from training_jobs.tracking import make_client


class Settings(prepare.Settings, train.Settings, evaluate.Settings, register.Settings):
    """Every job's settings; each step receives its own subset."""


class LifecycleResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_version: str
    rows_accepted: int
    rows_rejected: int
    rejects_key: str
    run_id: str
    run_reused: bool
    metrics: dict[str, float]
    decision: str
    reasons: tuple[str, ...]
    model_name: str
    registered_version: str
    version_created: bool
    alias: str
    champion_version: str | None


J = TypeVar("J", bound=JobSettings)


def _subset(settings: Settings, cls: type[J], **overrides: Any) -> J:
    values = {name: getattr(settings, name) for name in cls.model_fields} | overrides
    # Already validated as part of `settings`; building it again would re-read the environment.
    return cast(J, cls.model_construct(**values))


def _prefixed(on_step: StepLogger, job: str) -> StepLogger:
    def log(step: str, /, **fields: Any) -> None:
        on_step(f"{job}.{step}", **fields)

    return log


def run(
    settings: Settings,
    *,
    s3: S3Client,
    mlflow_client: MlflowClient,
    on_step: StepLogger = discard_steps,
) -> LifecycleResult:
    for name in ("dataset_version", "run_id"):
        if getattr(settings, name) is not None:
            raise JobError(
                f"{flag(name)}: {getattr(settings, name)!r} is not allowed here; the lifecycle "
                "takes it from the step before (run train/evaluate/register alone to choose it)"
            )
    prepared = prepare.run(
        _subset(settings, prepare.Settings), s3=s3, on_step=_prefixed(on_step, "prepare")
    )
    trained = train.run(
        _subset(settings, train.Settings, dataset_version=prepared.dataset_version),
        s3=s3,
        mlflow_client=mlflow_client,
        on_step=_prefixed(on_step, "train"),
    )
    decision = evaluate.run(
        _subset(settings, evaluate.Settings, run_id=trained.run_id),
        s3=s3,
        mlflow_client=mlflow_client,
        on_step=_prefixed(on_step, "evaluate"),
    )
    registered = register.run(
        _subset(settings, register.Settings, run_id=trained.run_id),
        s3=s3,
        mlflow_client=mlflow_client,
        decision=decision,
        on_step=_prefixed(on_step, "register"),
    )
    return LifecycleResult(
        dataset_version=prepared.dataset_version,
        rows_accepted=prepared.rows_accepted,
        rows_rejected=prepared.rows_rejected,
        rejects_key=prepared.rejects_key,
        run_id=trained.run_id,
        run_reused=trained.reused,
        metrics=decision.candidate_metrics,
        decision=decision.decision,
        reasons=decision.reasons,
        model_name=registered.model_name,
        registered_version=registered.version,
        version_created=registered.created,
        alias=registered.alias,
        champion_version=registered.champion_version,
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body(settings: Settings, log: StepLogger) -> LifecycleResult:
        return run(
            settings,
            s3=make_s3_client(region(settings)),
            mlflow_client=make_client(tracking_uri(settings)),
            on_step=log,
        )

    return run_job(
        contract.MODULE_LIFECYCLE, Settings, body, argv, failures=(ClientError, MlflowException)
    )


if __name__ == "__main__":
    raise SystemExit(main())

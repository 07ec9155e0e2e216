"""evaluate: the candidate run against the current champion, on the candidate's holdout.

Both models are scored on the same rows (the holdout of the candidate's dataset version),
so the comparison is fair even when the champion was trained on older data. The decision —
promote or reject, with metric deltas, reasons and the thresholds used — is written to
`decisions/<model>/<run_id>.json` in the models bucket and returned.

    python -m training_jobs.evaluate --stack-outputs outputs.json [--run-id RUN]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from pydantic import Field

from training_jobs import contract, dataset
from training_jobs.common import (
    JobError,
    JobSettings,
    StepLogger,
    bucket,
    bucket_origin,
    canonical_json,
    discard_steps,
    flag,
    region,
    run_job,
    tracking_uri,
)
from training_jobs.decision import Decision, Thresholds
from training_jobs.pointers import candidate_key, decision_key, pointer_keys
from training_jobs.scoring import score
from training_jobs.storage import (
    S3Client,
    make_s3_client,
    put_if_changed,
    read_pointer,
    require_bucket,
)
from training_jobs.tracking import (
    TAG_DATASET_VERSION,
    TAG_DECISION,
    experiment_or_error,
    get_run,
    is_not_found,
    latest_finished_run,
    load_sklearn_model,
    make_client,
    model_id_of,
)

COMPARED_METRICS = ("roc_auc", "accuracy", "log_loss", "f1")


class Settings(JobSettings):
    run_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="candidate run; if unset: the run train last produced",
    )
    min_roc_auc: float = Field(0.6, ge=0, le=1, description="floor a candidate must reach")
    min_roc_auc_gain: float = Field(
        0.0, ge=-1, le=1, description="candidate roc_auc minus champion roc_auc must reach this"
    )
    max_log_loss_increase: float = Field(
        0.05, ge=0, description="candidate log_loss may exceed the champion's by at most this"
    )


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    thresholds: Thresholds,
    *,
    same_run: bool = False,
) -> tuple[Literal["promote", "reject"], list[str]]:
    """Pure decision rule; every check adds a reason, so a reviewer sees why."""
    reasons: list[str] = []
    ok = True
    if candidate["roc_auc"] >= thresholds.min_roc_auc:
        reasons.append(f"roc_auc {candidate['roc_auc']:.4f} ≥ floor {thresholds.min_roc_auc}")
    else:
        ok = False
        reasons.append(
            f"roc_auc {candidate['roc_auc']:.4f} below the floor {thresholds.min_roc_auc} "
            "(--min-roc-auc)"
        )
    if champion is None:
        reasons.append("no current champion")
    elif same_run:
        reasons.append("candidate is already the champion")
    else:
        gain = candidate["roc_auc"] - champion["roc_auc"]
        if gain >= thresholds.min_roc_auc_gain:
            reasons.append(f"roc_auc gain {gain:+.4f} ≥ {thresholds.min_roc_auc_gain}")
        else:
            ok = False
            reasons.append(
                f"roc_auc gain {gain:+.4f} below the required {thresholds.min_roc_auc_gain} "
                "(--min-roc-auc-gain)"
            )
        increase = candidate["log_loss"] - champion["log_loss"]
        if increase <= thresholds.max_log_loss_increase:
            reasons.append(f"log_loss change {increase:+.4f} ≤ {thresholds.max_log_loss_increase}")
        else:
            ok = False
            reasons.append(
                f"log_loss rises by {increase:+.4f}, more than {thresholds.max_log_loss_increase} "
                "(--max-log-loss-increase)"
            )
    return ("promote" if ok else "reject"), reasons


def run(
    settings: Settings,
    *,
    s3: S3Client,
    mlflow_client: MlflowClient,
    on_step: StepLogger = discard_steps,
) -> Decision:
    curated = bucket(settings, contract.BUCKET_CURATED)
    models = bucket(settings, contract.BUCKET_MODELS)
    require_bucket(s3, curated, bucket_origin(settings, contract.BUCKET_CURATED))
    require_bucket(s3, models, bucket_origin(settings, contract.BUCKET_MODELS))

    if settings.run_id:
        candidate_run = get_run(mlflow_client, settings.run_id)
    elif (
        pointer := read_pointer(
            s3, models, candidate_key(settings.model_name, settings.pipeline_execution)
        )
    ) is not None:
        candidate_run = get_run(mlflow_client, str(pointer["run_id"]))
    else:
        candidate_run = latest_finished_run(
            mlflow_client, experiment_or_error(mlflow_client, settings.experiment)
        )
    run_id = candidate_run.info.run_id
    if candidate_run.info.status != "FINISHED":
        raise JobError(
            f"{flag('run_id')}: run {run_id} is {candidate_run.info.status}; only a "
            "FINISHED run can be evaluated"
        )
    model_id = model_id_of(candidate_run)
    version = candidate_run.data.tags.get(TAG_DATASET_VERSION)
    if not version:
        raise JobError(f"{flag('run_id')}: run {run_id} has no {TAG_DATASET_VERSION} tag")
    manifest = dataset.load_manifest(s3, curated, settings.dataset, version)
    holdout = dataset.read_split(s3, curated, manifest, dataset.SPLIT_HOLDOUT)
    candidate_metrics = score(load_sklearn_model(mlflow_client, model_id), holdout)
    if math.isnan(candidate_metrics["roc_auc"]):
        raise JobError(
            f"dataset {version[:12]}: the holdout has a single label value, so roc_auc is "
            "undefined; prepare more rows or a larger --holdout-fraction"
        )
    on_step("candidate", run_id=run_id, dataset_version=version, metrics=candidate_metrics)

    champion_run_id: str | None = None
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None
    try:
        champion = mlflow_client.get_model_version_by_alias(
            settings.model_name, contract.CHAMPION_ALIAS
        )
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        champion = None
    if champion is not None:
        champion_run_id = champion.run_id
        champion_version = str(champion.version)
        if champion_run_id == run_id:
            champion_metrics = candidate_metrics
        else:
            champion_model_id = model_id_of(get_run(mlflow_client, str(champion_run_id)))
            try:
                champion_model = load_sklearn_model(mlflow_client, champion_model_id)
                champion_metrics = score(champion_model, holdout)
            except (KeyError, ValueError) as exc:
                raise JobError(
                    f"the champion ({settings.model_name} v{champion_version}) cannot score "
                    f"dataset {version[:12]}: {exc}; compare by hand and move the alias"
                ) from exc
        on_step(
            "champion", version=champion_version, run_id=champion_run_id, metrics=champion_metrics
        )

    thresholds = Thresholds(
        min_roc_auc=settings.min_roc_auc,
        min_roc_auc_gain=settings.min_roc_auc_gain,
        max_log_loss_increase=settings.max_log_loss_increase,
    )
    verdict, reasons = decide(
        candidate_metrics, champion_metrics, thresholds, same_run=champion_run_id == run_id
    )
    deltas = (
        {m: candidate_metrics[m] - champion_metrics[m] for m in COMPARED_METRICS}
        if champion_metrics is not None
        else None
    )
    key = decision_key(settings.model_name, run_id)
    decision = Decision(
        model_name=settings.model_name,
        candidate_run_id=run_id,
        candidate_model_id=model_id,
        dataset_version=version,
        champion_run_id=champion_run_id,
        champion_version=champion_version,
        decision=verdict,
        reasons=tuple(reasons),
        candidate_metrics=candidate_metrics,
        champion_metrics=champion_metrics,
        deltas=deltas,
        thresholds=thresholds,
        decision_key=key,
    )
    document = canonical_json(decision.model_dump(mode="json"))
    _, written = put_if_changed(s3, models, key, document, "application/json")
    # The pipeline's Choice state reads its execution's decision from a fixed key.
    for pointer_key in pointer_keys(contract.PREFIX_DECISIONS, settings.model_name, settings):
        put_if_changed(s3, models, pointer_key, document, "application/json")
    mlflow_client.log_batch(run_id, tags=[RunTag(TAG_DECISION, verdict)])
    on_step("decision", decision=verdict, reasons=reasons, key=key, written=written)
    return decision


def main(argv: Sequence[str] | None = None) -> int:
    def body(settings: Settings, log: StepLogger) -> Decision:
        return run(
            settings,
            s3=make_s3_client(region(settings)),
            mlflow_client=make_client(tracking_uri(settings)),
            on_step=log,
        )

    return run_job(
        contract.JOB_EVALUATE, Settings, body, argv, failures=(ClientError, MlflowException)
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""train: a dataset version → an MLflow run with params, holdout metrics and a logged model.

The manifest's objects are verified (size and sha256 of the pinned S3 versions) before any
row is used. A FINISHED run with the same dataset version, parameters and code version is
reused instead of training a duplicate.

    python -m training_jobs.train --stack-outputs outputs.json [--dataset-version V]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Final, Literal

import numpy as np
from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training_jobs import contract, dataset, schema
from training_jobs.common import (
    JobError,
    JobSettings,
    StepLogger,
    bucket,
    bucket_origin,
    canonical_json,
    code_version,
    discard_steps,
    flag,
    region,
    run_job,
    tracking_uri,
)
from training_jobs.pointers import pointer_keys
from training_jobs.scoring import score
from training_jobs.storage import (
    S3Client,
    make_s3_client,
    put_if_changed,
    require_bucket,
    sha256_hex,
)
from training_jobs.tracking import (
    MODEL_ARTIFACT,
    TAG_CODE_VERSION,
    TAG_DATASET_VERSION,
    TAG_MODEL_ID,
    TAG_PARAMS_HASH,
    fluent_tracking,
    get_or_create_experiment,
    make_client,
)

# What the logged model needs to be loaded again; listed, not inferred (inference is slow
# and reaches for the network).
MODEL_REQUIREMENTS: Final = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")
# Types skops refuses to load unless told; we trust what this job itself trained.
SKOPS_TRUSTED_TYPES: Final = {
    # OneHotEncoder keeps its output dtype as a numpy.dtype.
    "logistic_regression": ["numpy.dtype"],
    # Tree node storage: unsafe only for files from untrusted sources.
    "random_forest": ["numpy.dtype", "sklearn.tree._tree.Tree"],
}


class Settings(JobSettings):
    dataset_version: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="dataset version; if unset: the latest"
    )
    classifier: Literal["logistic_regression", "random_forest"] = Field(
        "logistic_regression", description="the estimator at the end of the pipeline"
    )
    regularization_c: float = Field(1.0, gt=0, description="logistic regression C")
    max_iter: int = Field(1000, ge=10, description="logistic regression iterations")
    n_estimators: int = Field(200, ge=1, le=5000, description="random forest trees")
    max_depth: int | None = Field(None, ge=1, description="random forest depth")
    seed: int = Field(0, ge=0, description="random seed")
    code_version: str | None = Field(
        None, description="code version tag; if unset: the installed package version"
    )


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    experiment_id: str
    dataset_version: str
    code_version: str
    model_id: str
    model_uri: str
    params: dict[str, str]
    metrics: dict[str, float]
    reused: bool


# ---------------------------------------------------------------------------------------
# Pure parts.


def model_params(settings: Settings) -> dict[str, str]:
    """The parameters that define the model; their hash is part of run identity."""
    params: dict[str, Any] = {"classifier": settings.classifier, "seed": settings.seed}
    if settings.classifier == "logistic_regression":
        params |= {"C": settings.regularization_c, "max_iter": settings.max_iter}
    else:
        params |= {"n_estimators": settings.n_estimators, "max_depth": settings.max_depth}
    return {k: str(v) for k, v in params.items()}


def build_pipeline(settings: Settings) -> Pipeline:
    nullable = [c.name for c in schema.FEATURES if c.kind == "numeric" and c.nullable]
    required = [c.name for c in schema.FEATURES if c.kind == "numeric" and not c.nullable]
    preprocess = ColumnTransformer(
        [
            (
                "nullable",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                nullable,
            ),
            ("numeric", StandardScaler(), required),
            (
                "categorical",
                OneHotEncoder(
                    handle_unknown="ignore",
                    categories=[
                        list(c.categories) for c in schema.FEATURES if c.kind == "categorical"
                    ],
                ),
                list(schema.CATEGORICAL_FEATURES),
            ),
        ]
    )
    classifier: Any
    if settings.classifier == "logistic_regression":
        classifier = LogisticRegression(
            C=settings.regularization_c, max_iter=settings.max_iter, random_state=settings.seed
        )
    else:
        classifier = RandomForestClassifier(
            n_estimators=settings.n_estimators,
            max_depth=settings.max_depth,
            random_state=settings.seed,
            n_jobs=1,
        )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def model_signature() -> Any:
    """Declared from the schema, not inferred: doubles (nullable-safe) and strings in,
    the predicted class out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    # A nullable feature is an optional column: the server then accepts null for it (an
    # unanswered survey) instead of refusing the request.
    inputs = Schema(
        [
            ColSpec("double" if c.kind == "numeric" else "string", c.name, required=not c.nullable)
            for c in schema.FEATURES
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("long")]))


def pip_requirements() -> list[str]:
    pins = []
    for name in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


# ---------------------------------------------------------------------------------------
# The job.


def _existing_run(
    client: MlflowClient, experiment_id: str, dataset_version: str, code: str, params_hash: str
) -> Any:
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.{TAG_DATASET_VERSION} = '{dataset_version}' "
            f"AND tags.{TAG_CODE_VERSION} = '{code}' "
            f"AND tags.`{TAG_PARAMS_HASH}` = '{params_hash}' "
            "AND attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time ASC"],
        max_results=5,
    )
    return next((r for r in runs if r.data.tags.get(TAG_MODEL_ID)), None)


def _point_at_candidate(
    s3: S3Client, models: str, settings: Settings, run_id: str, dataset_version: str
) -> None:
    """What `evaluate` picks up when no run id is given (as in the Step Functions pipeline)."""
    body = canonical_json({"run_id": run_id, "dataset_version": dataset_version})
    for key in pointer_keys(contract.PREFIX_CANDIDATES, settings.model_name, settings):
        put_if_changed(s3, models, key, body, "application/json")


def run(
    settings: Settings,
    *,
    s3: S3Client,
    mlflow_client: MlflowClient,
    on_step: StepLogger = discard_steps,
) -> TrainResult:
    import mlflow
    import mlflow.sklearn

    curated = bucket(settings, contract.BUCKET_CURATED)
    models = bucket(settings, contract.BUCKET_MODELS)
    require_bucket(s3, curated, bucket_origin(settings, contract.BUCKET_CURATED))
    require_bucket(s3, models, bucket_origin(settings, contract.BUCKET_MODELS))

    manifest = dataset.load_manifest(
        s3, curated, settings.dataset, settings.dataset_version, settings.pipeline_execution
    )
    version = manifest.version
    code = code_version(settings.code_version)
    params = model_params(settings)
    params_hash = sha256_hex(canonical_json(params))
    experiment = get_or_create_experiment(
        mlflow_client,
        settings.experiment,
        f"s3://{models}/{contract.PREFIX_MLFLOW_ARTIFACTS}{settings.experiment}",
    )
    on_step("manifest", dataset_version=version, rows=manifest.rows.model_dump())

    existing = _existing_run(mlflow_client, experiment.experiment_id, version, code, params_hash)
    if existing is not None:
        model_id = existing.data.tags[TAG_MODEL_ID]
        _point_at_candidate(s3, models, settings, existing.info.run_id, version)
        on_step("reuse", run_id=existing.info.run_id, model_id=model_id)
        return TrainResult(
            run_id=existing.info.run_id,
            experiment_id=experiment.experiment_id,
            dataset_version=version,
            code_version=code,
            model_id=model_id,
            model_uri=f"models:/{model_id}",
            params=params,
            metrics={k: float(v) for k, v in existing.data.metrics.items()},
            reused=True,
        )

    train_frame = dataset.read_split(s3, curated, manifest, dataset.SPLIT_TRAIN)
    holdout_frame = dataset.read_split(s3, curated, manifest, dataset.SPLIT_HOLDOUT)
    if len(np.unique(dataset.labels(train_frame))) < 2:
        raise JobError(
            f"{flag('dataset_version')}: {version} has a single label value in its train split; "
            "a classifier needs both 0 and 1"
        )
    on_step("verified", train_rows=len(train_frame), holdout_rows=len(holdout_frame))

    run_ = mlflow_client.create_run(
        experiment.experiment_id,
        run_name=f"train-{version[:12]}",
        tags={
            TAG_DATASET_VERSION: version,
            TAG_CODE_VERSION: code,
            TAG_PARAMS_HASH: params_hash,
            "dataset": settings.dataset,
            "mlops.job": contract.JOB_TRAIN,
        },
    )
    run_id = run_.info.run_id
    try:
        started = time.perf_counter()
        pipeline = build_pipeline(settings)
        pipeline.fit(dataset.features(train_frame), dataset.labels(train_frame))
        fit_seconds = time.perf_counter() - started
        metrics = score(pipeline, holdout_frame)
        metrics["train_roc_auc"] = score(pipeline, train_frame)["roc_auc"]
        metrics["fit_seconds"] = fit_seconds
        now = int(time.time() * 1000)
        mlflow_client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in sorted(metrics.items())],
            params=[
                Param(k, v)
                for k, v in sorted(
                    (
                        params
                        | {
                            "train_rows": str(len(train_frame)),
                            "holdout_rows": str(len(holdout_frame)),
                        }
                    ).items()
                )
            ],
        )
        on_step("fit", run_id=run_id, seconds=round(fit_seconds, 3), metrics=metrics)
        example = dataset.features(holdout_frame).head(5)
        with fluent_tracking(mlflow_client), mlflow.start_run(run_id=run_id):
            info = mlflow.sklearn.log_model(
                pipeline,
                name=MODEL_ARTIFACT,
                signature=model_signature(),
                input_example=example,
                pip_requirements=pip_requirements(),
                skops_trusted_types=SKOPS_TRUSTED_TYPES[settings.classifier],
            )
            mlflow_client.log_batch(run_id, tags=[RunTag(TAG_MODEL_ID, info.model_id)])
    except BaseException:
        if mlflow_client.get_run(run_id).info.status == "RUNNING":
            mlflow_client.set_terminated(run_id, "FAILED")
        raise
    _point_at_candidate(s3, models, settings, run_id, version)
    on_step("logged_model", run_id=run_id, model_id=info.model_id)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment.experiment_id,
        dataset_version=version,
        code_version=code,
        model_id=info.model_id,
        model_uri=f"models:/{info.model_id}",
        params=params,
        metrics=metrics,
        reused=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body(settings: Settings, log: StepLogger) -> TrainResult:
        return run(
            settings,
            s3=make_s3_client(region(settings)),
            mlflow_client=make_client(tracking_uri(settings)),
            on_step=log,
        )

    return run_job(
        contract.JOB_TRAIN, Settings, body, argv, failures=(ClientError, MlflowException)
    )


if __name__ == "__main__":
    raise SystemExit(main())

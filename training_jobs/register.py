"""register: the evaluated candidate → a registry version; alias `champion` moves on promote.

A run is registered at most once: versions are looked up by run id before one is created,
so a re-run returns the existing version. Before the alias moves, the version gets its
compiled form (training_jobs/compile.py), verified on the candidate's evaluation rows and
recorded on the version as tags; a model that cannot be compiled is registered as before,
with the reason, and served through MLflow's pyfunc. The decision comes from `evaluate` (passed in,
or read from `decisions/<model>/<run_id>.json` in the models bucket).

    python -m training_jobs.register --stack-outputs outputs.json [--run-id RUN]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training_jobs import contract, dataset
from training_jobs.common import (
    JobError,
    JobSettings,
    StepLogger,
    bucket,
    bucket_origin,
    discard_steps,
    flag,
    region,
    run_job,
    tracking_uri,
)
from training_jobs.compile import NotCompilable, compile_sklearn, publish, record
from training_jobs.decision import Decision
from training_jobs.pointers import decision_key, latest_decision_key
from training_jobs.storage import S3Client, get_bytes, head, make_s3_client, require_bucket
from training_jobs.tracking import (
    TAG_DATASET_VERSION,
    fluent_tracking,
    get_run,
    is_not_found,
    load_sklearn_model_and_inputs,
    make_client,
)

# Evaluation rows the compiled form is checked on (the candidate's holdout, at most).
VERIFY_ROWS = 5_000


class Settings(JobSettings):
    run_id: str | None = Field(
        None, pattern=r"^[0-9a-f]{32}$", description="evaluated run; if unset: latest decision"
    )


class RegisterResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    run_id: str
    version: str
    created: bool
    decision: str
    alias: str
    champion_version: str | None
    compiled: str  # "verified", or "refused: <why>"
    alias_moved: bool


def read_decision(s3: S3Client, models_bucket: str, model_name: str, run_id: str) -> Decision:
    key = decision_key(model_name, run_id)
    if head(s3, models_bucket, key) is None:
        raise JobError(
            f"{flag('run_id')}: run {run_id} has no decision at s3://{models_bucket}/{key}; run "
            f"`python -m training_jobs.evaluate --run-id {run_id}` first"
        )
    try:
        return Decision.model_validate(json.loads(get_bytes(s3, models_bucket, key)))
    except (ValueError, ValidationError) as exc:
        raise JobError(f"s3://{models_bucket}/{key} is not a decision document: {exc}") from exc


def read_latest_decision(
    s3: S3Client, models_bucket: str, model_name: str, execution: str | None = None
) -> Decision:
    key = latest_decision_key(model_name, execution)
    if head(s3, models_bucket, key) is None:
        raise JobError(
            f"{flag('run_id')}: not given, and no decision for model {model_name!r} at "
            f"s3://{models_bucket}/{key}; run `python -m training_jobs.evaluate` first"
        )
    return read_decision(
        s3,
        models_bucket,
        model_name,
        str(json.loads(get_bytes(s3, models_bucket, key))["candidate_run_id"]),
    )


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        try:
            client.create_registered_model(name, tags={"mlops.managed": "true"})
        except MlflowException as race:  # created by a concurrent register: fine
            if race.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def _version_of_run(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    versions = [
        v
        for v in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        if v.name == name and v.run_id == run_id
    ]
    return min(versions, key=lambda v: int(v.version)) if versions else None


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, contract.CHAMPION_ALIAS)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def run(
    settings: Settings,
    *,
    s3: S3Client,
    mlflow_client: MlflowClient,
    decision: Decision | None = None,
    on_step: StepLogger = discard_steps,
) -> RegisterResult:
    name = settings.model_name
    if decision is None:
        models = bucket(settings, contract.BUCKET_MODELS)
        require_bucket(s3, models, bucket_origin(settings, contract.BUCKET_MODELS))
        if settings.run_id:
            decision = read_decision(s3, models, name, settings.run_id)
        else:
            decision = read_latest_decision(s3, models, name, settings.pipeline_execution)
    run_id = decision.candidate_run_id
    if decision.model_name != name:
        raise JobError(
            f"{flag('model_name')}: {name!r}, but the decision for run {run_id} is about "
            f"{decision.model_name!r}"
        )
    candidate = get_run(mlflow_client, run_id)

    _ensure_registered_model(mlflow_client, name)
    existing = _version_of_run(mlflow_client, name, run_id)
    if existing is None:
        # A sqlite-backed registry resolves `models:/<id>` through the process-wide tracking
        # URI (an MLflow TODO); point it at our client for this one call.
        with fluent_tracking(mlflow_client):
            version = mlflow_client.create_model_version(
                name,
                source=f"models:/{decision.candidate_model_id}",
                run_id=run_id,
                tags={
                    TAG_DATASET_VERSION: candidate.data.tags.get(TAG_DATASET_VERSION, ""),
                    "mlops.decision": decision.decision,
                },
                model_id=decision.candidate_model_id,
            )
        created = True
    else:
        version = existing
        created = False
    on_step("version", model=name, version=str(version.version), run_id=run_id, created=created)
    compiled = ensure_compiled(
        settings,
        s3=s3,
        mlflow_client=mlflow_client,
        version=version,
        candidate_tags=dict(candidate.data.tags),
        model_id=decision.candidate_model_id,
    )
    on_step("compiled", version=str(version.version), compiled=compiled)

    champion = _champion(mlflow_client, name)
    moved = False
    if decision.promote and (champion is None or str(champion.version) != str(version.version)):
        mlflow_client.set_registered_model_alias(name, contract.CHAMPION_ALIAS, version.version)
        moved = True
        champion_version: str | None = str(version.version)
    else:
        champion_version = str(champion.version) if champion is not None else None
    on_step(
        "alias",
        alias=contract.CHAMPION_ALIAS,
        decision=decision.decision,
        champion_version=champion_version,
        moved=moved,
    )
    return RegisterResult(
        model_name=name,
        run_id=run_id,
        version=str(version.version),
        created=created,
        decision=decision.decision,
        alias=contract.CHAMPION_ALIAS,
        champion_version=champion_version,
        alias_moved=moved,
        compiled=compiled,
    )


def ensure_compiled(
    settings: Settings,
    *,
    s3: S3Client,
    mlflow_client: MlflowClient,
    version: ModelVersion,
    candidate_tags: dict[str, str],
    model_id: str,
) -> str:
    """The version's compiled form: made, verified and tagged once (a re-run keeps what
    is recorded). Never fails the registration: a refusal is recorded with its reason."""
    tags = version.tags or {}
    if tags.get(contract.TAG_COMPILED) == contract.COMPILED_VERIFIED:
        return contract.COMPILED_VERIFIED
    if tags.get(contract.TAG_COMPILED) == contract.COMPILED_REFUSED:
        return f"refused: {tags.get(contract.TAG_COMPILED_REASON, '')}"
    name, number = settings.model_name, str(version.version)
    try:
        model, inputs = load_sklearn_model_and_inputs(mlflow_client, model_id)
        rows = _evaluation_rows(settings, s3, candidate_tags)
        compiled = compile_sklearn(model, inputs, rows, model_name=name, version=number)
    except NotCompilable as exc:
        return record(mlflow_client, name, number, manifest_uri=None, reason=str(exc))
    models = bucket(settings, contract.BUCKET_MODELS)

    def write(key: str, body: bytes) -> str:
        s3.put_object(Bucket=models, Key=key, Body=body)
        return f"s3://{models}/{key}"

    uri = publish(compiled, write, contract.compiled_prefix(name, number))
    return record(mlflow_client, name, number, manifest_uri=uri)


def _evaluation_rows(settings: Settings, s3: S3Client, candidate_tags: dict[str, str]) -> Any:
    """The candidate's holdout features (what evaluate scored it on)."""
    version = candidate_tags.get(TAG_DATASET_VERSION)
    if not version:
        raise NotCompilable(
            f"the candidate run has no {TAG_DATASET_VERSION} tag: no rows to check on"
        )
    curated = bucket(settings, contract.BUCKET_CURATED)
    manifest = dataset.load_manifest(s3, curated, settings.dataset, version)
    holdout = dataset.read_split(s3, curated, manifest, dataset.SPLIT_HOLDOUT)
    return dataset.features(holdout).head(VERIFY_ROWS)


def main(argv: Sequence[str] | None = None) -> int:
    def body(settings: Settings, log: StepLogger) -> RegisterResult:
        return run(
            settings,
            s3=make_s3_client(region(settings)),
            mlflow_client=make_client(tracking_uri(settings)),
            on_step=log,
        )

    return run_job(
        contract.JOB_REGISTER, Settings, body, argv, failures=(ClientError, MlflowException)
    )


if __name__ == "__main__":
    raise SystemExit(main())

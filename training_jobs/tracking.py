"""MLflow helpers the jobs share: the client, experiments, run tags, model loading.

The client is always passed in; the fluent API (needed by `log_model`) is pointed at that
client's tracking URI only for the duration of a call and restored afterwards.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, Final

from mlflow import MlflowClient
from mlflow.entities import Experiment, Run
from mlflow.exceptions import MlflowException

from training_jobs.common import JobError, flag

TAG_DATASET_VERSION: Final = "dataset_version"
TAG_CODE_VERSION: Final = "code_version"
TAG_PARAMS_HASH: Final = "mlops.params_hash"
TAG_MODEL_ID: Final = "mlops.model_id"
TAG_DECISION: Final = "mlops.decision"
MODEL_ARTIFACT: Final = "model"


def make_client(tracking_uri: str | None) -> MlflowClient:
    # The registry lives with the tracking store; without this MLflow would fall back to
    # the process-wide default (a sqlite file in the working directory).
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def fluent_tracking(client: MlflowClient) -> Iterator[None]:
    """Point mlflow's fluent API at `client` for one call (log_model needs it)."""
    # The private helper restores the previous URI, including "unset".
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    # MLflow prints run URLs to stdout when a run ends; stdout carries the jobs' JSON lines.
    # Restoring an unset URI also unsets MLFLOW_TRACKING_URI: put the caller's back.
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(client.tracking_uri), redirect_stdout(sys.stderr):
            yield
    finally:
        if previous_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


def is_not_found(exc: MlflowException) -> bool:
    # A missing alias is INVALID_PARAMETER_VALUE "... alias champion not found".
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in exc.message.lower()


def get_or_create_experiment(
    client: MlflowClient, name: str, artifact_location: str | None
) -> Experiment:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        client.create_experiment(name, artifact_location=artifact_location)
        experiment = client.get_experiment_by_name(name)
    if experiment is None:  # pragma: no cover - the server just said it created it
        raise JobError(f"{flag('experiment')}: could not create MLflow experiment {name!r}")
    if experiment.lifecycle_stage == "deleted":
        raise JobError(
            f"{flag('experiment')}: MLflow experiment {name!r} is deleted; restore it "
            "(`mlflow experiments restore`) or choose another name"
        )
    return experiment


def experiment_or_error(client: MlflowClient, name: str) -> Experiment:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise JobError(
            f"{flag('experiment')}: no MLflow experiment {name!r}; run "
            "`python -m training_jobs.train` first"
        )
    return experiment


def get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if is_not_found(exc):
            raise JobError(f"{flag('run_id')}: no MLflow run {run_id!r}") from exc
        raise


def latest_finished_run(client: MlflowClient, experiment: Experiment) -> Run:
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise JobError(
            f"{flag('run_id')}: not given, and experiment {experiment.name!r} has no finished "
            "run; run `python -m training_jobs.train` first"
        )
    run: Run = runs[0]
    return run


def model_id_of(run: Run) -> str:
    model_id = run.data.tags.get(TAG_MODEL_ID)
    if not model_id:
        raise JobError(
            f"{flag('run_id')}: run {run.info.run_id} has no {TAG_MODEL_ID} tag; it was not "
            "made by `python -m training_jobs.train`"
        )
    return str(model_id)


def load_sklearn_model(client: MlflowClient, model_id: str) -> Any:
    """Download a logged model's artifacts and load the scikit-learn flavour."""
    return load_sklearn_model_and_inputs(client, model_id)[0]


def load_sklearn_model_and_inputs(
    client: MlflowClient, model_id: str
) -> tuple[Any, list[dict[str, Any]]]:
    """The scikit-learn flavour and its signature's input columns (`inputs.to_dict()`)."""
    import mlflow.sklearn
    from mlflow.models import Model

    logged = client.get_logged_model(model_id)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=logged.artifact_location,
            dst_path=tmp,
            tracking_uri=client.tracking_uri,
        )
        signature = Model.load(str(Path(local))).signature
        inputs = signature.inputs.to_dict() if signature is not None else []
        return mlflow.sklearn.load_model(str(Path(local))), list(inputs)

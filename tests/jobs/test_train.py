from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd
import pytest

from tests.jobs.conftest import BUCKETS, Platform
from training_jobs import schema, train
from training_jobs.common import JobError
from training_jobs.dataset import manifest_key
from training_jobs.tracking import TAG_MODEL_ID, load_sklearn_model


def test_train_logs_a_reproducible_run_with_a_loadable_model(
    platform: Platform,
    prepared: Any,
    trained: train.TrainResult,
    mlflow_client: Any,
    sample: pd.DataFrame,
) -> None:
    run = mlflow_client.get_run(trained.run_id)

    assert run.info.status == "FINISHED"
    assert run.data.tags["dataset_version"] == prepared.dataset_version
    assert run.data.tags["code_version"] == "test-1"
    assert run.data.tags[TAG_MODEL_ID] == trained.model_id
    assert run.data.params["classifier"] == "logistic_regression"
    assert run.data.params["train_rows"] == str(prepared.rows_train)
    assert run.data.metrics["rows"] == prepared.rows_holdout
    # The generator's churn signal is strong: a working pipeline ranks well above chance.
    assert 0.7 < run.data.metrics["roc_auc"] < 1.0
    assert 0.0 < run.data.metrics["log_loss"] < 0.69
    assert trained.metrics["roc_auc"] == pytest.approx(run.data.metrics["roc_auc"])

    model = load_sklearn_model(mlflow_client, trained.model_id)
    proba = model.predict_proba(sample.loc[:, list(schema.FEATURE_NAMES)].head(20))
    assert proba.shape == (20, 2)

    logged = mlflow_client.get_logged_model(trained.model_id)
    assert logged.artifact_location.startswith(f"s3://{BUCKETS['models_bucket']}/mlflow/churn/")
    prefix = logged.artifact_location.removeprefix(f"s3://{BUCKETS['models_bucket']}/")
    keys = {
        o["Key"].removeprefix(prefix + "/")
        for o in platform.s3.list_objects_v2(Bucket=BUCKETS["models_bucket"], Prefix=prefix)[
            "Contents"
        ]
    }
    assert {"MLmodel", "requirements.txt", "input_example.json", "model.skops"} <= keys
    requirements = (
        platform.s3.get_object(Bucket=BUCKETS["models_bucket"], Key=f"{prefix}/requirements.txt")[
            "Body"
        ]
        .read()
        .decode()
    )
    assert "scikit-learn==" in requirements and "mlflow==" in requirements
    mlmodel = (
        platform.s3.get_object(Bucket=BUCKETS["models_bucket"], Key=f"{prefix}/MLmodel")["Body"]
        .read()
        .decode()
    )
    inputs = json.loads(mlmodel.split("inputs: '")[1].split("'\n")[0])
    assert [c["name"] for c in inputs] == list(schema.FEATURE_NAMES)


def test_rerun_reuses_the_finished_run(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    again = train.run(
        platform.settings(train.Settings, code_version="test-1"),
        s3=platform.s3,
        mlflow_client=mlflow_client,
    )

    assert again.reused and not trained.reused
    assert (again.run_id, again.model_id) == (trained.run_id, trained.model_id)
    assert len(mlflow_client.search_runs([trained.experiment_id])) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"regularization_c": 0.1},
        {"code_version": "test-2"},
        {"classifier": "random_forest", "n_estimators": 10},
    ],
)
def test_other_params_or_code_make_a_new_run(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any, change: dict[str, Any]
) -> None:
    other = train.run(
        platform.settings(train.Settings, **({"code_version": "test-1"} | change)),
        s3=platform.s3,
        mlflow_client=mlflow_client,
    )

    assert not other.reused
    assert other.run_id != trained.run_id
    assert len(mlflow_client.search_runs([trained.experiment_id])) == 2


def test_a_deleted_pinned_object_version_is_refused(
    platform: Platform, prepared: Any, mlflow_client: Any
) -> None:
    manifest = platform.json_object("curated_bucket", prepared.manifest_key)
    train_obj = manifest["objects"]["train"]
    platform.s3.delete_object(
        Bucket=BUCKETS["curated_bucket"], Key=train_obj["key"], VersionId=train_obj["version_id"]
    )

    with pytest.raises(
        JobError, match=rf"train: s3://test-curated/{train_obj['key']}\?versionId=.* is gone"
    ):
        train.run(platform.settings(train.Settings), s3=platform.s3, mlflow_client=mlflow_client)
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    assert mlflow_client.search_runs(experiments) == []


def test_a_tampered_manifest_is_refused(
    platform: Platform, prepared: Any, mlflow_client: Any
) -> None:
    manifest = platform.json_object("curated_bucket", prepared.manifest_key)
    manifest["rows"]["accepted"] += 1
    platform.s3.put_object(
        Bucket=BUCKETS["curated_bucket"], Key=prepared.manifest_key, Body=json.dumps(manifest)
    )

    with pytest.raises(JobError, match="modified after it was written"):
        train.run(platform.settings(train.Settings), s3=platform.s3, mlflow_client=mlflow_client)


def test_no_dataset_yet_says_to_run_prepare(platform: Platform, mlflow_client: Any) -> None:
    with pytest.raises(
        JobError,
        match=r"--dataset / MLOPS_DATASET: no dataset 'churn' in s3://test-curated .*training_jobs.prepare",
    ):
        train.run(platform.settings(train.Settings), s3=platform.s3, mlflow_client=mlflow_client)


def test_unknown_dataset_version_is_named(
    platform: Platform, prepared: Any, mlflow_client: Any
) -> None:
    unknown = "0" * 64
    with pytest.raises(JobError) as caught:
        train.run(
            platform.settings(train.Settings, dataset_version=unknown),
            s3=platform.s3,
            mlflow_client=mlflow_client,
        )
    assert str(caught.value) == (
        f"--dataset-version / MLOPS_DATASET_VERSION: {unknown!r} is not a version of dataset "
        f"'churn' (no s3://test-curated/{manifest_key('churn', unknown)})"
    )


def test_missing_models_bucket(platform: Platform, prepared: Any, mlflow_client: Any) -> None:
    with pytest.raises(
        JobError, match="--models-bucket / MLOPS_MODELS_BUCKET: bucket 'nope' does not exist"
    ):
        train.run(
            platform.settings(train.Settings, models_bucket="nope"),
            s3=platform.s3,
            mlflow_client=mlflow_client,
        )


def test_main_reads_env_and_logs_steps(
    platform: Platform,
    prepared: Any,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(platform.outputs_path))
    monkeypatch.setenv("MLOPS_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLOPS_CODE_VERSION", "abc123")

    code = train.main([])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [line["step"] for line in lines] == [
        "manifest",
        "verified",
        "fit",
        "logged_model",
        "done",
    ]
    result = lines[-1]["result"]
    assert (result["dataset_version"], result["code_version"]) == (
        prepared.dataset_version,
        "abc123",
    )


def test_bad_classifier_flag(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    code = train.main(["--classifier", "xgboost", "--stack-outputs", str(platform.outputs_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert (
        "--classifier / MLOPS_CLASSIFIER: 'xgboost' is not allowed: Input should be 'logistic_regression' or 'random_forest'"
        in err
    )


def test_no_tracking_server_anywhere_is_a_clear_error(
    platform: Platform, prepared: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = train.main(["--stack-outputs", str(platform.outputs_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "python -m training_jobs.train: error: --tracking-uri / MLOPS_TRACKING_URI: not set, "
        "and neither the stack outputs nor MLFLOW_TRACKING_URI name an MLflow server; give its "
        "URL (e.g. http://127.0.0.1:5000)\n"
    )


def test_tracking_uri_from_the_stack_outputs_and_env_is_left_as_found(
    platform: Platform,
    prepared: Any,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = json.loads(platform.outputs_path.read_text()) | {"tracking_uri": tracking_uri}
    platform.outputs_path.write_text(json.dumps(outputs))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # loses to the outputs

    code = train.main(["--stack-outputs", str(platform.outputs_path)])

    assert code == 0, capsys.readouterr().err
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9"
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["result"]["reused"] is False


def test_signature_makes_nullable_features_optional_columns() -> None:
    # The model server refuses null in a required column; an unanswered survey is not an error.
    from training_jobs import schema
    from training_jobs.train import model_signature

    columns = {c["name"]: c.get("required", True) for c in model_signature().inputs.to_dict()}
    assert columns == {c.name: not c.nullable for c in schema.FEATURES}
    assert columns["satisfaction_score"] is False

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.jobs.conftest import BUCKETS, Platform
from training_jobs import evaluate, register, train
from training_jobs.common import JobError
from training_jobs.evaluate import Thresholds, decide

THRESHOLDS = Thresholds(min_roc_auc=0.6, min_roc_auc_gain=0.0, max_log_loss_increase=0.05)


def _evaluate(platform: Platform, client: Any, run_id: str, **values: Any) -> evaluate.Decision:
    return evaluate.run(
        platform.settings(evaluate.Settings, run_id=run_id, **values),
        s3=platform.s3,
        mlflow_client=client,
    )


def _register(platform: Platform, client: Any, run_id: str) -> register.RegisterResult:
    return register.run(
        platform.settings(register.Settings, run_id=run_id), s3=platform.s3, mlflow_client=client
    )


def _other_run(platform: Platform, client: Any) -> train.TrainResult:
    return train.run(
        platform.settings(train.Settings, code_version="test-1", regularization_c=0.01),
        s3=platform.s3,
        mlflow_client=client,
    )


@pytest.mark.parametrize(
    ("candidate", "champion", "same", "verdict", "reason"),
    [
        ({"roc_auc": 0.8, "log_loss": 0.4}, None, False, "promote", "no current champion"),
        (
            {"roc_auc": 0.55, "log_loss": 0.4},
            None,
            False,
            "reject",
            "below the floor 0.6 (--min-roc-auc)",
        ),
        (
            {"roc_auc": 0.80, "log_loss": 0.4},
            {"roc_auc": 0.82, "log_loss": 0.4},
            False,
            "reject",
            "roc_auc gain -0.0200 below the required 0.0",
        ),
        (
            {"roc_auc": 0.83, "log_loss": 0.6},
            {"roc_auc": 0.82, "log_loss": 0.4},
            False,
            "reject",
            "log_loss rises by +0.2000, more than 0.05",
        ),
        (
            {"roc_auc": 0.83, "log_loss": 0.41},
            {"roc_auc": 0.82, "log_loss": 0.4},
            False,
            "promote",
            "roc_auc gain +0.0100 ≥ 0.0",
        ),
        (
            {"roc_auc": 0.8, "log_loss": 0.4},
            {"roc_auc": 0.8, "log_loss": 0.4},
            True,
            "promote",
            "candidate is already the champion",
        ),
    ],
)
def test_decision_rule(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    same: bool,
    verdict: str,
    reason: str,
) -> None:
    got, reasons = decide(candidate, champion, THRESHOLDS, same_run=same)
    assert got == verdict
    assert any(reason in r for r in reasons), reasons


def test_first_candidate_is_promoted_and_the_decision_is_stored(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    decision = _evaluate(platform, mlflow_client, trained.run_id)

    assert decision.decision == "promote"
    assert decision.champion_run_id is None and decision.deltas is None
    assert decision.candidate_metrics["roc_auc"] == pytest.approx(trained.metrics["roc_auc"])
    stored = platform.json_object("models_bucket", decision.decision_key)
    assert stored == json.loads(decision.model_dump_json())
    assert stored["thresholds"] == {
        "min_roc_auc": 0.6,
        "min_roc_auc_gain": 0.0,
        "max_log_loss_increase": 0.05,
    }
    assert mlflow_client.get_run(trained.run_id).data.tags["mlops.decision"] == "promote"


def test_register_creates_one_version_and_moves_the_alias_once(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    _evaluate(platform, mlflow_client, trained.run_id)

    first = _register(platform, mlflow_client, trained.run_id)
    again = _register(platform, mlflow_client, trained.run_id)

    assert (first.version, first.created, first.alias_moved) == ("1", True, True)
    assert (again.version, again.created, again.alias_moved) == ("1", False, False)
    versions = mlflow_client.search_model_versions("name = 'churn'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", trained.run_id)]
    champion = mlflow_client.get_model_version_by_alias("churn", "champion")
    assert (str(champion.version), champion.run_id) == ("1", trained.run_id)


def test_re_evaluating_the_champion_is_a_no_op(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    first = _evaluate(platform, mlflow_client, trained.run_id)
    _register(platform, mlflow_client, trained.run_id)
    versions_before = platform.versions("models_bucket")

    again = _evaluate(platform, mlflow_client, trained.run_id)

    assert again.decision == "promote"
    assert "candidate is already the champion" in again.reasons
    assert again.champion_version == "1"
    assert again.deltas == {"roc_auc": 0.0, "accuracy": 0.0, "log_loss": 0.0, "f1": 0.0}
    assert again.candidate_metrics == first.candidate_metrics
    # Only the decision documents changed (they now name the champion): per run and latest.
    assert platform.versions("models_bucket") == versions_before + 2


def test_a_candidate_below_the_required_gain_is_rejected_and_the_alias_stays(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    _evaluate(platform, mlflow_client, trained.run_id)
    _register(platform, mlflow_client, trained.run_id)
    other = _other_run(platform, mlflow_client)

    decision = _evaluate(platform, mlflow_client, other.run_id, min_roc_auc_gain=0.05)
    registered = _register(platform, mlflow_client, other.run_id)

    assert decision.decision == "reject"
    assert decision.champion_run_id == trained.run_id
    assert decision.deltas is not None
    assert decision.deltas["roc_auc"] == pytest.approx(
        decision.candidate_metrics["roc_auc"] - decision.champion_metrics["roc_auc"]  # type: ignore[index]
    )
    assert any("(--min-roc-auc-gain)" in r for r in decision.reasons)
    assert (registered.version, registered.created, registered.alias_moved) == ("2", True, False)
    assert registered.champion_version == "1"
    assert str(mlflow_client.get_model_version_by_alias("churn", "champion").version) == "1"


def test_a_better_candidate_takes_the_alias(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    _evaluate(platform, mlflow_client, trained.run_id)
    _register(platform, mlflow_client, trained.run_id)
    other = _other_run(platform, mlflow_client)

    decision = _evaluate(
        platform, mlflow_client, other.run_id, min_roc_auc_gain=-1.0, max_log_loss_increase=1.0
    )
    registered = _register(platform, mlflow_client, other.run_id)

    assert decision.decision == "promote"
    assert (registered.version, registered.alias_moved, registered.champion_version) == (
        "2",
        True,
        "2",
    )
    assert mlflow_client.get_model_version_by_alias("churn", "champion").run_id == other.run_id


def test_without_run_ids_the_jobs_follow_what_train_and_evaluate_last_produced(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    # A newer run exists, but train last *reused* the first one: that is the candidate.
    _other_run(platform, mlflow_client)
    reused = train.run(
        platform.settings(train.Settings, code_version="test-1"),
        s3=platform.s3,
        mlflow_client=mlflow_client,
    )
    assert reused.reused

    decision = evaluate.run(
        platform.settings(evaluate.Settings), s3=platform.s3, mlflow_client=mlflow_client
    )
    registered = register.run(
        platform.settings(register.Settings), s3=platform.s3, mlflow_client=mlflow_client
    )

    assert decision.candidate_run_id == trained.run_id
    assert registered.run_id == trained.run_id
    latest = platform.json_object("models_bucket", "decisions/churn/latest.json")
    assert (latest["candidate_run_id"], latest["decision"]) == (trained.run_id, "promote")


def test_evaluate_unknown_run(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    with pytest.raises(JobError, match=f"--run-id / MLOPS_RUN_ID: no MLflow run '{'a' * 32}'"):
        _evaluate(platform, mlflow_client, "a" * 32)


def test_evaluate_without_any_training(platform: Platform, mlflow_client: Any) -> None:
    with pytest.raises(
        JobError, match="--experiment / MLOPS_EXPERIMENT: no MLflow experiment 'churn'"
    ):
        evaluate.run(
            platform.settings(evaluate.Settings), s3=platform.s3, mlflow_client=mlflow_client
        )


def test_evaluate_missing_models_bucket(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    with pytest.raises(
        JobError, match="--models-bucket / MLOPS_MODELS_BUCKET: bucket 'gone' does not exist"
    ):
        _evaluate(platform, mlflow_client, trained.run_id, models_bucket="gone")


def test_register_before_evaluate_says_what_to_run(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    with pytest.raises(JobError) as caught:
        _register(platform, mlflow_client, trained.run_id)
    assert str(caught.value) == (
        f"--run-id / MLOPS_RUN_ID: run {trained.run_id} has no decision at "
        f"s3://{BUCKETS['models_bucket']}/decisions/churn/{trained.run_id}.json; run "
        f"`python -m training_jobs.evaluate --run-id {trained.run_id}` first"
    )
    assert mlflow_client.search_registered_models() == []


def test_register_without_any_decision(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    with pytest.raises(
        JobError,
        match=r"--run-id / MLOPS_RUN_ID: not given, and no decision for model 'churn' at s3://test-models/decisions/churn/latest.json",
    ):
        register.run(
            platform.settings(register.Settings), s3=platform.s3, mlflow_client=mlflow_client
        )


def test_register_missing_models_bucket(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    with pytest.raises(
        JobError, match="--models-bucket / MLOPS_MODELS_BUCKET: bucket 'gone' does not exist"
    ):
        register.run(
            platform.settings(register.Settings, run_id=trained.run_id, models_bucket="gone"),
            s3=platform.s3,
            mlflow_client=mlflow_client,
        )


def test_register_main_rejects_a_malformed_run_id(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    code = register.main(["--run-id", "not-a-run", "--stack-outputs", str(platform.outputs_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert "--run-id / MLOPS_RUN_ID: 'not-a-run' is not allowed: String should match pattern" in err


def test_evaluate_and_register_mains_log_json(
    platform: Platform,
    trained: train.TrainResult,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(platform.outputs_path))
    monkeypatch.setenv("MLOPS_TRACKING_URI", tracking_uri)

    assert evaluate.main(["--run-id", trained.run_id]) == 0
    assert register.main(["--run-id", trained.run_id]) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["job"], line["step"]) for line in lines] == [
        ("evaluate", "candidate"),
        ("evaluate", "decision"),
        ("evaluate", "done"),
        ("register", "version"),
        ("register", "compiled"),
        ("register", "alias"),
        ("register", "done"),
    ]
    assert lines[-1]["result"]["champion_version"] == "1"


def test_register_compiles_the_model_and_it_predicts_as_the_original(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    import hashlib

    import numpy as np

    from training_jobs import contract, dataset
    from training_jobs.compile import feeds_from_columns, session
    from training_jobs.tracking import load_sklearn_model

    _evaluate(platform, mlflow_client, trained.run_id)
    result = _register(platform, mlflow_client, trained.run_id)
    assert result.compiled == "verified"
    tags = mlflow_client.get_model_version("churn", result.version).tags
    assert tags[contract.TAG_COMPILED] == "verified"
    uri = tags[contract.TAG_COMPILED_URI]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    assert (bucket, key) == (BUCKETS["models_bucket"], "compiled/churn/v1/manifest.json")
    manifest = json.loads(platform.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body = platform.s3.get_object(Bucket=bucket, Key="compiled/churn/v1/model.onnx")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
    assert manifest["verification"]["passed"] and manifest["verification"]["label_mismatches"] == 0
    assert manifest["verification"]["max_abs_probability_diff"] <= 1e-5

    # Rows neither training nor the verification saw: the same labels, row for row.
    from training_jobs import sample_data

    rows = dataset.features(sample_data.generate(3_000, seed=77))
    original = load_sklearn_model(mlflow_client, trained.model_id)
    columns = {c: [None if v != v else v for v in rows[c].tolist()] for c in rows.columns}
    (labels,) = session(body).run(["label"], feeds_from_columns(columns, manifest["feeds"]))
    assert np.array_equal(labels.reshape(-1), original.predict(rows))

    # A re-run keeps what was recorded and uploads nothing new.
    again = _register(platform, mlflow_client, trained.run_id)
    assert again.compiled == "verified"


def test_a_model_that_cannot_be_compiled_is_registered_with_the_reason(
    platform: Platform, trained: train.TrainResult, mlflow_client: Any
) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from training_jobs import sample_data
    from training_jobs.compile import NotCompilable, compile_sklearn

    # An arbitrary Python function in the pipeline: no ONNX converter can know it.
    frame = sample_data.generate(300, seed=1)
    model = Pipeline(
        [("f", FunctionTransformer(lambda x: x)), ("m", train.build_pipeline(train.Settings()))]
    )
    model.fit(frame[list(train.schema.FEATURE_NAMES)], frame[train.schema.LABEL_COLUMN])
    inputs = [{"name": c, "type": "double" if c in train.schema.NUMERIC_FEATURES else "string"}
              for c in train.schema.FEATURE_NAMES]  # fmt: skip
    with pytest.raises(NotCompilable, match="skl2onnx cannot convert it"):
        compile_sklearn(model, inputs, frame, model_name="churn", version="9")

"""The drift job end to end: in-process moto for S3 and CloudWatch, sqlite MLflow in tmp_path."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from moto import mock_aws

from training_jobs import contract, sample_data, schema
from training_jobs.common import JobError
from training_jobs.drift import job
from training_jobs.drift.errors import EmptyWindowError, MissingFeatureError

MODEL = "churn"
DATASET_VERSION = "3f6c0d1e9a7b"
NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
BUCKETS = {"curated": "t-curated", "captures": "t-captures", "models": "t-models"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(
            Bucket=BUCKETS["curated"], VersioningConfiguration={"Status": "Enabled"}
        )
        yield {"s3": s3, "cloudwatch": boto3.client("cloudwatch", region_name="us-east-1")}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One registry for the module (creating its tables is the slow part); tests only read it."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("churn", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment, tags={"dataset_version": DATASET_VERSION})
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(
        MODEL, source=str(tmp_path / "artifacts" / "model"), run_id=run.info.run_id
    )
    client.set_registered_model_alias(MODEL, contract.CHAMPION_ALIAS, version.version)
    return uri


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def _put_reference(s3: Any, frame: pd.DataFrame) -> None:
    objects = {}
    for split, part in (("train", frame), ("holdout", frame.head(100))):
        body = _parquet_bytes(part)
        key = f"{contract.PREFIX_DATASETS}churn/{DATASET_VERSION}/{split}.parquet"
        put = s3.put_object(Bucket=BUCKETS["curated"], Key=key, Body=body)
        objects[split] = {
            "key": key,
            "version_id": put["VersionId"],
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
    manifest = {"dataset": "churn", "objects": objects}
    s3.put_object(
        Bucket=BUCKETS["curated"],
        Key=f"{contract.PREFIX_MANIFESTS}churn/{DATASET_VERSION}.json",
        Body=json.dumps(manifest).encode(),
    )


def _put_captures(s3: Any, frame: pd.DataFrame, when: datetime, name: str) -> str:
    """One JSON Lines batch as the model server writes it, every row captured at `when`."""
    lines = [
        json.dumps(
            {
                "captured_at": when.isoformat(),
                "request_id": f"r{i}",
                "model_name": MODEL,
                "model_version": "1",
                "inputs": row,
                "prediction": 0,
            }
        )
        for i, row in enumerate(
            frame.loc[:, [c for c in schema.FEATURE_NAMES if c in frame]].to_dict("records")
        )
    ]
    key = (
        f"{contract.PREFIX_CAPTURES}{MODEL}/date={when:%Y-%m-%d}/hour={when:%H}/"
        f"{when:%Y%m%dT%H%M%S}-{name}.jsonl"
    )
    body = "\n".join(lines).replace("NaN", "null") + "\n"
    s3.put_object(Bucket=BUCKETS["captures"], Key=key, Body=body.encode())
    return key


def _settings(tracking_uri: str, **overrides: Any) -> job.DriftSettings:
    values: dict[str, Any] = {
        "model_name": MODEL,
        "tracking_uri": tracking_uri,
        "last_hours": 2,
        "curated_bucket": BUCKETS["curated"],
        "captures_bucket": BUCKETS["captures"],
        "models_bucket": BUCKETS["models"],
        "chunk_rows": 1_000,
        **overrides,
    }
    return job.DriftSettings(**values)


def _run(aws: dict[str, Any], tracking_uri: str, **overrides: Any) -> job.DriftResult:
    return job.run(
        _settings(tracking_uri, **overrides),
        s3=aws["s3"],
        cloudwatch=aws["cloudwatch"],
        mlflow_client=MlflowClient(tracking_uri=tracking_uri),
        now=NOW,
    )


def test_drift_end_to_end_writes_reports_and_metrics(
    aws: dict[str, Any], tracking_uri: str
) -> None:
    s3, cloudwatch = aws["s3"], aws["cloudwatch"]
    _put_reference(s3, sample_data.generate(5_000, seed=0))
    production = sample_data.shift(sample_data.generate(3_000, seed=5), seed=6)
    _put_captures(s3, production.iloc[:2_000], NOW - timedelta(minutes=50), "a")
    _put_captures(s3, production.iloc[2_000:], NOW - timedelta(minutes=5), "b")
    # Outside the window: an earlier hour's batch, and rows of a window hour captured
    # before the window started.
    _put_captures(s3, production.iloc[:700], NOW - timedelta(hours=5), "old")
    _put_captures(s3, production.iloc[:300], NOW - timedelta(hours=2, minutes=10), "early")

    result = _run(aws, tracking_uri)

    assert result.current_rows == 3_000
    assert result.reference_rows == 5_000
    assert result.window_start == NOW - timedelta(hours=2)
    assert result.drift_detected
    # `shift` moves charges, support calls, logins and the plan mix, and nothing else
    # (total_charges follows monthly_charges only through the generator, not the shift).
    assert set(result.drifted_features) == {
        "monthly_charges",
        "support_calls_90d",
        "logins_30d",
        "plan",
    }
    by_name = {f.name: f for f in result.findings}
    assert by_name["satisfaction_score"].current_missing > 0
    assert result.max_score == max(f.score for f in result.findings)

    prefix = f"{contract.PREFIX_DRIFT_REPORTS}{MODEL}/2026-11-27T123000Z/"
    assert result.report_json_uri == f"s3://{BUCKETS['models']}/{prefix}report.json"
    document = json.loads(
        s3.get_object(Bucket=BUCKETS["models"], Key=prefix + "report.json")["Body"].read()
    )
    assert document["drift_detected"] is True
    assert document["dataset_version"] == DATASET_VERSION
    assert [f["name"] for f in document["features"]] == list(schema.FEATURE_NAMES)
    assert document["rows"] == {"reference": 5_000, "current": 3_000}
    page = s3.get_object(Bucket=BUCKETS["models"], Key=prefix + "report.html")["Body"].read()
    text = page.decode()
    assert text.count("<svg") == len(schema.FEATURES)
    assert "<script" not in text and 'src="http' not in text and "<link" not in text
    assert "Drift in 4 of 20 features" in text

    metrics = cloudwatch.list_metrics(Namespace=contract.DRIFT_METRIC_NAMESPACE)["Metrics"]
    feature_metrics = [m for m in metrics if m["MetricName"] == contract.DRIFT_METRIC_FEATURE]
    assert len(feature_metrics) == len(schema.FEATURES)
    assert result.metrics_published == len(schema.FEATURES) + 1
    stats = cloudwatch.get_metric_statistics(
        Namespace=contract.DRIFT_METRIC_NAMESPACE,
        MetricName=contract.DRIFT_METRIC_MAX,
        Dimensions=[{"Name": contract.DRIFT_DIMENSION_MODEL, "Value": MODEL}],
        StartTime=NOW - timedelta(hours=1),
        EndTime=NOW + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [round(p["Maximum"], 9) for p in stats] == [round(result.max_score, 9)]
    plan = cloudwatch.get_metric_statistics(
        Namespace=contract.DRIFT_METRIC_NAMESPACE,
        MetricName=contract.DRIFT_METRIC_FEATURE,
        Dimensions=[
            {"Name": contract.DRIFT_DIMENSION_MODEL, "Value": MODEL},
            {"Name": contract.DRIFT_DIMENSION_FEATURE, "Value": "plan"},
        ],
        StartTime=NOW - timedelta(hours=1),
        EndTime=NOW + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [round(p["Maximum"], 9) for p in plan] == [round(by_name["plan"].score, 9)]


def test_same_distribution_traffic_is_not_drift(aws: dict[str, Any], tracking_uri: str) -> None:
    _put_reference(aws["s3"], sample_data.generate(5_000, seed=0))
    _put_captures(aws["s3"], sample_data.generate(4_000, seed=11), NOW - timedelta(hours=1), "a")
    result = _run(aws, tracking_uri)
    assert not result.drift_detected
    assert result.drifted_features == ()
    assert result.max_score < 0.1


def test_unseen_category_is_reported(aws: dict[str, Any], tracking_uri: str) -> None:
    _put_reference(aws["s3"], sample_data.generate(2_000, seed=0))
    production = sample_data.generate(1_000, seed=3)
    production.loc[:99, "region"] = "antarctica"
    _put_captures(aws["s3"], production, NOW - timedelta(minutes=30), "a")
    region = {f.name: f for f in _run(aws, tracking_uri).findings}["region"]
    assert region.unseen_categories == {"antarctica": 100}


def test_an_empty_window_is_an_error(aws: dict[str, Any], tracking_uri: str) -> None:
    _put_reference(aws["s3"], sample_data.generate(1_000, seed=0))
    _put_captures(aws["s3"], sample_data.generate(50, seed=1), NOW - timedelta(hours=6), "old")
    with pytest.raises(EmptyWindowError, match=r"no captured inferences for model 'churn'"):
        _run(aws, tracking_uri)


def test_a_feature_missing_from_captures_is_named(aws: dict[str, Any], tracking_uri: str) -> None:
    _put_reference(aws["s3"], sample_data.generate(1_000, seed=0))
    key = _put_captures(
        aws["s3"],
        sample_data.generate(50, seed=1).drop(columns=["age"]),
        NOW - timedelta(minutes=1),
        "b",
    )
    with pytest.raises(MissingFeatureError, match=rf"'age' is missing from capture {key}"):
        _run(aws, tracking_uri)


def test_main_reports_user_errors_in_one_line_with_exit_2(
    aws: dict[str, Any], tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _put_reference(aws["s3"], sample_data.generate(1_000, seed=0))
    argv = [
        "--tracking-uri",
        tracking_uri,
        "--curated-bucket",
        BUCKETS["curated"],
        "--captures-bucket",
        BUCKETS["captures"],
        "--models-bucket",
        BUCKETS["models"],
        "--window-start",
        "2026-11-27T10:00:00Z",
        "--window-end",
        "2026-11-27T11:00:00Z",
    ]
    assert job.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m training_jobs.drift: error: no captured inferences")
    assert "Traceback" not in err and err.count("\n") == 1

    assert job.main([*argv, "--model-name", "nobody"]) == 2
    err = capsys.readouterr().err
    assert (
        "--model-name / MLOPS_DRIFT_MODEL_NAME / MLOPS_MODEL_NAME: model 'nobody' has no "
        "'champion' alias" in err
    )


def test_main_exits_0_on_drift_and_prints_a_summary(
    aws: dict[str, Any], tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _put_reference(aws["s3"], sample_data.generate(2_000, seed=0))
    production = sample_data.shift(sample_data.generate(2_000, seed=5))
    _put_captures(aws["s3"], production, datetime(2026, 11, 27, 10, 15, tzinfo=UTC), "a")
    argv = [
        "--tracking-uri",
        tracking_uri,
        "--curated-bucket",
        BUCKETS["curated"],
        "--captures-bucket",
        BUCKETS["captures"],
        "--models-bucket",
        BUCKETS["models"],
        "--window-start",
        "2026-11-27T10:00:00Z",
        "--window-end",
        "2026-11-27T11:00:00Z",
    ]
    assert job.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["job"] for line in lines} == {contract.JOB_DRIFT}
    steps = [line["step"] for line in lines]
    assert steps == [
        "champion",
        "captures",
        *["feature"] * len(schema.FEATURES),
        "report",
        "metrics",
        "done",
    ]
    summary = lines[-1]["result"]
    assert summary["drift_detected"] is True
    assert "plan" in summary["drifted_features"]
    assert summary["rows"] == {"reference": 2_000, "current": 2_000}
    assert summary["window"] == ["2026-11-27T10:00:00+00:00", "2026-11-27T11:00:00+00:00"]
    features = {line["name"]: line for line in lines if line["step"] == "feature"}
    assert features["plan"]["drifted"] is True
    assert lines[steps.index("metrics")]["published"] == len(schema.FEATURES) + 1


# --- settings ------------------------------------------------------------------------------


def test_window_is_the_last_n_hours_by_default(tracking_uri: str) -> None:
    start, end = job.resolve_window(_settings(tracking_uri, last_hours=None), NOW)
    assert (start, end) == (NOW - timedelta(hours=24), NOW)


def test_window_start_and_last_hours_exclude_each_other() -> None:
    with pytest.raises(ValueError, match=r"either --window-start .* or --last-hours"):
        job.DriftSettings(window_start=NOW, last_hours=3)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_DRIFT_WASSERSTEIN_THRESHOLD", "0.25")
    monkeypatch.setenv("MLOPS_DRIFT_WINDOW_START", "2026-11-27T08:00:00+02:00")
    settings = job.DriftSettings()
    assert settings.wasserstein_threshold == 0.25
    start, _ = job.resolve_window(settings, NOW)
    assert start == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def test_buckets_come_from_the_stack_outputs_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps({f"{role}_bucket": f"stack-{role}" for role in contract.DATA_BUCKET_ROLES})
    )
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(outputs))
    buckets = job.resolve_buckets(job.DriftSettings(models_bucket="mine"))
    assert buckets == job.Buckets(curated="stack-curated", captures="stack-captures", models="mine")


def test_a_missing_bucket_names_the_setting() -> None:
    with pytest.raises(
        JobError,
        match="--curated-bucket / MLOPS_DRIFT_CURATED_BUCKET / MLOPS_CURATED_BUCKET: not set, "
        "and no --stack-outputs / MLOPS_DRIFT_STACK_OUTPUTS / MLOPS_STACK_OUTPUTS file",
    ):
        job.resolve_buckets(job.DriftSettings())


def test_reads_the_platform_settings_batch_job_definitions_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # infra's job definitions export MLOPS_<BUCKET>_BUCKET and MLOPS_TRACKING_URI to every job.
    monkeypatch.setenv("MLOPS_CURATED_BUCKET", "curated-from-batch")
    monkeypatch.setenv("MLOPS_CAPTURES_BUCKET", "captures-from-batch")
    monkeypatch.setenv("MLOPS_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MLOPS_DRIFT_MODELS_BUCKET", "models-drift-specific")
    settings = job.DriftSettings()
    assert settings.curated_bucket == "curated-from-batch"
    assert settings.captures_bucket == "captures-from-batch"
    assert settings.tracking_uri == "http://mlflow.internal:5000"
    assert settings.models_bucket == "models-drift-specific"


def test_main_refuses_to_run_without_a_tracking_uri(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # MLflow would otherwise fall back to ./mlruns and report "no champion" from an empty store.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("MLOPS_TRACKING_URI", "MLOPS_DRIFT_TRACKING_URI", "MLOPS_STACK_OUTPUTS"):
        monkeypatch.delenv(name, raising=False)
    argv = [f"--{role}-bucket={name}" for role, name in BUCKETS.items()]
    assert job.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "python -m training_jobs.drift: error: --tracking-uri / MLOPS_DRIFT_TRACKING_URI / "
        "MLOPS_TRACKING_URI: not set, and neither the stack outputs nor MLFLOW_TRACKING_URI "
        "name an MLflow server; give its URL (e.g. http://127.0.0.1:5000)\n"
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--download-workers", "0"],
            {},
            "--download-workers / MLOPS_DRIFT_DOWNLOAD_WORKERS: '0' is not allowed: "
            "Input should be greater than or equal to 1",
        ),
        (
            [],
            {"MLOPS_DRIFT_LAST_HOURS": "-1"},
            "--last-hours / MLOPS_DRIFT_LAST_HOURS: '-1' is not allowed: Input should be "
            "greater than 0",
        ),
        (
            [],
            {"MLOPS_MODEL_NAME": "no spaces allowed"},
            "--model-name / MLOPS_DRIFT_MODEL_NAME / MLOPS_MODEL_NAME: 'no spaces allowed' is "
            "not allowed: String should match pattern",
        ),
        (
            ["--window-start", "yesterday"],
            {},
            "--window-start / MLOPS_DRIFT_WINDOW_START: 'yesterday' is not allowed: Input "
            "should be a valid datetime",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_with_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert job.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m training_jobs.drift: error: ")
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err

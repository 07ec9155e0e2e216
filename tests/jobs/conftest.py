"""Shared fixtures for the job modules: moto in-process S3 and a sqlite MLflow store."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from training_jobs import sample_data
from training_jobs.common import JobSettings

BUCKETS = {
    "raw_bucket": "test-raw",
    "curated_bucket": "test-curated",
    "models_bucket": "test-models",
    "captures_bucket": "test-captures",
}

# Rows that break the schema in one way each, with the reason prepare must give.
CORRUPT_ROWS: list[tuple[dict[str, Any], str]] = [
    ({"tenure_months": "abc"}, "tenure_months: 'abc' is not a number"),
    ({"age": "150"}, "age: 150 outside [18, 100]"),
    ({"plan": "gold"}, "plan: 'gold' is not one of basic, standard, premium"),
    ({"monthly_charges": ""}, "monthly_charges: missing (not nullable)"),
    ({"churned": "2"}, "churned: '2' is not 0 or 1"),
]

S = TypeVar("S", bound=JobSettings)


@dataclass
class Platform:
    """The emulated platform a test runs against."""

    s3: Any
    outputs_path: Path
    tmp_path: Path

    def settings(self, cls: type[S], **values: Any) -> S:
        return cls(stack_outputs=self.outputs_path, **values)

    def put_raw(self, frame: pd.DataFrame, key: str = "churn/part-0.csv") -> None:
        if key.endswith(".csv"):
            body = frame.to_csv(index=False).encode()
        else:
            body = frame.to_parquet(index=False)
        self.s3.put_object(Bucket=BUCKETS["raw_bucket"], Key=key, Body=body)

    def json_object(self, bucket_field: str, key: str) -> Any:
        body = self.s3.get_object(Bucket=BUCKETS[bucket_field], Key=key)["Body"].read()
        return json.loads(body)

    def versions(self, bucket_field: str) -> int:
        response = self.s3.list_object_versions(Bucket=BUCKETS[bucket_field])
        return len(response.get("Versions", []))


def with_corrupt_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as strings plus one broken row per CORRUPT_ROWS entry, with fresh ids."""
    text = frame.astype(str).replace("nan", "")
    extra = []
    next_id = int(frame["customer_id"].max()) + 1
    for offset, (change, _) in enumerate(CORRUPT_ROWS):
        row = text.iloc[offset].to_dict() | {"customer_id": str(next_id + offset)} | change
        extra.append(row)
    return pd.concat([text, pd.DataFrame(extra)], ignore_index=True)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, no endpoint overrides, no telemetry: nothing leaves the process."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "MLFLOW_S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in list(os.environ):
        if name.startswith("MLOPS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def platform(aws_env: None, tmp_path: Path) -> Iterator[Platform]:
    """Versioned buckets as the data lake declares them, and a stack-outputs file naming them."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for name in BUCKETS.values():
            s3.create_bucket(Bucket=name)
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps(BUCKETS | {"region": "us-east-1"}))
        yield Platform(s3=s3, outputs_path=outputs, tmp_path=tmp_path)


@pytest.fixture(scope="session")
def _mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Creating MLflow's tables costs about a second; do it once and copy the file."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, _mlflow_db_template: Path) -> str:
    path = tmp_path / "mlflow.db"
    shutil.copyfile(_mlflow_db_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def mlflow_client(tracking_uri: str) -> Any:
    from training_jobs.tracking import make_client

    return make_client(tracking_uri)


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    return sample_data.generate(1_500, seed=7)


@pytest.fixture
def prepared(platform: Platform, sample: pd.DataFrame) -> Any:
    """The sample uploaded and prepared: the curated dataset train and evaluate start from."""
    from training_jobs import prepare

    platform.put_raw(sample)
    return prepare.run(platform.settings(prepare.Settings), s3=platform.s3)


@pytest.fixture
def trained(platform: Platform, prepared: Any, mlflow_client: Any) -> Any:
    from training_jobs import train

    return train.run(
        platform.settings(train.Settings, code_version="test-1"),
        s3=platform.s3,
        mlflow_client=mlflow_client,
    )

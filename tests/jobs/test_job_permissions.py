"""Every AWS call the jobs make is granted by the job role the plan gives them.

moto does not enforce IAM here, so a job calling an action its role lacks passes every
other test and fails in AWS (prepare's GetBucketVersioning did). This runs the jobs on the
dev plan's own bucket names, records each call at the botocore layer (what boto3 and
MLflow's artifact uploads both go through), turns it into the IAM actions and ARNs AWS
authorizes, and checks them against the plan's job role policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
from moto import mock_aws

from mlops_local.iam import Access, accesses, report
from tests.conftest import plan_for
from training_jobs import contract, lifecycle, sample_data, schema
from training_jobs.drift import job as drift
from training_jobs.serve.capture import CaptureEntry, CaptureSink
from training_jobs.tracking import make_client

pytestmark = pytest.mark.e2e


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    recorded: list[tuple[str, str, dict[str, Any]]] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: dict[str, Any]) -> Any:
        recorded.append((self.meta.service_model.service_name, operation, dict(params)))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    yield recorded


def _job_role_documents() -> list[dict[str, Any]]:
    plan = plan_for("dev")
    (policy,) = [r for r in plan.resources if r.name == "mlops-dev-training-job-policy"]
    return [json.loads(policy.inputs["policy"])]


def _capture(s3: Any, bucket: str, rows: int, when: datetime) -> None:
    frame = sample_data.generate(rows, seed=5)
    sink = CaptureSink(
        s3,
        bucket=bucket,
        prefix=contract.PREFIX_CAPTURES,
        batch_records=rows,
        flush_interval_s=3_600,
        max_buffered_records=rows,
    )
    sink.start()
    for i, row in enumerate(frame.to_dict(orient="records")):
        columns = {name: [row[name]] for name in schema.FEATURE_NAMES}
        sink.offer(CaptureEntry(when, f"r{i}", "churn", "1", columns, [0], 1))
    sink.close()


def test_every_call_of_every_job_is_granted_by_the_plans_job_role(
    calls: list[tuple[str, str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tracking_uri: str,
) -> None:
    outputs = {k: v for k, v in plan_for("dev").outputs.items() if k.endswith("_bucket")}
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in outputs.values():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(
            Bucket=outputs["raw_bucket"],
            Key="churn/sample.csv",
            Body=sample_data.generate(800, seed=2).to_csv(index=False).encode(),
        )
        now = datetime.now(UTC)
        _capture(s3, outputs["captures_bucket"], 300, now - timedelta(minutes=5))
        (tmp_path / "outputs.json").write_text(json.dumps({**outputs, "region": "us-east-1"}))
        del calls[:]  # the test's own set-up is not the jobs'

        result = lifecycle.run(
            lifecycle.Settings(stack_outputs=tmp_path / "outputs.json"),
            s3=s3,
            mlflow_client=make_client(tracking_uri),
        )
        assert result.champion_version == "1"
        drift.run(
            drift.DriftSettings(
                stack_outputs=tmp_path / "outputs.json", tracking_uri=tracking_uri, last_hours=1
            ),
            s3=s3,
            cloudwatch=boto3.client("cloudwatch", region_name="us-east-1"),
            mlflow_client=make_client(tracking_uri),
        )

    made = [access for call in calls for access in accesses(*call)]
    made_actions = {a.action for a in made}
    # What the jobs really do: read and write the lake, pin versions, publish drift.
    assert {"s3:GetBucketVersioning", "s3:PutObject", "cloudwatch:PutMetricData"} <= made_actions
    result_report = report("job", _job_role_documents(), made)
    assert result_report.denied == set(), (
        "calls the job role does not grant (they would fail in AWS):\n"
        + "\n".join(f"  {a.action} {a.resource}" for a in sorted(result_report.denied))
    )


def test_a_role_without_an_action_its_job_calls_is_reported() -> None:
    documents = _job_role_documents()
    for statement in documents[0]["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "s3:GetBucketVersioning"]
    bucket = plan_for("dev").outputs["curated_bucket"]
    made = accesses("s3", "GetBucketVersioning", {"Bucket": bucket})
    assert report("job", documents, made).denied == {
        Access("s3:GetBucketVersioning", f"arn:aws:s3:::{bucket}")
    }
    # A metric outside the namespace the role's condition allows is not granted either.
    other = accesses("cloudwatch", "PutMetricData", {"Namespace": "Elsewhere"})
    assert report("job", _job_role_documents(), other).denied == set(other)

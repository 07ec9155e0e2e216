from __future__ import annotations

import pytest

from tests.jobs.conftest import BUCKETS, Platform
from training_jobs import lifecycle
from training_jobs.common import JobError
from training_jobs.storage import put_if_changed, sha256_hex


def test_put_if_changed_compares_with_objects_written_elsewhere(platform: Platform) -> None:
    bucket = BUCKETS["curated_bucket"]
    first = platform.s3.put_object(Bucket=bucket, Key="k", Body=b"same")  # no sha256 metadata

    unchanged, wrote_same = put_if_changed(platform.s3, bucket, "k", b"same", "text/plain")
    changed, wrote_other = put_if_changed(platform.s3, bucket, "k", b"other", "text/plain")

    assert (wrote_same, unchanged.version_id) == (False, first["VersionId"])
    assert wrote_other and changed.version_id != first["VersionId"]
    assert (changed.sha256, changed.size) == (sha256_hex(b"other"), 5)
    head = platform.s3.head_object(Bucket=bucket, Key="k")
    assert head["Metadata"]["sha256"] == sha256_hex(b"other")


@pytest.mark.parametrize("field", ["dataset_version", "run_id"])
def test_lifecycle_refuses_ids_it_decides_itself(platform: Platform, field: str) -> None:
    value = "a" * (64 if field == "dataset_version" else 32)
    settings = platform.settings(lifecycle.Settings, **{field: value})
    flag = f"--{field.replace('_', '-')} / MLOPS_{field.upper()}"

    with pytest.raises(JobError, match=f"{flag}: '{value}' is not allowed here"):
        lifecycle.run(settings, s3=platform.s3, mlflow_client=None)  # type: ignore[arg-type]

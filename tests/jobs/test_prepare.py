from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.jobs.conftest import BUCKETS, CORRUPT_ROWS, Platform, with_corrupt_rows
from training_jobs import prepare, schema
from training_jobs.common import JobError
from training_jobs.dataset import Manifest, load_manifest


def _curated_bytes(platform: Platform, key: str, version_id: str | None = None) -> bytes:
    kwargs = {"VersionId": version_id} if version_id else {}
    response = platform.s3.get_object(Bucket=BUCKETS["curated_bucket"], Key=key, **kwargs)
    return bytes(response["Body"].read())


def test_prepare_validates_splits_and_writes_a_verifiable_manifest(
    platform: Platform, sample: pd.DataFrame
) -> None:
    platform.put_raw(with_corrupt_rows(sample))

    result = prepare.run(platform.settings(prepare.Settings), s3=platform.s3)

    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (
        len(sample) + len(CORRUPT_ROWS),
        len(sample),
        len(CORRUPT_ROWS),
    )
    rejects = platform.json_object("curated_bucket", result.rejects_key)
    assert rejects["count"] == len(CORRUPT_ROWS)
    assert [r["reasons"] for r in rejects["rows"]] == [[reason] for _, reason in CORRUPT_ROWS]
    assert [r["row"] for r in rejects["rows"]] == list(
        range(len(sample) + 1, len(sample) + len(CORRUPT_ROWS) + 1)
    )

    manifest_bytes = _curated_bytes(platform, result.manifest_key)
    assert hashlib.sha256(manifest_bytes).hexdigest() == result.dataset_version
    manifest = Manifest.model_validate_json(manifest_bytes)
    assert set(manifest.objects) == {"train", "holdout", "rejects"}
    for obj in manifest.objects.values():
        body = _curated_bytes(platform, obj.key, obj.version_id)
        assert obj.version_id
        assert (len(body), hashlib.sha256(body).hexdigest()) == (obj.size, obj.sha256)

    train = pq.read_table(io.BytesIO(_curated_bytes(platform, manifest.objects["train"].key)))
    holdout = pq.read_table(io.BytesIO(_curated_bytes(platform, manifest.objects["holdout"].key)))
    train_ids = set(train.column(schema.ID_COLUMN).to_pylist())
    holdout_ids = set(holdout.column(schema.ID_COLUMN).to_pylist())
    assert not train_ids & holdout_ids
    assert train_ids | holdout_ids == set(sample[schema.ID_COLUMN])
    assert 0.15 < len(holdout_ids) / len(sample) < 0.25
    assert (result.rows_train, result.rows_holdout) == (len(train_ids), len(holdout_ids))
    assert str(train.schema.field("age").type) == "double"
    assert str(train.schema.field("plan").type) == "string"
    latest = platform.json_object("curated_bucket", "manifests/churn/latest.json")
    assert latest["dataset_version"] == result.dataset_version


def test_rerun_on_unchanged_input_writes_nothing_and_keeps_the_version(
    platform: Platform, sample: pd.DataFrame
) -> None:
    platform.put_raw(with_corrupt_rows(sample))
    settings = platform.settings(prepare.Settings)
    first = prepare.run(settings, s3=platform.s3)
    versions_after_first = platform.versions("curated_bucket")

    second = prepare.run(settings, s3=platform.s3)

    assert second.dataset_version == first.dataset_version
    assert second.written == ()
    assert first.written  # the first run did write: the comparison above means something
    assert platform.versions("curated_bucket") == versions_after_first


def test_new_rows_make_a_new_dataset_version(platform: Platform, sample: pd.DataFrame) -> None:
    platform.put_raw(sample)
    first = prepare.run(platform.settings(prepare.Settings), s3=platform.s3)
    platform.put_raw(sample.head(1000), key="churn/part-0.csv")

    second = prepare.run(platform.settings(prepare.Settings), s3=platform.s3)

    assert second.dataset_version != first.dataset_version
    assert second.rows_accepted == 1000
    # The older version stays readable through its pinned object versions.
    old = load_manifest(platform.s3, BUCKETS["curated_bucket"], "churn", first.dataset_version)
    assert old.rows.accepted == len(sample)


def test_parquet_input_gives_the_same_curated_bytes_as_csv(
    platform: Platform, sample: pd.DataFrame
) -> None:
    platform.put_raw(sample, key="csv/part-0.csv")
    platform.put_raw(sample, key="parquet/part-0.parquet")

    from_csv = prepare.run(platform.settings(prepare.Settings, raw_key="csv/"), s3=platform.s3)
    manifest_csv = load_manifest(
        platform.s3, BUCKETS["curated_bucket"], "churn", from_csv.dataset_version
    )
    from_parquet = prepare.run(
        platform.settings(prepare.Settings, raw_key="parquet/part-0.parquet", dataset="pq"),
        s3=platform.s3,
    )
    manifest_pq = load_manifest(
        platform.s3, BUCKETS["curated_bucket"], "pq", from_parquet.dataset_version
    )

    assert from_parquet.rows_accepted == len(sample)
    assert manifest_pq.objects["train"].sha256 == manifest_csv.objects["train"].sha256
    assert manifest_pq.objects["holdout"].sha256 == manifest_csv.objects["holdout"].sha256


def test_holdout_split_is_stable_per_id() -> None:
    ids = pd.Series(np.arange(2_000))
    whole = prepare.holdout_mask(ids, 0.2)
    part = prepare.holdout_mask(ids.iloc[500:1500], 0.2)
    assert np.array_equal(whole[500:1500], part)
    assert 0.17 < whole.mean() < 0.23


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        *CORRUPT_ROWS,
        ({"customer_id": "1.5"}, "customer_id: '1.5' is not a non-negative integer"),
        ({"spend_change_pct": "inf"}, "spend_change_pct: 'inf' is not finite"),
        ({"region": ""}, "region: missing (not nullable)"),
    ],
)
def test_validate_rejects_each_kind_of_bad_value(
    sample: pd.DataFrame, change: dict[str, str], reason: str
) -> None:
    rows = sample.head(3).astype(str).replace("nan", "")
    rows.loc[1, list(change)] = list(change.values())

    accepted, rejected = prepare.validate(rows, "test")

    assert rejected == [(1, [reason])]
    assert list(accepted[schema.ID_COLUMN]) == [
        int(rows.loc[0, "customer_id"]),
        int(rows.loc[2, "customer_id"]),
    ]


def test_validate_accepts_missing_nullable_values_and_rejects_duplicate_ids(
    sample: pd.DataFrame,
) -> None:
    rows = sample.head(3).astype(str)
    rows.loc[0, "satisfaction_score"] = ""
    rows.loc[2, "customer_id"] = rows.loc[1, "customer_id"]

    accepted, rejected = prepare.validate(rows.replace("nan", ""), "test")

    assert np.isnan(accepted.loc[0, "satisfaction_score"])
    assert rejected == [(2, [f"customer_id: {rows.loc[1, 'customer_id']} repeats an earlier row"])]


def test_missing_columns_are_named(platform: Platform, sample: pd.DataFrame) -> None:
    platform.put_raw(sample.drop(columns=["age", "plan"]))

    with pytest.raises(JobError, match=r"missing column\(s\) age, plan; the schema"):
        prepare.run(platform.settings(prepare.Settings), s3=platform.s3)


def test_all_rows_bad_exits_2_with_one_message(
    platform: Platform, sample: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = sample.head(3).astype(str)
    bad["age"] = "7"
    platform.put_raw(bad)

    code = prepare.main(["--stack-outputs", str(platform.outputs_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "all 3 rows under s3://test-raw/churn/ failed validation" in err
    assert "age: 7 outside [18, 100]" in err
    assert "Traceback" not in err
    rejects = platform.json_object("curated_bucket", "rejects/churn/rejects.json")
    assert rejects["count"] == 3


def test_main_logs_json_steps_and_the_result(
    platform: Platform,
    sample: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.put_raw(sample)
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(platform.outputs_path))

    code = prepare.main(["--holdout-fraction", "0.3"])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [line["step"] for line in lines] == [
        "read",
        "rejects",
        "split",
        "split",
        "manifest",
        "done",
    ]
    assert all(line["job"] == "prepare" for line in lines)
    result = lines[-1]["result"]
    assert result["rows_accepted"] == len(sample)
    assert 0.25 < result["rows_holdout"] / len(sample) < 0.35


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--holdout-fraction", "1.5"],
            "--holdout-fraction / MLOPS_HOLDOUT_FRACTION: '1.5' is not allowed: Input should be less than 1",
        ),
        (
            ["--raw-key", "nothing-here/"],
            "--raw-key / MLOPS_RAW_KEY: no .csv or .parquet objects under s3://test-raw/nothing-here/",
        ),
        (
            ["--raw-key", "churn/data.json"],
            "--raw-key / MLOPS_RAW_KEY: 'churn/data.json' is neither a .csv/.parquet object nor a prefix",
        ),
        (
            ["--raw-bucket", "no-such-bucket"],
            "--raw-bucket / MLOPS_RAW_BUCKET: bucket 'no-such-bucket' does not exist",
        ),
        (["--no-such-flag", "1"], "unrecognized arguments: --no-such-flag 1"),
    ],
)
def test_user_errors_name_the_flag(
    platform: Platform,
    sample: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    platform.put_raw(sample)

    code = prepare.main(["--stack-outputs", str(platform.outputs_path), *argv])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_missing_curated_bucket_names_where_the_name_came_from(
    platform: Platform, sample: pd.DataFrame
) -> None:
    platform.put_raw(sample)
    platform.s3.delete_bucket(Bucket=BUCKETS["captures_bucket"])  # unrelated: must not matter
    outputs = json.loads(platform.outputs_path.read_text())
    outputs["curated_bucket"] = "gone-curated"
    platform.outputs_path.write_text(json.dumps(outputs))

    with pytest.raises(JobError) as caught:
        prepare.run(platform.settings(prepare.Settings), s3=platform.s3)

    assert str(caught.value) == (
        f"--stack-outputs / MLOPS_STACK_OUTPUTS={platform.outputs_path}: bucket 'gone-curated' "
        "does not exist; check the name or deploy the stack (`pulumi up`, or the local platform)"
    )


def test_unversioned_curated_bucket_is_refused(platform: Platform, sample: pd.DataFrame) -> None:
    platform.put_raw(sample)
    platform.s3.create_bucket(Bucket="plain")

    with pytest.raises(JobError, match="bucket 'plain' has versioning off"):
        prepare.run(platform.settings(prepare.Settings, curated_bucket="plain"), s3=platform.s3)


def test_no_bucket_setting_and_no_outputs_is_a_clear_error(aws_env: None) -> None:
    with pytest.raises(
        JobError, match=r"--raw-bucket / MLOPS_RAW_BUCKET: not set, and no --stack-outputs"
    ):
        prepare.run(prepare.Settings(), s3=None)


def test_an_id_repeated_across_objects_is_kept_once(
    platform: Platform, sample: pd.DataFrame
) -> None:
    platform.put_raw(sample.head(100), key="churn/part-0.csv")
    platform.put_raw(sample.iloc[90:200], key="churn/part-1.csv")  # rows 90..99 again

    result = prepare.run(platform.settings(prepare.Settings), s3=platform.s3)

    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (210, 200, 10)
    rejects = platform.json_object("curated_bucket", result.rejects_key)
    assert {r["source"] for r in rejects["rows"]} == {"churn/part-1.csv"}
    assert sorted(int(r["customer_id"]) for r in rejects["rows"]) == list(
        sample["customer_id"].iloc[90:100]
    )

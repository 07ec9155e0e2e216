from __future__ import annotations

from typing import Any

import pandas as pd

from tests.jobs.conftest import CORRUPT_ROWS, Platform, with_corrupt_rows
from training_jobs import lifecycle, sample_data


def test_lifecycle_twice_is_idempotent_and_new_data_makes_a_new_version(
    platform: Platform, sample: pd.DataFrame, mlflow_client: Any
) -> None:
    platform.put_raw(with_corrupt_rows(sample))
    settings = platform.settings(lifecycle.Settings, code_version="test-1")
    steps: list[str] = []

    first = lifecycle.run(
        settings,
        s3=platform.s3,
        mlflow_client=mlflow_client,
        on_step=lambda s, **_: steps.append(s),
    )
    second = lifecycle.run(settings, s3=platform.s3, mlflow_client=mlflow_client)

    assert (first.rows_accepted, first.rows_rejected) == (len(sample), len(CORRUPT_ROWS))
    assert (first.decision, first.registered_version, first.champion_version) == (
        "promote",
        "1",
        "1",
    )
    assert first.version_created and not first.run_reused
    assert second.dataset_version == first.dataset_version
    assert second.run_id == first.run_id and second.run_reused
    assert (second.registered_version, second.version_created) == ("1", False)
    assert steps[0] == "prepare.read" and steps[-1] == "register.alias"
    assert {s.split(".")[0] for s in steps} == {"prepare", "train", "evaluate", "register"}

    platform.put_raw(sample_data.generate(500, seed=8, id_offset=50_000), key="churn/part-1.csv")
    third = lifecycle.run(settings, s3=platform.s3, mlflow_client=mlflow_client)

    assert third.dataset_version != first.dataset_version
    assert third.rows_accepted == len(sample) + 500
    assert third.run_id != first.run_id
    assert third.registered_version == "2"
    assert third.champion_version == ("2" if third.decision == "promote" else "1")

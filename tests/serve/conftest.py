from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.serve_helpers import Registry, compile_version, train_and_register
from training_jobs import sample_data, schema


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A sqlite MLflow registry with the churn pipeline as `churn@champion` version 1,
    compiled and verified as `register` leaves it."""
    root: Path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.chdir(root)  # anything MLflow writes by default lands here, not in the repo
        train_and_register(uri, "churn")
        # As `register` leaves a promoted version: with its verified compiled form.
        assert compile_version(uri, "churn", "1", root) == "verified"
        rows = sample_data.generate(200, seed=42)[list(schema.FEATURE_NAMES)]
        yield Registry(uri, "churn", rows)

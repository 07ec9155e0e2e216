"""The compiled path: what it imports, what happens when a version has no (good) compiled
form, and a swap between the paths while serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_local.processes import UVICORN_PORT, ManagedProcess
from tests.serve.serve_helpers import (
    EVENTUALLY_S,
    Registry,
    compile_version,
    eventually,
    rows_payload,
    serve_in_thread,
    settings,
    train_and_register,
)
from training_jobs.serve.model import PATH_COMPILED, PATH_PYFUNC

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlflow_server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real MLflow tracking server on the tests' registry: the REST API the model
    server resolves aliases through in a deployment."""
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    # Port 0: uvicorn binds a port nobody can take first and names it in its log.
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
            registry.tracking_uri, "--host", "127.0.0.1", "--port", "0", "--workers", "1"]  # fmt: skip
    with ManagedProcess("mlflow server", argv, env=env, log_path=log) as server:
        uri = f"http://127.0.0.1:{server.reported_port(UVICORN_PORT, timeout_s=EVENTUALLY_S)}"
        server.wait_healthy(f"{uri}/health", timeout_s=EVENTUALLY_S)
        yield uri


def test_the_compiled_path_resolves_loads_and_predicts_without_sklearn_pandas_or_mlflow(
    mlflow_server: str, registry: Registry
) -> None:
    probe = f"""
import json, sys
from training_jobs.serve.model import MlflowModelSource
source = MlflowModelSource("churn", "champion", tracking_uri={mlflow_server!r}, registry_uri=None)
model = source.load(source.resolve())
rows = {json.dumps(rows_payload(registry.rows.head(20))["dataframe_split"])}
columns = {{c: [row[i] for row in rows["data"]] for i, c in enumerate(rows["columns"])}}
(predictions,) = model.predict([columns])
heavy = sorted(m for m in ("sklearn", "pandas", "mlflow", "scipy") if m in sys.modules)
print(json.dumps({{"path": model.path, "version": model.version, "n": len(predictions), "heavy": heavy}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120,
        check=False, env=os.environ | {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"path": PATH_COMPILED, "version": "1", "n": 20, "heavy": []}


def test_versions_without_a_good_compiled_form_are_served_through_pyfunc_and_swapped_to(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("refused")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    name = "churn-paths"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        train_and_register(uri, name)
        assert compile_version(uri, name, "1", root) == "verified"
        config = settings(Registry(uri, name, registry.rows), poll_interval_s=0.2)
        with serve_in_thread(config) as running, running.client() as client:
            assert running.app.model is not None and running.app.model.path == PATH_COMPILED
            # Version 2 holds a step no converter knows: registered, refused, still served.
            version = train_and_register(uri, name, seed=1, unconvertible=True, alias="staging")
            outcome = compile_version(uri, name, version, root)
            assert outcome.startswith("refused: skl2onnx cannot convert it"), outcome
            import mlflow

            mlflow.MlflowClient(uri).set_registered_model_alias(name, "champion", version)
            failed = 0
            deadline = time.monotonic() + EVENTUALLY_S
            while True:
                answer = client.post("/invocations", json=rows_payload(registry.rows.head(5)))
                failed += answer.status_code != 200
                if answer.headers.get("x-model-version") == version:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"version {version} never served within {EVENTUALLY_S:g}s of the alias "
                        f"move; still {answer.headers.get('x-model-version')} "
                        f"({failed} failed requests)"
                    )
            assert answer.headers["x-model-path"] == PATH_PYFUNC
            assert failed == 0
            ready = client.get("/health/ready").json()
            assert ready["path"] == PATH_PYFUNC
            assert ready["note"].startswith("no compiled form: skl2onnx cannot convert it")

            # Version 3's bundle is tampered with after verification: checksum refused, pyfunc.
            version = train_and_register(uri, name, seed=2, alias="staging")
            assert compile_version(uri, name, version, root) == "verified"
            model_file = root / "compiled" / name / f"v{version}" / "model.onnx"
            model_file.write_bytes(model_file.read_bytes() + b"\0")
            mlflow.MlflowClient(uri).set_registered_model_alias(name, "champion", version)
            eventually(lambda: client.get("/health/ready").json().get("version") == version, "v3")
            ready = client.get("/health/ready").json()
            assert ready["path"] == PATH_PYFUNC
            assert "does not match its manifest's sha256" in ready["note"]
    finally:
        os.chdir(cwd)

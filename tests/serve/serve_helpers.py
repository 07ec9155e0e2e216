"""Shared by the model-server tests: a trained model in a throwaway registry, servers on
loopback, and a raw socket client for requests that must stay half-sent."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import uvicorn

from training_jobs import sample_data, schema
from training_jobs.serve.app import ServeApp
from training_jobs.serve.capture import S3Put
from training_jobs.serve.model import ModelSource
from training_jobs.serve.settings import ServeSettings

# Waits below are for events that must happen; the bound only turns a hang into a failure.
EVENTUALLY_S = 120.0


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    model_name: str
    rows: pd.DataFrame  # feature rows the model has not seen, for requests


def eventually(check: Callable[[], Any], what: str, timeout_s: float = EVENTUALLY_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout_s:g}s: {what}")
        time.sleep(0.05)


def train_and_register(
    tracking_uri: str,
    name: str,
    *,
    seed: int = 0,
    c: float = 1.0,
    alias: str = "champion",
    unconvertible: bool = False,
) -> str:
    """Log the churn pipeline as a new version of `name`, point `alias` at it; return it.
    `unconvertible` puts a step in it no ONNX converter knows (a function transformer)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = sample_data.generate(1_500, seed=seed)
    x, y = frame[list(schema.FEATURE_NAMES)], frame[schema.LABEL_COLUMN]
    import numpy as np
    from sklearn.preprocessing import FunctionTransformer

    steps: list[tuple[str, Any]] = [("impute", SimpleImputer()), ("scale", StandardScaler())]
    if unconvertible:
        steps.append(("squash", FunctionTransformer(np.tanh)))
    numeric = Pipeline(steps)
    pre = ColumnTransformer(
        [
            ("num", numeric, list(schema.NUMERIC_FEATURES)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(schema.CATEGORICAL_FEATURES)),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=1_000))])
    pipe.fit(x, y)
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("serve-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            "serve-tests", artifact_location=str(Path(tracking_uri[len("sqlite:///") :]).parent)
        )
    )
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                pipe,
                name="model",
                signature=infer_signature(x, pipe.predict(x)),
                input_example=x.head(3),
                pip_requirements=["scikit-learn", "pandas", "numpy"],
                skops_trusted_types=["numpy.dtype", "numpy.tanh"],
            )
        version = mlflow.register_model(info.model_uri, name).version
    finally:
        mlflow.set_tracking_uri(None)
    client.set_registered_model_alias(name, alias, str(version))
    return str(version)


def compile_version(tracking_uri: str, name: str, version: str, directory: Path) -> str:
    """What `register` does for a promoted version, with the bundle in a directory
    (file://) instead of S3: compile, verify on fresh rows, publish, tag. Returns the
    outcome ("verified" or "refused: ...")."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import Model

    from training_jobs.compile import NotCompilable, compile_sklearn, publish, record

    client = mlflow.MlflowClient(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(name, version),
        tracking_uri=tracking_uri,
    )
    model = mlflow.sklearn.load_model(local)
    inputs = Model.load(local).signature.inputs.to_dict()
    rows = sample_data.generate(1_000, seed=int(version) + 100)[list(schema.FEATURE_NAMES)]
    try:
        compiled = compile_sklearn(model, inputs, rows, model_name=name, version=version)
    except NotCompilable as exc:
        return record(client, name, version, manifest_uri=None, reason=str(exc))

    def write(key: str, body: bytes) -> str:
        path = directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return path.as_uri()

    uri = publish(compiled, write, f"compiled/{name}/v{version}/")
    return record(client, name, version, manifest_uri=uri)


def settings(registry: Registry, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "model_name": registry.model_name,
        "tracking_uri": registry.tracking_uri,
        "port": 0,
        "poll_interval_s": 3_600,
        "capture_enabled": False,
    }
    values.update(overrides)
    return ServeSettings(**values)


@dataclass
class RunningServer:
    app: ServeApp
    url: str
    port: int

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@contextlib.contextmanager
def serve_in_thread(
    config: ServeSettings,
    *,
    source: ModelSource | None = None,
    s3: S3Put | None = None,
    capture_bucket: str | None = None,
    wait_ready: bool = True,
    prefer_compiled: bool = True,
) -> Iterator[RunningServer]:
    """uvicorn in a thread on 127.0.0.1:<free port>; stopped (lifespan shutdown) on exit.
    The socket is bound here, on port 0, and handed to uvicorn: no other process can take
    the port between choosing and binding it."""
    from training_jobs.serve.model import MlflowModelSource

    if source is None:
        source = MlflowModelSource(
            config.model_name,
            config.model_alias,
            tracking_uri=config.tracking_uri,
            registry_uri=None,
            prefer_compiled=prefer_compiled,
        )
    app = ServeApp(config, source=source, s3=s3, capture_bucket=capture_bucket)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, lifespan="on", access_log=False, log_config=None, timeout_graceful_shutdown=5
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running = RunningServer(app, f"http://127.0.0.1:{port}", port)
    try:
        eventually(lambda: server.started, "server started")
        if wait_ready:
            with running.client() as c:
                eventually(lambda: c.get("/health/ready").status_code == 200, "model loaded")
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=EVENTUALLY_S)  # a hung shutdown fails the run, not the machine
        sock.close()


def rows_payload(rows: pd.DataFrame) -> dict[str, Any]:
    data = [[None if v != v else v for v in row] for row in rows.values.tolist()]  # NaN → null
    return {"dataframe_split": {"columns": list(rows.columns), "data": data}}


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = rows.to_dict(orient="records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, float) and v != v:  # NaN → JSON null
                r[k] = None
    return out


class RawRequest:
    """An HTTP/1.1 POST over a plain socket, sent in parts, so a test controls the timing."""

    def __init__(self, port: int, body: bytes, *, path: str = "/invocations") -> None:
        self.body = body
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(EVENTUALLY_S)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + body[: len(body) // 2])

    def finish(self) -> tuple[int, bytes]:
        self.sock.sendall(self.body[len(self.body) // 2 :])
        return self.read()

    def read(self) -> tuple[int, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65_536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            chunk = self.sock.recv(65_536)
            if not chunk:
                break
            rest += chunk
        return status, rest

    def close(self) -> None:
        self.sock.close()


def start_subprocess(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "training_jobs.serve"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )

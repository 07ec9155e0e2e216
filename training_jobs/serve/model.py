"""The served model: finding the version under the alias, loading it, predicting a batch.

Two paths, the same requests and answers:

    compiled  the version carries a verified compiled form (training_jobs/compile.py):
              ONNX Runtime on numpy arrays built from the validated columns. Nothing of
              scikit-learn, pandas or MLflow is imported: the alias is resolved through
              MLflow's REST API and the bundle read straight from S3.
    pyfunc    otherwise: MLflow's pyfunc on a DataFrame, as `mlflow models serve` does.

A compiled bundle that fails to load (checksum, schema) is logged and the version is served
through pyfunc instead: a fast path never makes a servable version unservable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from training_jobs import contract
from training_jobs.serve.inputs import Columns, InputSchema, SchemaError, build_frame

log = logging.getLogger(__name__)

PATH_COMPILED: Final = "compiled"
PATH_PYFUNC: Final = "pyfunc"
PATHS: Final = (PATH_COMPILED, PATH_PYFUNC)
FIRST_RETRY_S: Final = 0.5


class Runner(Protocol):
    def predict(self, parts: Sequence[Columns], schema: InputSchema) -> object: ...


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One registry version, ready to predict. Compared by identity."""

    name: str
    version: str
    schema: InputSchema
    runner: Runner = field(repr=False)
    path: str = PATH_PYFUNC
    note: str = ""  # why the other path is not used, when there is a reason

    def predict(self, parts: Sequence[Columns]) -> list[list[Any]]:
        """One predict call over the concatenated requests; one list per request."""
        first = self.schema.columns[0].name
        raw = self.runner.predict(parts, self.schema)
        return split_predictions(raw, [len(p[first]) for p in parts])


def predict_batch(model: LoadedModel, parts: Sequence[Columns]) -> list[list[Any]]:
    return model.predict(parts)


def split_predictions(raw: object, sizes: Sequence[int]) -> list[list[Any]]:
    """Model output → JSON-ready rows, cut back into the requests' sizes."""
    rows: list[Any]
    if isinstance(raw, np.ndarray):
        rows = raw.reshape(-1).tolist() if raw.ndim == 2 and raw.shape[1] == 1 else raw.tolist()
    elif isinstance(raw, list):
        rows = raw
    elif hasattr(raw, "to_dict") and hasattr(raw, "columns"):  # a pandas DataFrame
        rows = raw.to_dict(orient="records")
    elif hasattr(raw, "tolist"):  # a pandas Series
        rows = raw.tolist()
    else:
        raise TypeError(f"unsupported prediction output {type(raw).__name__}")
    if len(rows) != sum(sizes):
        raise ValueError(f"the model returned {len(rows)} predictions for {sum(sizes)} rows")
    out, start = [], 0
    for n in sizes:
        out.append(rows[start : start + n])
        start += n
    return out


# --- the two runners ---------------------------------------------------------------------


class PyfuncRunner:
    def __init__(self, pyfunc: Any) -> None:
        self.pyfunc = pyfunc

    def predict(self, parts: Sequence[Columns], schema: InputSchema) -> object:
        return self.pyfunc.predict(build_frame(schema, parts))


class CompiledRunner:
    def __init__(self, body: bytes, feeds: dict[str, str], output: str) -> None:
        from training_jobs.compile import session

        self.session = session(body)
        self.feeds = feeds
        self.output = output

    def predict(self, parts: Sequence[Columns], schema: InputSchema) -> object:
        from training_jobs.compile import feeds_from_columns

        if len(parts) == 1:
            columns = parts[0]
        else:
            columns = {name: [v for p in parts for v in p[name]] for name in self.feeds}
        (result,) = self.session.run([self.output], feeds_from_columns(columns, self.feeds))
        return result


# --- the registry ------------------------------------------------------------------------


class NoChampion(Exception):
    """The registry answered, and holds no version under the alias (yet)."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    tags: dict[str, str]


class ModelSource(Protocol):
    name: str

    def resolve(self) -> str:
        """The version the alias points at now; NoChampion if it points at none."""
        ...

    def load(self, version: str) -> LoadedModel: ...


class RestRegistry:
    """MLflow's registry through its REST API (2.0), with the client's basic-auth account
    (MLFLOW_TRACKING_USERNAME/PASSWORD) or token: no MLflow import."""

    def __init__(self, uri: str, timeout_s: float = 10.0) -> None:
        self.uri = uri.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, **query: str) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the configured http(s) registry
            f"{self.uri}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
        )
        user, password = (
            os.environ.get("MLFLOW_TRACKING_USERNAME"),
            os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
        if user and password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
            request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            code, message = body.get("error_code", ""), body.get("message", exc.reason)
            missing_model = code == "RESOURCE_DOES_NOT_EXIST"
            missing_alias = code == "INVALID_PARAMETER_VALUE" and "alias" in str(message)
            if missing_model or missing_alias:
                raise NoChampion(str(message)) from exc
            raise RuntimeError(f"MLflow {path}: HTTP {exc.code} {code}: {message}") from exc

    def alias(self, name: str, alias: str) -> VersionInfo:
        version = self._get("registered-models/alias", name=name, alias=alias)["model_version"]
        tags = {t["key"]: t["value"] for t in version.get("tags") or []}
        return VersionInfo(str(version["version"]), tags)


class ClientRegistry:
    """Any registry MLflow's client reaches (a sqlite file, for tests and local use)."""

    def __init__(self, tracking_uri: str | None, registry_uri: str | None) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)

    def alias(self, name: str, alias: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            missing_model = exc.error_code == "RESOURCE_DOES_NOT_EXIST"
            missing_alias = exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in str(exc)
            if missing_model or missing_alias:
                raise NoChampion(f"{name}@{alias}: {exc.message}") from exc
            raise
        return VersionInfo(str(version.version), dict(version.tags or {}))


def read_uri(uri: str, s3: Callable[[], Any]) -> bytes:
    """The bytes at an s3:// or file:// URI."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "s3":
        body = s3().get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
        return bytes(body.read())
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path)).read_bytes()
    raise ValueError(f"{uri}: only s3:// and file:// URIs hold compiled models")


def load_compiled(info: VersionInfo, name: str, s3: Callable[[], Any]) -> LoadedModel:
    """The version's verified compiled bundle; ValueError naming what is wrong with it."""
    uri = info.tags.get(contract.TAG_COMPILED_URI)
    if not uri:
        raise ValueError(f"the version is tagged {contract.COMPILED_VERIFIED} without a manifest")
    manifest = json.loads(read_uri(uri, s3))
    base = uri.rsplit("/", 1)[0]
    body = read_uri(f"{base}/{contract.COMPILED_MODEL_FILE}", s3)
    if hashlib.sha256(body).hexdigest() != manifest.get("sha256"):
        raise ValueError(
            f"{base}/{contract.COMPILED_MODEL_FILE} does not match its manifest's sha256"
        )
    if not (manifest.get("verification") or {}).get("passed"):
        raise ValueError("its manifest records a failed verification")
    schema = InputSchema.from_mlflow(manifest["inputs"])
    runner = CompiledRunner(body, dict(manifest["feeds"]), str(manifest.get("output", "label")))
    model = LoadedModel(name, info.version, schema, runner, PATH_COMPILED)
    # Warm up and refuse a bundle that cannot run one row.
    model.predict([{c.name: [_warm_value(c.type)] for c in schema.columns}])
    return model


def _warm_value(kind: str) -> object:
    return "" if kind == "string" else 0.0


class MlflowModelSource:
    """`models:/<name>@<alias>` in an MLflow registry: the compiled form when verified."""

    def __init__(
        self,
        name: str,
        alias: str,
        *,
        tracking_uri: str | None,
        registry_uri: str | None,
        s3: Callable[[], Any] | None = None,
        prefer_compiled: bool = True,
    ) -> None:
        self.name = name
        self.alias = alias
        self._tracking_uri = tracking_uri
        # Unset, MLflow would fall back to its process-wide default registry, not this one.
        self._registry_uri = registry_uri or tracking_uri
        uri = self._registry_uri or ""
        self._registry: RestRegistry | ClientRegistry = (
            RestRegistry(uri)
            if uri.startswith(("http://", "https://"))
            else ClientRegistry(tracking_uri, self._registry_uri)
        )
        self._s3 = s3 or _default_s3
        self._prefer_compiled = prefer_compiled
        self._seen: dict[str, VersionInfo] = {}

    def resolve(self) -> str:
        info = self._registry.alias(self.name, self.alias)
        self._seen[info.version] = info
        return info.version

    def load(self, version: str) -> LoadedModel:
        info = self._seen.get(version) or VersionInfo(version, {})
        state = info.tags.get(contract.TAG_COMPILED)
        note = ""
        if not self._prefer_compiled:
            note = "the compiled path is turned off (MLOPS_SERVE_PREFER_COMPILED=false)"
        elif state == contract.COMPILED_VERIFIED:
            try:
                return load_compiled(info, self.name, self._s3)
            except Exception as exc:  # noqa: BLE001 - the pyfunc path still serves it
                note = f"compiled form not used: {exc}"
                log.warning("%s version %s: %s", self.name, version, note)
        elif state == contract.COMPILED_REFUSED:
            note = f"no compiled form: {info.tags.get(contract.TAG_COMPILED_REASON, '')}"
        else:
            note = "no compiled form recorded"
        return self._load_pyfunc(version, note)

    def _load_pyfunc(self, version: str, note: str) -> LoadedModel:
        import mlflow.artifacts
        import mlflow.pyfunc
        import pandas as pd
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self._registry_uri)
        # Resolved through our client: `models:/` URIs would consult MLflow's process-wide
        # registry instead of the one configured here.
        location = client.get_model_version_download_uri(self.name, version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, tracking_uri=self._tracking_uri
        )
        pyfunc = mlflow.pyfunc.load_model(local)
        signature_inputs = pyfunc.metadata.get_input_schema()
        schema = InputSchema.from_mlflow(
            signature_inputs.to_dict() if signature_inputs is not None else None
        )
        model = LoadedModel(self.name, version, schema, PyfuncRunner(pyfunc), PATH_PYFUNC, note)
        example = pyfunc.metadata.load_input_example(local)
        if isinstance(example, pd.DataFrame) and len(example):
            # Warm up (first calls are slow) and refuse a version that fails its own example.
            pyfunc.predict(example)
        return model


_s3_client: Any = None
_s3_lock = threading.Lock()


def _default_s3() -> Any:
    """One S3 client for the process, made on first use (region from the environment)."""
    global _s3_client
    with _s3_lock:
        if _s3_client is None:
            import boto3

            from training_jobs.common import environment_region

            _s3_client = boto3.client("s3", region_name=environment_region())
        return _s3_client


class AliasWatcher:
    """Polls the alias in a background thread; loads and hands over each new version."""

    def __init__(
        self,
        source: ModelSource,
        *,
        poll_interval_s: float,
        on_loaded: Callable[[LoadedModel], None],
        on_failed: Callable[[str, BaseException], None],
        on_absent: Callable[[], None] = lambda: None,
    ) -> None:
        self._source = source
        self._on_absent = on_absent
        self._poll_interval_s = poll_interval_s
        self._on_loaded = on_loaded
        self._on_failed = on_failed
        self._stop = threading.Event()
        self._current: str | None = None
        self._failed_version: str | None = None
        self._thread = threading.Thread(target=self._run, name="alias-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def poll_once(self) -> bool:
        """One look at the alias; False when the registry could not be asked."""
        try:
            version = self._source.resolve()
        except NoChampion:
            self._on_absent()
            return True
        except Exception as exc:  # noqa: BLE001 - registry hiccups must not stop serving
            self._on_failed("?", exc)
            return False
        if version in (self._current, self._failed_version):
            return True
        log.info("loading %s version %s", self._source.name, version)
        try:
            model = self._source.load(version)
        except SchemaError as exc:
            self._failed_version = version  # cannot change: retried only if the alias returns
            self._on_failed(version, exc)
            return True
        except Exception as exc:  # noqa: BLE001 - a bad version must not stop serving
            self._on_failed(version, exc)
            return False
        self._current = version
        self._failed_version = None
        self._on_loaded(model)
        return True

    def _run(self) -> None:
        # Until a first version is served, an unreachable registry (MLflow starting beside
        # this pod) is asked again soon, backing off up to the poll interval.
        backoff = FIRST_RETRY_S
        while True:
            answered = self.poll_once()
            if answered or self._current is not None:
                wait, backoff = self._poll_interval_s, FIRST_RETRY_S
            else:
                wait, backoff = min(backoff, self._poll_interval_s), backoff * 2
            if self._stop.wait(wait):
                return

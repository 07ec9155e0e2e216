"""The served model: loading a registry version, predicting a batch, following the alias."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from training_jobs.serve.inputs import Columns, InputSchema, SchemaError, build_frame

log = logging.getLogger(__name__)


class Predictor(Protocol):
    def predict(self, data: pd.DataFrame) -> Any: ...


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One registry version, ready to predict. Compared by identity."""

    name: str
    version: str
    schema: InputSchema
    predictor: Predictor = field(repr=False)

    def predict(self, parts: Sequence[Columns]) -> list[list[Any]]:
        """One predict call over the concatenated requests; one list per request."""
        frame = build_frame(self.schema, parts)
        first = self.schema.columns[0].name
        return split_predictions(self.predictor.predict(frame), [len(p[first]) for p in parts])


def predict_batch(model: LoadedModel, parts: Sequence[Columns]) -> list[list[Any]]:
    return model.predict(parts)


def split_predictions(raw: object, sizes: Sequence[int]) -> list[list[Any]]:
    """Model output → JSON-ready rows, cut back into the requests' sizes."""
    rows: list[Any]
    if isinstance(raw, pd.DataFrame):
        rows = raw.to_dict(orient="records")
    elif isinstance(raw, pd.Series | np.ndarray):
        rows = raw.tolist()
    elif isinstance(raw, list):
        rows = raw
    else:
        raise TypeError(f"unsupported prediction output {type(raw).__name__}")
    if len(rows) != sum(sizes):
        raise ValueError(f"the model returned {len(rows)} predictions for {sum(sizes)} rows")
    out, start = [], 0
    for n in sizes:
        out.append(rows[start : start + n])
        start += n
    return out


class NoChampion(Exception):
    """The registry answered, and holds no version under the alias (yet)."""


class ModelSource(Protocol):
    name: str

    def resolve(self) -> str:
        """The version the alias points at now; NoChampion if it points at none."""
        ...

    def load(self, version: str) -> LoadedModel: ...


class MlflowModelSource:
    """`models:/<name>@<alias>` in an MLflow registry."""

    def __init__(
        self, name: str, alias: str, *, tracking_uri: str | None, registry_uri: str | None
    ) -> None:
        from mlflow import MlflowClient

        self.name = name
        self.alias = alias
        self._tracking_uri = tracking_uri
        # Unset, MLflow would fall back to its process-wide default registry, not this one.
        self._registry_uri = registry_uri or tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self._registry_uri)

    def resolve(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client.get_model_version_by_alias(self.name, self.alias).version)
        except MlflowException as exc:
            # No registered model yet, or no version under the alias yet: a fresh platform.
            missing_model = exc.error_code == "RESOURCE_DOES_NOT_EXIST"
            missing_alias = exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in str(exc)
            if missing_model or missing_alias:
                raise NoChampion(f"{self.name}@{self.alias}: {exc.message}") from exc
            raise

    def load(self, version: str) -> LoadedModel:
        import mlflow.artifacts
        import mlflow.pyfunc

        # Resolved through our client: `models:/` URIs would consult MLflow's process-wide
        # registry instead of the one configured here.
        location = self._client.get_model_version_download_uri(self.name, version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, tracking_uri=self._tracking_uri
        )
        pyfunc = mlflow.pyfunc.load_model(local)
        signature_inputs = pyfunc.metadata.get_input_schema()
        schema = InputSchema.from_mlflow(
            signature_inputs.to_dict() if signature_inputs is not None else None
        )
        model = LoadedModel(self.name, version, schema, pyfunc)
        example = pyfunc.metadata.load_input_example(local)
        if isinstance(example, pd.DataFrame) and len(example):
            # Warm up (first calls are slow) and refuse a version that fails its own example.
            pyfunc.predict(example)
        return model


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

    def poll_once(self) -> None:
        try:
            version = self._source.resolve()
        except NoChampion:
            self._on_absent()
            return
        except Exception as exc:  # noqa: BLE001 - registry hiccups must not stop serving
            self._on_failed("?", exc)
            return
        if version in (self._current, self._failed_version):
            return
        log.info("loading %s version %s", self._source.name, version)
        try:
            model = self._source.load(version)
        except SchemaError as exc:
            self._failed_version = version  # cannot change: retried only if the alias returns
            self._on_failed(version, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a bad version must not stop serving
            self._on_failed(version, exc)
            return
        self._current = version
        self._failed_version = None
        self._on_loaded(model)

    def _run(self) -> None:
        self.poll_once()
        while not self._stop.wait(self._poll_interval_s):
            self.poll_once()

"""A registered model's compiled form: ONNX, made at registration and verified before use.

The scikit-learn pipeline is converted with skl2onnx (one input per signature column:
numbers as float32, strings as strings) and run with ONNX Runtime on the evaluation rows
next to the original. It is kept only when the labels are identical and the probabilities
agree within `PROBABILITY_TOLERANCE`; otherwise the reason is recorded and the version is
served as before (MLflow pyfunc). The bundle is `model.onnx` plus `manifest.json`: the input
schema the server validates with, how each input is fed, the checksum, the verification.

Flavours other than scikit-learn raise NotCompilable (their converter goes here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

MANIFEST_SCHEMA: Final = 1
# float32 arithmetic in ONNX Runtime vs float64 in scikit-learn: a few ulps of difference.
PROBABILITY_TOLERANCE: Final = 1e-5
TARGET_OPSET: Final = 17
NUMERIC_TYPES: Final = frozenset({"double", "float", "long", "integer"})
FEED_FLOAT: Final = "float32"
FEED_STRING: Final = "string"


class NotCompilable(Exception):
    """The model cannot be compiled, or its compiled form does not match; says why."""


@dataclass(frozen=True)
class Verification:
    rows: int
    label_mismatches: int
    max_abs_probability_diff: float
    tolerance: float = PROBABILITY_TOLERANCE

    @property
    def passed(self) -> bool:
        return self.label_mismatches == 0 and self.max_abs_probability_diff <= self.tolerance

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "label_mismatches": self.label_mismatches,
            "max_abs_probability_diff": self.max_abs_probability_diff,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class Compiled:
    onnx: bytes
    manifest: dict[str, Any]


def feed_types(inputs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Signature column → how it is fed to the compiled model."""
    feeds = {}
    for column in inputs:
        kind = column.get("type")
        if kind in NUMERIC_TYPES:
            feeds[str(column["name"])] = FEED_FLOAT
        elif kind == "string":
            feeds[str(column["name"])] = FEED_STRING
        else:
            raise NotCompilable(f"column {column.get('name')!r} of type {kind!r} has no ONNX feed")
    return feeds


def feeds_from_columns(
    columns: Mapping[str, Sequence[Any]], feeds: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """The compiled model's inputs from validated column lists (the server's hot path):
    one (n, 1) array per column; a null number is NaN, as the imputer expects."""
    arrays: dict[str, np.ndarray] = {}
    for name, feed in feeds.items():
        values = columns[name]
        if feed == FEED_FLOAT:
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        else:
            array = np.array(["" if v is None else v for v in values], dtype=object)
        arrays[name] = array.reshape(-1, 1)
    return arrays


def _frame_columns(frame: Any, feeds: Mapping[str, str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for name, feed in feeds.items():
        values = frame[name].tolist()
        if feed == FEED_FLOAT:
            columns[name] = [None if v is None or v != v else float(v) for v in values]
        else:
            columns[name] = [None if v is None else str(v) for v in values]
    return columns


def compile_sklearn(
    model: Any, inputs: Sequence[Mapping[str, Any]], rows: Any, *, model_name: str, version: str
) -> Compiled:
    """Convert `model` (a fitted scikit-learn estimator) and verify it on `rows` (a
    DataFrame of feature columns); NotCompilable with the reason when either fails."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    feeds = feed_types(inputs)
    initial = [
        (name, FloatTensorType([None, 1]) if feed == FEED_FLOAT else StringTensorType([None, 1]))
        for name, feed in feeds.items()
    ]
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        onnx_model = convert_sklearn(
            model, initial_types=initial, options=options, target_opset=TARGET_OPSET
        )
    except Exception as exc:
        raise NotCompilable(f"skl2onnx cannot convert it: {type(exc).__name__}: {exc}") from exc
    body = onnx_model.SerializeToString()
    verification = verify(model, body, rows, feeds)
    if not verification.passed:
        raise NotCompilable(
            f"its compiled predictions differ on {verification.rows} evaluation rows: "
            f"{verification.label_mismatches} label(s), max probability difference "
            f"{verification.max_abs_probability_diff:.3g} (tolerance {verification.tolerance:g})"
        )
    return Compiled(body, manifest(body, inputs, feeds, verification, model_name, version))


def session(body: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One request batch at a time per server: one thread each keeps latency flat.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(body, options, providers=["CPUExecutionProvider"])


def verify(model: Any, body: bytes, rows: Any, feeds: Mapping[str, str]) -> Verification:
    """The compiled model next to the original on the same rows, fed as the server feeds."""
    compiled = session(body)
    outputs = [o.name for o in compiled.get_outputs()]
    result = compiled.run(None, feeds_from_columns(_frame_columns(rows, feeds), feeds))
    labels = np.asarray(result[outputs.index("label")]).reshape(-1)
    expected = np.asarray(model.predict(rows)).reshape(-1)
    mismatches = int((labels != expected).sum())
    difference = 0.0
    if "probabilities" in outputs and hasattr(model, "predict_proba"):
        probabilities = np.asarray(result[outputs.index("probabilities")])
        difference = float(np.abs(probabilities - model.predict_proba(rows)).max())
    return Verification(len(expected), mismatches, difference)


def manifest(
    body: bytes,
    inputs: Sequence[Mapping[str, Any]],
    feeds: Mapping[str, str],
    verification: Verification,
    model_name: str,
    version: str,
) -> dict[str, Any]:
    from importlib import metadata

    return {
        "schema": MANIFEST_SCHEMA,
        "format": "onnx",
        "model": model_name,
        "version": version,
        "sha256": hashlib.sha256(body).hexdigest(),
        "inputs": [dict(c) for c in inputs],
        "feeds": dict(feeds),
        "output": "label",
        "verification": verification.to_json(),
        "converter": {
            "skl2onnx": metadata.version("skl2onnx"),
            "onnxruntime": metadata.version("onnxruntime"),
            "opset": TARGET_OPSET,
        },
    }


def manifest_json(compiled: Compiled) -> bytes:
    return json.dumps(compiled.manifest, indent=2, sort_keys=True).encode()


def publish(compiled: Compiled, write: Callable[[str, bytes], str], prefix: str) -> str:
    """Write the bundle under `prefix` with `write(key, body) -> uri`; returns the
    manifest's URI. The manifest goes last: it names the model's checksum, so a bundle
    whose model is missing or half-written is refused by the reader."""
    from training_jobs import contract

    write(prefix + contract.COMPILED_MODEL_FILE, compiled.onnx)
    return write(prefix + contract.COMPILED_MANIFEST_FILE, manifest_json(compiled))


def record(
    client: Any, name: str, version: str, *, manifest_uri: str | None, reason: str = ""
) -> str:
    """Tag the registry version with the outcome; returns it ("verified" / "refused: …")."""
    from training_jobs import contract

    if manifest_uri is not None:
        client.set_model_version_tag(name, version, contract.TAG_COMPILED_URI, manifest_uri)
        client.set_model_version_tag(
            name, version, contract.TAG_COMPILED, contract.COMPILED_VERIFIED
        )
        return contract.COMPILED_VERIFIED
    client.set_model_version_tag(name, version, contract.TAG_COMPILED_REASON, reason[:400])
    client.set_model_version_tag(name, version, contract.TAG_COMPILED, contract.COMPILED_REFUSED)
    return f"refused: {reason[:400]}"

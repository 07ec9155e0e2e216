"""Request payloads → validated columns, against the model's input schema.

Pure: no HTTP, no MLflow; pandas only inside `build_frame` (the pyfunc path). The schema
comes from an MLflow signature's `inputs.to_dict()`; payloads are the four shapes `mlflow
models serve` accepts. The result is one Python list per column, so a batch of requests
concatenates lists and feeds one predict call, instead of one per request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pandas as pd

import numpy as np
import orjson

PAYLOAD_KEYS: Final = ("dataframe_split", "dataframe_records", "instances", "inputs")

# MLflow column types this server validates, and the numpy dtype each becomes.
_DTYPES: Final[Mapping[str, Any]] = {
    "double": np.float64,
    "float": np.float32,
    "long": np.int64,
    "integer": np.int32,
    "boolean": np.bool_,
    "string": object,
    "datetime": "datetime64[ns]",
}


# MLflow's error codes, so clients of `mlflow models serve` see familiar bodies.
_ERROR_CODES: Final[Mapping[int, str]] = {
    404: "ENDPOINT_NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_PARAMETER_VALUE",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


class InputError(Exception):
    """A request the client must fix; `status` is the HTTP status to answer with."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, row: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.row = row

    def to_json(self) -> bytes:
        body: dict[str, object] = {
            "error_code": _ERROR_CODES.get(self.status, "BAD_REQUEST"),
            "message": self.message,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.row is not None:
            body["row"] = self.row
        return orjson.dumps(body)


class SchemaError(Exception):
    """The model's signature cannot be served by this server."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class InputSchema:
    columns: tuple[ColumnSpec, ...]

    @classmethod
    def from_mlflow(cls, spec: Sequence[Mapping[str, Any]] | None) -> InputSchema:
        """From `ModelSignature.inputs.to_dict()`: named columns of scalar types only."""
        if not spec:
            raise SchemaError(
                "the model has no input signature; log it with "
                "`signature=infer_signature(X, y)` so requests can be validated"
            )
        columns = []
        for i, col in enumerate(spec):
            name, kind = col.get("name"), col.get("type")
            if not isinstance(name, str) or not name:
                raise SchemaError(f"input {i} of the signature has no column name (tensor spec?)")
            if kind not in _DTYPES:
                raise SchemaError(
                    f"column {name!r} has type {kind!r}; supported: {', '.join(_DTYPES)}"
                )
            columns.append(ColumnSpec(name, str(kind), bool(col.get("required", True))))
        return cls(tuple(columns))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


Columns = dict[str, list[Any]]


@dataclass(frozen=True)
class ParsedInput:
    columns: Columns
    n_rows: int


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(v: object) -> bool:
    t = type(v)
    return (t is float and math.isfinite(v)) or t is int  # type: ignore[arg-type]


def _long(v: object) -> bool:
    return type(v) is int and -(2**63) <= v < 2**63


def _integer(v: object) -> bool:
    return type(v) is int and -(2**31) <= v < 2**31


def _boolean(v: object) -> bool:
    return type(v) is bool


def _string(v: object) -> bool:
    return type(v) is str


def _datetime(v: object) -> bool:
    """An ISO 8601 date or date-time (what pandas would parse, refused here if not)."""
    if type(v) is not str:
        return False
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


_CHECKS: Final[Mapping[str, tuple[Callable[[object], bool], str]]] = {
    "double": (_number, "a number"),
    "float": (_number, "a number"),
    "long": (_long, "a 64-bit integer"),
    "integer": (_integer, "a 32-bit integer"),
    "boolean": (_boolean, "true or false"),
    "string": (_string, "a string"),
    "datetime": (_datetime, "an ISO 8601 date-time string"),
}


def parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(400, f"malformed JSON: {exc}") from None


def _records_to_columns(records: list[Any], key: str, schema: InputSchema) -> Columns:
    known = set(schema.names)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(
                400, f"{key}[{i}] must be an object of column → value, got {_kind(record)}", row=i
            )
        extra = record.keys() - known
        if extra:
            name = sorted(extra)[0]
            raise InputError(422, f"unknown column {name!r} in row {i}", field=name, row=i)
    columns: Columns = {}
    for col in schema.columns:
        name = col.name
        try:
            columns[name] = [r[name] for r in records]
        except KeyError:
            if col.required:
                row = next(i for i, r in enumerate(records) if name not in r)
                raise InputError(
                    422, f"missing column {name!r} in row {row}", field=name, row=row
                ) from None
            columns[name] = [r.get(name) for r in records]
    return columns


def _split_to_columns(payload: object, schema: InputSchema) -> Columns:
    if not isinstance(payload, dict):
        raise InputError(400, "dataframe_split must be an object with 'columns' and 'data'")
    names, data = payload.get("columns"), payload.get("data")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(400, "dataframe_split.columns must be a list of column names")
    if not isinstance(data, list):
        raise InputError(400, "dataframe_split.data must be a list of rows")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(422, f"column {dup!r} appears twice", field=dup)
    known = set(schema.names)
    for name in names:
        if name not in known:
            raise InputError(422, f"unknown column {name!r}", field=name)
    width = len(names)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise InputError(
                400,
                f"dataframe_split.data[{i}] must be a list of {width} values, got {got}",
                row=i,
            )
    transposed = list(zip(*data, strict=True)) if data else [() for _ in names]
    given = dict(zip(names, transposed, strict=True))
    columns: Columns = {}
    for col in schema.columns:
        values = given.get(col.name)
        if values is None:
            if col.required:
                raise InputError(422, f"missing column {col.name!r}", field=col.name)
            columns[col.name] = [None] * len(data)
        else:
            columns[col.name] = list(values)
    return columns


def _columnar_to_columns(payload: dict[str, Any], key: str, schema: InputSchema) -> Columns:
    known = set(schema.names)
    for name in payload:
        if name not in known:
            raise InputError(422, f"unknown column {name!r}", field=name)
    lengths = set()
    for name, values in payload.items():
        if not isinstance(values, list):
            raise InputError(400, f"{key}.{name} must be a list of values", field=name)
        lengths.add(len(values))
    if len(lengths) > 1:
        raise InputError(400, f"{key}: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    columns: Columns = {}
    for col in schema.columns:
        if col.name in payload:
            columns[col.name] = payload[col.name]
        elif col.required:
            raise InputError(422, f"missing column {col.name!r}", field=col.name)
        else:
            columns[col.name] = [None] * n
    return columns


def to_columns(document: object, schema: InputSchema) -> ParsedInput:
    """Validate one scoring request against `schema`; raise `InputError` naming field and row."""
    if not isinstance(document, dict):
        raise InputError(
            400, f"the body must be a JSON object with one of {', '.join(PAYLOAD_KEYS)}"
        )
    keys = [k for k in PAYLOAD_KEYS if k in document]
    others = sorted(k for k in document if k not in PAYLOAD_KEYS)
    if len(keys) != 1:
        found = f"got {', '.join(keys)}" if keys else f"got keys {others}"
        raise InputError(
            400, f"the body must hold exactly one of {', '.join(PAYLOAD_KEYS)}; {found}"
        )
    if others:
        raise InputError(
            400, f"unsupported top-level keys {others}; only {keys[0]} is accepted", field=others[0]
        )
    key = keys[0]
    payload = document[key]
    if key == "dataframe_split":
        columns = _split_to_columns(payload, schema)
    elif isinstance(payload, list):
        columns = _records_to_columns(payload, key, schema)
    elif key != "dataframe_records" and isinstance(payload, dict):
        columns = _columnar_to_columns(payload, key, schema)
    else:
        raise InputError(400, f"{key} must be a list of row objects, got {_kind(payload)}")
    n_rows = len(columns[schema.columns[0].name])
    if n_rows == 0:
        raise InputError(422, "the input has no rows")
    _check_values(columns, schema)
    return ParsedInput(columns, n_rows)


def _check_values(columns: Columns, schema: InputSchema) -> None:
    for col in schema.columns:
        check, wanted = _CHECKS[col.type]
        values = columns[col.name]
        if all(map(check, values)):
            continue
        for i, v in enumerate(values):
            if check(v):
                continue
            if v is None and not col.required:
                continue
            if v is None:
                msg = f"column {col.name!r} row {i}: null is not allowed, expected {wanted}"
            elif isinstance(v, float) and not math.isfinite(v):
                msg = f"column {col.name!r} row {i}: {v} is not allowed, expected {wanted}"
            else:
                msg = (
                    f"column {col.name!r} row {i}: expected {wanted} ({col.type}), "
                    f"got {_kind(v)} {orjson.dumps(v).decode()[:40]}"
                )
            raise InputError(422, msg, field=col.name, row=i)


def build_frame(schema: InputSchema, parts: Sequence[Columns]) -> pd.DataFrame:
    """One DataFrame from the column lists of several validated requests (the pyfunc path;
    pandas is imported here, so the compiled path never loads it)."""
    import pandas as pd

    data: dict[str, Any] = {}
    for col in schema.columns:
        if len(parts) == 1:
            values = parts[0][col.name]
        else:
            values = [v for part in parts for v in part[col.name]]
        dtype = _DTYPES[col.type]
        if col.type in ("double", "float"):
            data[col.name] = np.array(
                [math.nan if v is None else v for v in values] if not col.required else values,
                dtype=dtype,
            )
        elif col.type == "datetime":
            data[col.name] = pd.to_datetime(values)
        elif dtype is object or None in values:
            data[col.name] = np.array(values, dtype=object)
        else:
            data[col.name] = np.array(values, dtype=dtype)
    return pd.DataFrame(data, copy=False)

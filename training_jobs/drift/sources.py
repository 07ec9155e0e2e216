"""Where the drift job's two samples come from, spooled to local Parquet.

Reference: the dataset version recorded on the champion's MLflow run → its manifest in
the curated bucket → the curated Parquet objects it pins (the training split when the
manifest names splits), each checked against its size and sha256.

Current: the model server's captures for the window, JSON Lines batches under
`captures/<model>/date=YYYY-MM-DD/hour=HH/`, one row per line with the features under
`inputs` and the request time in `captured_at`. They are many small objects, so they are
fetched in parallel and rewritten into one local Parquet file in row groups of
`chunk_rows`, after which the analysis reads one feature at a time.

The formats written by `prepare` and the model server are read by the small functions
below (`manifest_key`, `reference_objects`, `capture_hour_prefixes`, `capture_table`):
change those, not the job, if a format moves.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from training_jobs import contract
from training_jobs.common import flag
from training_jobs.drift.errors import DriftInputError, EmptyWindowError, MissingFeatureError
from training_jobs.schema import Column

# boto3 ships no type information; clients are duck-typed.
S3Client = Any

DATASET_VERSION_TAG: Final = "dataset_version"
DATASET_NAME_TAG: Final = "dataset"
TRAIN_SPLIT: Final = "train"
CAPTURE_TIME_FIELD: Final = "captured_at"
CAPTURE_INPUTS_FIELD: Final = "inputs"
_CAPTURE_SUFFIXES: Final = (".jsonl", ".json", ".ndjson")
_MLFLOW_NOT_FOUND: Final = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


class MlflowClientLike(Protocol):
    """The two calls the drift job makes; `mlflow.MlflowClient` satisfies it."""

    def get_model_version_by_alias(self, name: str, alias: str) -> Any: ...

    def get_run(self, run_id: str) -> Any: ...


@dataclass(frozen=True)
class Champion:
    model_name: str
    version: str
    run_id: str
    dataset_version: str
    dataset: str | None


@dataclass(frozen=True)
class ManifestObject:
    key: str
    version_id: str | None
    size: int | None
    sha256: str | None


# --- reference -----------------------------------------------------------------------------


def champion(client: MlflowClientLike, model_name: str) -> Champion:
    """The champion's version, run and the dataset version its run was trained on."""
    # mlflow is imported here so that importing the job module stays cheap.
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, contract.CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code not in _MLFLOW_NOT_FOUND:
            raise  # an unreachable or failing tracking server is not the user's input
        raise DriftInputError(
            f"{flag('model_name', contract.DRIFT_ENV_PREFIX)}: model {model_name!r} has no "
            f"{contract.CHAMPION_ALIAS!r} alias in the MLflow registry ({exc.message}); "
            "register a model first"
        ) from exc
    if not version.run_id:
        raise DriftInputError(
            f"model {model_name!r} version {version.version} ({contract.CHAMPION_ALIAS}) "
            "has no MLflow run, so its training data is unknown"
        )
    tags = client.get_run(version.run_id).data.tags
    dataset_version = tags.get(DATASET_VERSION_TAG)
    if not dataset_version:
        raise DriftInputError(
            f"model {model_name!r} version {version.version}: its run {version.run_id} has no "
            f"{DATASET_VERSION_TAG!r} tag, so there is no reference dataset to compare with"
        )
    return Champion(
        model_name=model_name,
        version=str(version.version),
        run_id=str(version.run_id),
        dataset_version=str(dataset_version),
        dataset=tags.get(DATASET_NAME_TAG),
    )


def manifest_key(dataset: str, dataset_version: str) -> str:
    return f"{contract.PREFIX_MANIFESTS}{dataset}/{dataset_version}.json"


def reference_objects(manifest: dict[str, Any]) -> list[ManifestObject]:
    """The Parquet objects of the training data a manifest pins.

    `objects` is either a mapping of split → object (the training split is the reference)
    or a plain list of objects (all of them are).
    """
    objects = manifest.get("objects")
    if isinstance(objects, dict):
        chosen = [objects[TRAIN_SPLIT]] if TRAIN_SPLIT in objects else list(objects.values())
    elif isinstance(objects, list):
        chosen = objects
    else:
        raise DriftInputError("the dataset manifest has no 'objects' to read")
    return [
        ManifestObject(
            key=str(o["key"]),
            version_id=o.get("version_id"),
            size=o.get("size"),
            sha256=o.get("sha256"),
        )
        for o in chosen
        if str(o["key"]).endswith(".parquet")
    ]


def _get(s3: S3Client, bucket: str, key: str, version_id: str | None = None) -> bytes:
    kwargs = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        body: bytes = s3.get_object(**kwargs)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404", "AccessDenied"}:
            where = f"s3://{bucket}/{key}" + (f" (version {version_id})" if version_id else "")
            raise DriftInputError(f"cannot read {where}: {code}") from exc
        raise
    return body


def download_reference(
    s3: S3Client, bucket: str, dataset: str, dataset_version: str, directory: Path
) -> list[Path]:
    """The reference dataset's Parquet objects, verified, as local files."""
    key = manifest_key(dataset, dataset_version)
    try:
        manifest = json.loads(_get(s3, bucket, key))
    except json.JSONDecodeError as exc:
        raise DriftInputError(f"s3://{bucket}/{key} is not JSON: {exc.msg}") from exc
    objects = reference_objects(manifest)
    if not objects:
        raise DriftInputError(f"s3://{bucket}/{key} lists no Parquet objects")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, obj in enumerate(objects):
        body = _get(s3, bucket, obj.key, obj.version_id)
        if obj.size is not None and len(body) != obj.size:
            raise DriftInputError(
                f"s3://{bucket}/{obj.key}: {len(body)} bytes, the manifest says {obj.size}"
            )
        if obj.sha256 is not None and hashlib.sha256(body).hexdigest() != obj.sha256:
            raise DriftInputError(f"s3://{bucket}/{obj.key}: sha256 differs from the manifest")
        path = directory / f"reference-{index:05d}.parquet"
        path.write_bytes(body)
        paths.append(path)
    return paths


# --- current -------------------------------------------------------------------------------


def capture_hour_prefixes(model_name: str, start: datetime, end: datetime) -> list[str]:
    """One prefix per UTC hour overlapping [start, end)."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour < end:
        prefixes.append(contract.capture_partition(model_name, hour))
        hour += timedelta(hours=1)
    return prefixes


def capture_keys(s3: S3Client, bucket: str, prefixes: Sequence[str]) -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    try:
        for prefix in prefixes:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                contents = page.get("Contents", [])
                keys += [o["Key"] for o in contents if o["Key"].endswith(_CAPTURE_SUFFIXES)]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise DriftInputError(f"cannot list s3://{bucket}/{prefixes[0]}…: {code}") from exc
    return keys


def capture_table(
    body: bytes, key: str, features: Sequence[Column], start: datetime, end: datetime
) -> pa.Table:
    """One capture batch as a table of the features, rows captured in [start, end) only."""
    if not body.strip():
        return _empty_features(features)
    try:
        raw = pj.read_json(io.BytesIO(body))
    except pa.ArrowInvalid as exc:
        raise DriftInputError(f"capture {key} is not JSON Lines: {exc}") from exc
    if CAPTURE_INPUTS_FIELD in raw.column_names:
        inputs = raw.column(CAPTURE_INPUTS_FIELD).combine_chunks()
        if not pa.types.is_struct(inputs.type):
            raise DriftInputError(f"capture {key}: {CAPTURE_INPUTS_FIELD!r} is not an object")
        names = [inputs.type.field(i).name for i in range(inputs.type.num_fields)]
        columns = {name: inputs.field(name) for name in names}
    else:
        columns = {name: raw.column(name) for name in raw.column_names}
    missing = [f.name for f in features if f.name not in columns]
    if missing:
        raise MissingFeatureError(
            "feature " + ", ".join(repr(m) for m in missing) + f" is missing from capture {key}"
        )
    table = pa.table({f.name: _typed(columns[f.name], f, key) for f in features})
    if CAPTURE_TIME_FIELD in raw.column_names:
        try:
            when = pc.cast(raw.column(CAPTURE_TIME_FIELD), pa.timestamp("us", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DriftInputError(
                f"capture {key}: {CAPTURE_TIME_FIELD!r} holds values that are not ISO 8601 times"
            ) from exc
        inside = pc.and_(
            pc.greater_equal(when, pa.scalar(start, pa.timestamp("us", tz="UTC"))),
            pc.less(when, pa.scalar(end, pa.timestamp("us", tz="UTC"))),
        )
        table = table.filter(inside)
    return table


def _typed(values: Any, feature: Column, key: str) -> pa.Array:
    target = pa.float64() if feature.kind == "numeric" else pa.string()
    try:
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DriftInputError(
            f"feature {feature.name!r} is {feature.kind} in the schema but capture {key} "
            f"holds {values.type} values"
        ) from exc


def _empty_features(features: Sequence[Column]) -> pa.Table:
    return pa.table(
        {
            f.name: pa.array([], pa.float64() if f.kind == "numeric" else pa.string())
            for f in features
        }
    )


def _fetch_all(
    s3: S3Client, bucket: str, keys: Sequence[str], workers: int
) -> Iterator[tuple[str, bytes]]:
    """Bodies in key order, `workers` downloads in flight, at most 4 x workers held."""
    window = max(workers * 4, 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for offset in range(0, len(keys), window):
            batch = keys[offset : offset + window]
            yield from zip(batch, pool.map(lambda k: _get(s3, bucket, k), batch), strict=True)


def download_captures(
    s3: S3Client,
    bucket: str,
    model_name: str,
    features: Sequence[Column],
    start: datetime,
    end: datetime,
    directory: Path,
    *,
    chunk_rows: int,
    workers: int = 8,
) -> tuple[list[Path], int]:
    """The window's captured rows as one local Parquet file; returns it and the object count."""
    prefixes = capture_hour_prefixes(model_name, start, end)
    keys = capture_keys(s3, bucket, prefixes)
    window = f"{start.isoformat()} to {end.isoformat()}"
    if not keys:
        raise EmptyWindowError(
            f"no captured inferences for model {model_name!r} in s3://{bucket}/"
            f"{contract.PREFIX_CAPTURES}{model_name}/ from {window}; widen the window "
            "(--last-hours, --window-start/--window-end) or check that the model server "
            "captures to this bucket"
        )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "current.parquet"
    schema = _empty_features(features).schema
    rows = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for key, body in _fetch_all(s3, bucket, keys, workers):
            table = capture_table(body, key, features, start, end)
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= chunk_rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=chunk_rows)
                rows += pending_rows
                pending, pending_rows = [], 0
        if pending_rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=chunk_rows)
            rows += pending_rows
    if rows == 0:
        raise EmptyWindowError(
            f"the {len(keys)} capture object(s) for model {model_name!r} hold no rows "
            f"captured from {window}; widen the window"
        )
    return [path], len(keys)

"""The dataset manifest: what a dataset version is, and how jobs read one back.

A manifest lists every curated object of a dataset (key, S3 version id, size, sha256) plus
where its rows came from; the sha256 of its canonical JSON is the dataset version. It is
stored at `manifests/<dataset>/<version>.json`, and `manifests/<dataset>/latest.json`
points at the newest one.
"""

from __future__ import annotations

import io
import json
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError

from training_jobs import contract, schema
from training_jobs.common import JobError, canonical_json, flag
from training_jobs.storage import S3Client, StoredObject, get_bytes, get_verified, head, sha256_hex

MANIFEST_FORMAT: Final = 1
SPLIT_TRAIN: Final = "train"
SPLIT_HOLDOUT: Final = "holdout"


class SourceObject(BaseModel):
    """A raw object rows were read from; content only, so a re-upload of the same bytes
    does not make a new dataset version."""

    model_config = ConfigDict(frozen=True)

    key: str
    size: int
    sha256: str


class RowCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    read: int
    accepted: int
    rejected: int
    train: int
    holdout: int


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: int = MANIFEST_FORMAT
    dataset: str
    schema_sha256: str
    split: dict[str, str | float]
    rows: RowCounts
    sources: tuple[SourceObject, ...]
    objects: dict[str, StoredObject]

    def canonical(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @property
    def version(self) -> str:
        return sha256_hex(self.canonical())


def schema_sha256() -> str:
    """Fingerprint of the declared schema: a schema change is a new dataset version."""
    columns = [
        [c.name, c.kind, c.minimum, c.maximum, list(c.categories), c.nullable]
        for c in schema.FEATURES
    ]
    return sha256_hex(canonical_json([schema.ID_COLUMN, schema.LABEL_COLUMN, columns]))


def arrow_schema() -> pa.Schema:
    """The curated Parquet schema, fixed so bytes do not depend on pandas' inference."""
    fields = [pa.field(schema.ID_COLUMN, pa.int64(), nullable=False)]
    for column in schema.FEATURES:
        if column.kind == "numeric":
            fields.append(pa.field(column.name, pa.float64(), nullable=column.nullable))
        else:
            fields.append(pa.field(column.name, pa.string(), nullable=False))
    fields.append(pa.field(schema.LABEL_COLUMN, pa.int64(), nullable=False))
    return pa.schema(fields)


def to_parquet(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes: explicit schema, no pandas metadata, fixed options."""
    target = arrow_schema()
    arrays = [pa.array(frame[f.name].to_list(), type=f.type) for f in target]
    table = pa.Table.from_arrays(arrays, schema=target)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=3, write_statistics=True)
    return sink.getvalue()


def from_parquet(body: bytes) -> pd.DataFrame:
    frame = pq.read_table(io.BytesIO(body)).to_pandas()
    for name in schema.CATEGORICAL_FEATURES:
        frame[name] = frame[name].astype(object)
    return frame


def manifest_key(dataset: str, version: str) -> str:
    return f"{contract.PREFIX_MANIFESTS}{dataset}/{version}.json"


def latest_key(dataset: str, execution: str | None = None) -> str:
    return contract.pointer_key(contract.PREFIX_MANIFESTS, dataset, execution)


def latest_version(s3: S3Client, bucket: str, dataset: str, execution: str | None = None) -> str:
    key = latest_key(dataset, execution)
    if head(s3, bucket, key) is None:
        raise JobError(
            f"{flag('dataset')}: no dataset {dataset!r} in s3://{bucket} (no {key}); run "
            "`python -m training_jobs.prepare` first"
        )
    pointer = json.loads(get_bytes(s3, bucket, key))
    return str(pointer["dataset_version"])


def load_manifest(
    s3: S3Client,
    bucket: str,
    dataset: str,
    version: str | None,
    execution: str | None = None,
) -> Manifest:
    """The manifest of `version` (or the latest: the one this pipeline execution's prepare
    made, inside one), checked against its own hash."""
    version = version or latest_version(s3, bucket, dataset, execution)
    key = manifest_key(dataset, version)
    if head(s3, bucket, key) is None:
        raise JobError(
            f"{flag('dataset_version')}: {version!r} is not a version of dataset {dataset!r} "
            f"(no s3://{bucket}/{key})"
        )
    body = get_bytes(s3, bucket, key)
    try:
        manifest = Manifest.model_validate_json(body)
    except ValidationError as exc:
        raise JobError(f"s3://{bucket}/{key} is not a dataset manifest: {exc}") from exc
    if manifest.version != version:
        raise JobError(
            f"s3://{bucket}/{key}: manifest hashes to {manifest.version}, not {version}; "
            "it was modified after it was written"
        )
    return manifest


def read_split(s3: S3Client, bucket: str, manifest: Manifest, split: str) -> pd.DataFrame:
    """One split's rows, after checking the pinned object version's size and sha256."""
    obj = manifest.objects[split]
    body = get_verified(s3, bucket, obj, f"dataset {manifest.version[:12]} {split}")
    return from_parquet(body)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[:, list(schema.FEATURE_NAMES)]


def labels(frame: pd.DataFrame) -> Any:
    return frame[schema.LABEL_COLUMN].to_numpy()

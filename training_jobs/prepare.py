"""prepare: raw CSV/Parquet → validated, split, curated Parquet + a dataset manifest.

Rows are checked against `training_jobs.schema`; bad rows go to `rejects/<dataset>/rejects.json`
with a reason each. Accepted rows are sorted by id and split train/holdout by a hash of the
id, so the same input always gives the same bytes, the same manifest and the same dataset
version — and a re-run writes nothing.

    python -m training_jobs.prepare --raw-key churn/ --stack-outputs outputs.json
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from training_jobs import contract, schema
from training_jobs.common import (
    JobError,
    JobSettings,
    StepLogger,
    bucket,
    bucket_origin,
    canonical_json,
    discard_steps,
    flag,
    region,
    run_job,
)
from training_jobs.dataset import (
    SPLIT_HOLDOUT,
    SPLIT_TRAIN,
    Manifest,
    RowCounts,
    SourceObject,
    manifest_key,
    schema_sha256,
    to_parquet,
)
from training_jobs.pointers import pointer_keys
from training_jobs.storage import (
    S3Client,
    get_bytes,
    head,
    list_keys,
    make_s3_client,
    put_if_changed,
    require_bucket,
    sha256_hex,
)

READERS: Final = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SPLIT_METHOD: Final = "sha256(customer_id) / 2**64 < holdout_fraction"
MAX_REJECT_EXAMPLES: Final = 3


class Settings(JobSettings):
    raw_key: str = Field(
        "churn/", min_length=1, description="raw object key, or a prefix ending in /"
    )
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="share of rows held out")


class Rejected(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    row: int
    customer_id: str | None
    reasons: tuple[str, ...]


class PrepareResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset: str
    dataset_version: str
    manifest_key: str
    rejects_key: str
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rows_train: int
    rows_holdout: int
    written: tuple[str, ...]

    @property
    def created(self) -> bool:
        return bool(self.written)


# ---------------------------------------------------------------------------------------
# Pure parts: parse, validate, split.


def parse(key: str, body: bytes) -> pd.DataFrame:
    """Raw rows as read; CSV cells stay strings so validation sees exactly what was written."""
    kind = READERS.get(_suffix(key))
    try:
        if kind == "csv":
            return pd.read_csv(io.BytesIO(body), dtype=str)
        return pd.read_parquet(io.BytesIO(body))
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise JobError(
            f"{flag('raw_key')}: s3 object {key!r} is not readable {kind}: {exc}"
        ) from exc


def _suffix(key: str) -> str:
    dot = key.rfind(".")
    return key[dot:].lower() if dot > key.rfind("/") else ""


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(raw: pd.DataFrame, origin: str) -> tuple[pd.DataFrame, list[tuple[int, list[str]]]]:
    """Typed accepted rows, and (row index, reasons) for each rejected row.

    Missing columns are an error for the whole input, named in one message.
    """
    required = [schema.ID_COLUMN, *schema.FEATURE_NAMES, schema.LABEL_COLUMN]
    missing = [name for name in required if name not in raw.columns]
    if missing:
        raise JobError(
            f"{origin}: missing column(s) {', '.join(missing)}; the schema "
            f"(training_jobs.schema) needs {', '.join(required)}"
        )
    # Blank cells are missing values whichever format they came from.
    raw = raw.replace(r"^\s*$", np.nan, regex=True)
    n = len(raw)
    reasons: list[list[str]] = [[] for _ in range(n)]
    typed: dict[str, pd.Series] = {}

    def flag_rows(mask: np.ndarray, message: Any) -> None:
        for index in np.flatnonzero(mask):
            reasons[index].append(message(index))

    def numbers(name: str) -> tuple[pd.Series, np.ndarray]:
        column = raw[name]
        is_null = column.isna().to_numpy()
        values = pd.to_numeric(column, errors="coerce").astype("float64")
        unparsable = values.isna().to_numpy() & ~is_null
        flag_rows(unparsable, lambda i: f"{name}: {_show(column.iloc[i])} is not a number")
        infinite = np.isinf(values.to_numpy())
        flag_rows(infinite, lambda i: f"{name}: {_show(column.iloc[i])} is not finite")
        values[infinite] = np.nan
        return values, is_null

    ids, id_null = numbers(schema.ID_COLUMN)
    flag_rows(id_null, lambda i: f"{schema.ID_COLUMN}: missing")
    id_values = ids.to_numpy()
    with np.errstate(invalid="ignore"):
        not_int = ~np.isnan(id_values) & ((id_values % 1 != 0) | (id_values < 0))
    flag_rows(
        not_int,
        lambda i: (
            f"{schema.ID_COLUMN}: {_show(raw[schema.ID_COLUMN].iloc[i])} "
            "is not a non-negative integer"
        ),
    )
    duplicate = (ids.duplicated(keep="first") & ids.notna()).to_numpy()
    flag_rows(
        duplicate, lambda i: f"{schema.ID_COLUMN}: {int(id_values[i])} repeats an earlier row"
    )

    for column in schema.FEATURES:
        name = column.name
        if column.kind == "numeric":
            values, is_null = numbers(name)
            if not column.nullable:
                flag_rows(is_null, lambda i, name=name: f"{name}: missing (not nullable)")
            low = -np.inf if column.minimum is None else column.minimum
            high = np.inf if column.maximum is None else column.maximum
            v = values.to_numpy()
            with np.errstate(invalid="ignore"):
                out = ~np.isnan(v) & ((v < low) | (v > high))
            flag_rows(
                out,
                lambda i, name=name, v=v, low=low, high=high: (
                    f"{name}: {v[i]:g} outside [{low:g}, {high:g}]"
                ),
            )
            typed[name] = values
        else:
            raw_column = raw[name]
            is_null = raw_column.isna().to_numpy()
            flag_rows(is_null, lambda i, name=name: f"{name}: missing (not nullable)")
            as_text = (
                raw_column.astype(object)
                .where(~is_null, None)
                .map(lambda x: None if x is None else str(x).strip())
            )
            allowed = set(column.categories)
            unknown = (~as_text.isin(allowed)).to_numpy() & ~is_null
            flag_rows(
                unknown,
                lambda i, name=name, col=column, raw_column=raw_column: (
                    f"{name}: {_show(raw_column.iloc[i])} is not one of {', '.join(col.categories)}"
                ),
            )
            typed[name] = as_text

    label, label_null = numbers(schema.LABEL_COLUMN)
    flag_rows(label_null, lambda i: f"{schema.LABEL_COLUMN}: missing")
    bad_label = (~label.isna() & ~label.isin([0.0, 1.0])).to_numpy()
    flag_rows(
        bad_label,
        lambda i: f"{schema.LABEL_COLUMN}: {_show(raw[schema.LABEL_COLUMN].iloc[i])} is not 0 or 1",
    )

    ok = np.array([not r for r in reasons], dtype=bool)
    accepted = pd.DataFrame({schema.ID_COLUMN: ids[ok].astype("int64")})
    for column in schema.FEATURES:
        accepted[column.name] = typed[column.name][ok].to_numpy()
    accepted[schema.LABEL_COLUMN] = label[ok].astype("int64").to_numpy()
    accepted = accepted.sort_values(schema.ID_COLUMN, kind="stable").reset_index(drop=True)
    rejected = [(i, r) for i, r in enumerate(reasons) if r]
    return accepted, rejected


def holdout_mask(ids: pd.Series, fraction: float) -> np.ndarray:
    """Stable per id: a row's split never changes when other rows come or go."""
    threshold = int(fraction * 2**64)
    return np.array(
        [
            int.from_bytes(hashlib.sha256(str(int(i)).encode()).digest()[:8], "big") < threshold
            for i in ids
        ],
        dtype=bool,
    )


# ---------------------------------------------------------------------------------------
# The job.


def _raw_keys(s3: S3Client, raw_bucket: str, raw_key: str) -> list[str]:
    if not raw_key.endswith("/") and _suffix(raw_key) in READERS:
        if head(s3, raw_bucket, raw_key) is None:
            raise JobError(f"{flag('raw_key')}: {raw_key!r} does not exist in s3://{raw_bucket}")
        return [raw_key]
    if _suffix(raw_key) and not raw_key.endswith("/"):
        raise JobError(
            f"{flag('raw_key')}: {raw_key!r} is neither a .csv/.parquet object nor a prefix "
            "ending in '/'"
        )
    keys = list_keys(s3, raw_bucket, raw_key)
    readable = [k for k in keys if _suffix(k) in READERS]
    if not readable:
        found = f" (found only: {', '.join(keys[:5])})" if keys else ""
        raise JobError(
            f"{flag('raw_key')}: no .csv or .parquet objects under s3://{raw_bucket}/{raw_key}"
            f"{found}"
        )
    return readable


def run(settings: Settings, *, s3: S3Client, on_step: StepLogger = discard_steps) -> PrepareResult:
    raw_bucket = bucket(settings, contract.BUCKET_RAW)
    curated_bucket = bucket(settings, contract.BUCKET_CURATED)
    require_bucket(s3, raw_bucket, bucket_origin(settings, contract.BUCKET_RAW))
    require_bucket(
        s3, curated_bucket, bucket_origin(settings, contract.BUCKET_CURATED), versioned=True
    )

    rows_read = 0
    sources: list[SourceObject] = []
    rejected: list[Rejected] = []
    accepted_parts: list[pd.DataFrame] = []
    for key in _raw_keys(s3, raw_bucket, settings.raw_key):
        body = get_bytes(s3, raw_bucket, key)
        sources.append(SourceObject(key=key, size=len(body), sha256=sha256_hex(body)))
        raw = parse(key, body)
        accepted, bad = validate(raw, f"s3://{raw_bucket}/{key}")
        accepted_parts.append(accepted)
        ids = raw[schema.ID_COLUMN]
        rejected.extend(
            Rejected(
                source=key,
                row=i + 1,
                customer_id=None if pd.isna(ids.iloc[i]) else str(ids.iloc[i]),
                reasons=tuple(reasons),
            )
            for i, reasons in bad
        )
        rows_read += len(raw)
        on_step("read", key=key, rows=len(raw), accepted=len(accepted), rejected=len(bad))

    combined = pd.concat(accepted_parts, ignore_index=True)
    row_sources = np.repeat([s.key for s in sources], [len(p) for p in accepted_parts])
    repeated = combined[schema.ID_COLUMN].duplicated(keep="first").to_numpy()
    if repeated.any():  # the same id in two source objects: keep the first, reject the rest
        for i in np.flatnonzero(repeated):
            rejected.append(
                Rejected(
                    source=str(row_sources[i]),
                    row=0,  # 0: the row passed its own object's checks; see the reason
                    customer_id=str(combined[schema.ID_COLUMN].iloc[i]),
                    reasons=(f"{schema.ID_COLUMN}: repeats a row of an earlier object",),
                )
            )
        combined = combined[~repeated]
    combined = combined.sort_values(schema.ID_COLUMN, kind="stable").reset_index(drop=True)

    rejects_key = f"{contract.PREFIX_REJECTS}{settings.dataset}/rejects.json"
    rejects_doc = {
        "dataset": settings.dataset,
        "count": len(rejected),
        "sources": [s.key for s in sources],
        "rows": [r.model_dump(mode="json") for r in rejected],
    }
    rejects_obj, rejects_written = put_if_changed(
        s3, curated_bucket, rejects_key, canonical_json(rejects_doc), "application/json"
    )
    on_step("rejects", key=rejects_key, count=len(rejected), written=rejects_written)
    if combined.empty:
        examples = "; ".join(
            f"{r.source} row {r.row}: {', '.join(r.reasons)}"
            for r in rejected[:MAX_REJECT_EXAMPLES]
        )
        raise JobError(
            f"{flag('raw_key')}: all {rows_read} rows under s3://{raw_bucket}/{settings.raw_key} "
            f"failed validation (details: s3://{curated_bucket}/{rejects_key}); e.g. {examples}"
        )

    in_holdout = holdout_mask(combined[schema.ID_COLUMN], settings.holdout_fraction)
    splits = {SPLIT_TRAIN: combined[~in_holdout], SPLIT_HOLDOUT: combined[in_holdout]}
    for name, part in splits.items():
        if part.empty:
            raise JobError(
                f"{flag('holdout_fraction')}: {settings.holdout_fraction} on {len(combined)} "
                f"accepted rows leaves the {name} split empty; give more rows or another fraction"
            )

    written: list[str] = [rejects_key] if rejects_written else []
    objects = {"rejects": rejects_obj}
    for name, part in splits.items():
        key = f"{contract.PREFIX_DATASETS}{settings.dataset}/{name}.parquet"
        obj, was_written = put_if_changed(
            s3, curated_bucket, key, to_parquet(part), "application/vnd.apache.parquet"
        )
        objects[name] = obj
        if was_written:
            written.append(key)
        on_step(
            "split", split=name, key=key, rows=len(part), sha256=obj.sha256, written=was_written
        )

    manifest = Manifest(
        dataset=settings.dataset,
        schema_sha256=schema_sha256(),
        split={"method": SPLIT_METHOD, "holdout_fraction": settings.holdout_fraction},
        rows=RowCounts(
            read=rows_read,
            accepted=len(combined),
            rejected=len(rejected),
            train=len(splits[SPLIT_TRAIN]),
            holdout=len(splits[SPLIT_HOLDOUT]),
        ),
        sources=tuple(sources),
        objects=objects,
    )
    version = manifest.version
    key = manifest_key(settings.dataset, version)
    _, manifest_written = put_if_changed(
        s3, curated_bucket, key, manifest.canonical(), "application/json"
    )
    written += [key] if manifest_written else []
    pointer = canonical_json({"dataset": settings.dataset, "dataset_version": version})
    for pointer_key in pointer_keys(contract.PREFIX_MANIFESTS, settings.dataset, settings):
        _, pointer_written = put_if_changed(
            s3, curated_bucket, pointer_key, pointer, "application/json"
        )
        written += [pointer_key] if pointer_written else []
    on_step("manifest", key=key, dataset_version=version, written=manifest_written)
    return PrepareResult(
        dataset=settings.dataset,
        dataset_version=version,
        manifest_key=key,
        rejects_key=rejects_key,
        rows_read=rows_read,
        rows_accepted=len(combined),
        rows_rejected=len(rejected),
        rows_train=manifest.rows.train,
        rows_holdout=manifest.rows.holdout,
        written=tuple(written),
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body(settings: Settings, log: StepLogger) -> PrepareResult:
        return run(settings, s3=make_s3_client(region(settings)), on_step=log)

    return run_job(contract.JOB_PREPARE, Settings, body, argv, failures=(ClientError,))


if __name__ == "__main__":
    raise SystemExit(main())

"""Read one feature at a time, in chunks, from local Parquet files.

Memory is bounded by one feature, not by the table: the job spools its inputs to local
disk once and then, feature by feature, streams that column's row groups in chunks of
`chunk_rows`. A numeric feature keeps its finite values (float64, exact Wasserstein needs
them all: 10 M rows = 80 MB per side); a categorical feature keeps only its counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training_jobs.drift.errors import DriftInputError
from training_jobs.drift.stats import FloatArray, Sample

# Low-cardinality probe: if the first `_PROBE_ROWS` finite values hold at most
# 1/`_PROBE_RATIO` distinct ones, the feature is counted by hashing (linear) instead of
# sorted (n log n). Either layout gives the same statistics; this only picks the faster.
_PROBE_ROWS = 16_384
_PROBE_RATIO = 64


@dataclass(frozen=True)
class NumericSample:
    """A numeric feature's finite values and how many rows had none (NaN, null, ±inf)."""

    sample: Sample
    missing: int


@dataclass(frozen=True)
class CategoricalSample:
    """A categorical feature's counts per category and how many rows were null."""

    counts: dict[str, int]
    missing: int


def _numpy_floats(array: pa.Array) -> FloatArray:
    """A null-free float64 Arrow array as a numpy view.

    Read from the buffer directly: pyarrow's `to_numpy` imports pandas, which costs a
    second and ~50 MB for nothing here.
    """
    if len(array) == 0:  # an all-null chunk may have no data buffer at all
        return np.empty(0, dtype=np.float64)
    return np.frombuffer(
        array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8
    )


def _numpy_ints(array: pa.Array) -> npt.NDArray[np.int64]:
    return np.frombuffer(
        array.buffers()[1], dtype=np.int64, count=len(array), offset=array.offset * 8
    )


def _layout(values: FloatArray) -> Sample:
    """Counted by hashing when the values repeat a lot, else sorted in place."""
    probe = values[:_PROBE_ROWS]
    if values.size and np.unique(probe).size * _PROBE_RATIO <= probe.size:
        arrow = pa.Array.from_buffers(pa.float64(), values.size, [None, pa.py_buffer(values)])
        tally = pc.value_counts(arrow)
        return Sample.from_counts(
            _numpy_floats(tally.field("values")), _numpy_ints(tally.field("counts"))
        )
    values.sort()
    return Sample(values)


class ParquetColumns:
    """One side of the comparison (reference or current): local Parquet files read by column."""

    def __init__(self, label: str, paths: Sequence[Path], chunk_rows: int) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.label = label
        self.paths = tuple(paths)
        self.chunk_rows = chunk_rows
        self._columns = [set(pq.read_schema(p).names) for p in self.paths]
        self.rows = sum(pq.ParquetFile(p).metadata.num_rows for p in self.paths)

    def missing_columns(self, names: Sequence[str]) -> dict[str, Path]:
        """Each requested column absent from some file, with the first file that lacks it."""
        missing: dict[str, Path] = {}
        for path, columns in zip(self.paths, self._columns, strict=True):
            for name in names:
                if name not in columns and name not in missing:
                    missing[name] = path
        return missing

    def chunks(self, name: str) -> Iterator[tuple[Path, pa.Array]]:
        for path in self.paths:
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=self.chunk_rows, columns=[name]):
                yield path, batch.column(0)

    def numeric(self, name: str) -> NumericSample:
        """All finite values of `name`, sorted; NaN, null and ±inf counted as missing."""
        buffer = np.empty(self.rows, dtype=np.float64)
        filled = 0
        for path, chunk in self.chunks(name):
            try:
                as_float = pc.cast(chunk, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DriftInputError(
                    f"feature {name!r} is numeric in the schema but the {self.label} data "
                    f"holds {chunk.type} values ({path.name})"
                ) from exc
            values = _numpy_floats(pc.drop_null(as_float))
            finite = values[np.isfinite(values)]
            buffer[filled : filled + finite.size] = finite
            filled += finite.size
        values = buffer[:filled]
        values += 0.0  # -0.0 becomes 0.0, so hashing and sorting agree on equal values
        return NumericSample(sample=_layout(values), missing=self.rows - filled)

    def categorical(self, name: str) -> CategoricalSample:
        """Counts per category of `name` (values compared as strings); nulls counted as missing."""
        counts: Counter[str] = Counter()
        missing = 0
        for path, chunk in self.chunks(name):
            try:
                as_text = pc.cast(chunk, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DriftInputError(
                    f"feature {name!r} is categorical in the schema but the {self.label} data "
                    f"holds {chunk.type} values ({path.name})"
                ) from exc
            missing += as_text.null_count
            tally = pc.value_counts(as_text)
            for value, count in zip(
                tally.field("values").to_pylist(), tally.field("counts").to_pylist(), strict=True
            ):
                if value is not None:
                    counts[value] += count
        return CategoricalSample(counts=dict(counts), missing=missing)

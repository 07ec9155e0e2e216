"""Per-feature findings read in chunks from Parquet: verdicts, unseen categories, NaNs, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training_jobs import sample_data, schema
from training_jobs.drift.analysis import (
    Thresholds,
    compare,
    compare_categorical,
    compare_numeric,
)
from training_jobs.drift.columns import CategoricalSample, NumericSample, ParquetColumns
from training_jobs.drift.errors import DriftInputError, MissingFeatureError
from training_jobs.drift.stats import Sample
from training_jobs.schema import Column


def _numeric(values: np.ndarray) -> NumericSample:
    sample = Sample.of(values)
    return NumericSample(sample=sample, missing=int(values.size - sample.size))


def _parquet(tmp_path: Path, name: str, frame: pd.DataFrame, row_group_size: int) -> Path:
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, row_group_size=row_group_size, index=False)
    return path


def _same_distribution(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Shapes a drift detector meets: symmetric, skewed, heavy-tailed, discrete, point mass."""
    return {
        "normal": rng.normal(50.0, 12.0, n),
        "gamma": rng.gamma(2.0, 15.0, n),
        "lognormal": rng.lognormal(2.5, 0.6, n),
        "poisson": rng.poisson(1.5, n).astype(np.float64),
        "integers": rng.integers(0, 73, n).astype(np.float64),
        "point_mass": rng.choice([0.0, 5.0, 10.0, 20.0], n, p=[0.6, 0.2, 0.15, 0.05]),
    }


def test_no_false_alarm_on_two_samples_of_one_million_rows() -> None:
    rng = np.random.default_rng(2024)
    reference = _same_distribution(rng, 1_000_000)
    current = _same_distribution(rng, 1_000_000)
    thresholds = Thresholds()
    for name in reference:
        finding = compare_numeric(
            name, _numeric(reference[name]), _numeric(current[name]), thresholds
        )
        assert not finding.drifted, (name, finding.score)
        # Sampling noise at 1 M rows is two orders of magnitude under the threshold.
        assert finding.score < thresholds.wasserstein / 10, (name, finding.score)
        assert finding.psi < 0.01, (name, finding.psi)


def test_detects_a_half_sigma_mean_shift() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(100.0, 20.0, 200_000)
    current = rng.normal(110.0, 20.0, 150_000)
    finding = compare_numeric("x", _numeric(reference), _numeric(current), Thresholds())
    assert finding.drifted
    assert finding.score == pytest.approx(0.5, abs=0.02)
    assert finding.method == "wasserstein_normed"
    assert finding.current_mean == pytest.approx(110.0, abs=0.2)


def test_detects_a_changed_category_mix_and_not_an_unchanged_one() -> None:
    base = sample_data.generate(20_000, seed=3)
    shifted = sample_data.shift(sample_data.generate(20_000, seed=4))
    thresholds = Thresholds()

    def _counts(frame: pd.DataFrame, name: str) -> CategoricalSample:
        return CategoricalSample(counts=frame[name].value_counts().to_dict(), missing=0)

    plan = compare_categorical("plan", _counts(base, "plan"), _counts(shifted, "plan"), thresholds)
    region = compare_categorical(
        "region", _counts(base, "region"), _counts(shifted, "region"), thresholds
    )
    assert plan.drifted and plan.method == "jensen_shannon"
    # basic/standard/premium 0.5/0.35/0.15 → 0.2/0.35/0.45 is a large move.
    assert plan.score > 0.2
    assert not region.drifted and region.score < 0.02


def test_unseen_categories_are_counted_reported_and_scored(tmp_path: Path) -> None:
    reference = pd.DataFrame({"plan": ["basic"] * 60 + ["premium"] * 40})
    current = pd.DataFrame({"plan": ["basic"] * 50 + ["premium"] * 30 + ["enterprise"] * 20})
    findings = compare(
        ParquetColumns("reference", [_parquet(tmp_path, "ref", reference, 7)], chunk_rows=16),
        ParquetColumns("current", [_parquet(tmp_path, "cur", current, 9)], chunk_rows=16),
        [Column("plan", "categorical")],
        Thresholds(),
    )
    (plan,) = findings
    assert plan.unseen_categories == {"enterprise": 20}
    assert plan.histogram.labels == ["basic", "premium", "enterprise"]
    assert plan.histogram.current == pytest.approx([0.5, 0.3, 0.2])
    assert plan.histogram.reference == pytest.approx([0.6, 0.4, 0.0])
    # The unseen mass enters the distance: 20 % of the current rows sit where m = 0.1.
    assert plan.score > 0.2 and plan.drifted


def test_nans_are_counted_per_feature_and_left_out_of_the_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 1.0, 1_000)
    with_gaps = values.copy()
    with_gaps[:100] = np.nan
    with_gaps[100] = np.inf
    reference = pd.DataFrame({"x": values, "c": ["a", "b"] * 500})
    current = pd.DataFrame({"x": with_gaps, "c": [None, "b"] * 500})
    features = [Column("x", "numeric"), Column("c", "categorical")]
    x, c = compare(
        ParquetColumns("reference", [_parquet(tmp_path, "ref", reference, 128)], chunk_rows=50),
        ParquetColumns("current", [_parquet(tmp_path, "cur", current, 128)], chunk_rows=50),
        features,
        Thresholds(),
    )
    assert (x.current_missing, x.current_rows, x.reference_missing) == (101, 899, 0)
    expected = compare_numeric("x", _numeric(values), _numeric(values[101:]), Thresholds())
    assert x.score == pytest.approx(expected.score, rel=1e-12)
    assert (c.current_missing, c.current_rows) == (500, 500)
    assert c.histogram.current == pytest.approx([0.0, 1.0])


def test_a_feature_with_no_values_left_is_an_error_naming_it() -> None:
    empty = NumericSample(sample=Sample.of([]), missing=40)
    with pytest.raises(DriftInputError, match=r"'score' has no usable values in the current data"):
        compare_numeric("score", _numeric(np.ones(5)), empty, Thresholds())


def test_a_missing_feature_is_named_with_its_side_and_file(tmp_path: Path) -> None:
    frame = sample_data.generate(50, seed=0)
    reference = _parquet(tmp_path, "train-000", frame, 50)
    current = _parquet(tmp_path, "batch-007", frame.drop(columns=["plan", "age"]), 50)
    with pytest.raises(MissingFeatureError) as caught:
        compare(
            ParquetColumns("reference", [reference], chunk_rows=10),
            ParquetColumns("current", [current], chunk_rows=10),
            schema.FEATURES,
            Thresholds(),
        )
    message = str(caught.value)
    assert "'age' is missing from the current data (first in batch-007.parquet)" in message
    assert "'plan' is missing from the current data" in message


def test_a_numeric_feature_holding_text_is_an_error_naming_it(tmp_path: Path) -> None:
    reference = _parquet(tmp_path, "ref", pd.DataFrame({"age": [1.0, 2.0]}), 2)
    current = _parquet(tmp_path, "cur", pd.DataFrame({"age": ["old", "young"]}), 2)
    with pytest.raises(DriftInputError, match=r"'age' is numeric in the schema .*\(cur\.parquet\)"):
        compare(
            ParquetColumns("reference", [reference], chunk_rows=10),
            ParquetColumns("current", [current], chunk_rows=10),
            [Column("age", "numeric")],
            Thresholds(),
        )


def test_numeric_histogram_has_one_bar_per_value_for_small_integer_features() -> None:
    finding = compare_numeric(
        "devices",
        _numeric(np.array([1.0, 1.0, 2.0, 3.0])),
        _numeric(np.array([2.0, 3.0, 3.0, 4.0])),
        Thresholds(),
    )
    assert finding.histogram.labels == ["1", "2", "3", "4"]
    assert finding.histogram.reference == pytest.approx([0.5, 0.25, 0.25, 0.0])
    assert finding.histogram.current == pytest.approx([0.0, 0.25, 0.5, 0.25])


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="wasserstein must be positive"):
        Thresholds(wasserstein=0.0)


def test_columns_count_low_cardinality_features_and_sort_the_rest(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    n = 200_000
    frame = pd.DataFrame(
        {"calls": rng.poisson(1.5, n).astype(np.float64), "minutes": rng.lognormal(2.5, 0.6, n)}
    )
    frame.loc[:9, "calls"] = [np.nan, -0.0, 0.0, np.inf, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    columns = ParquetColumns("current", [_parquet(tmp_path, "cur", frame, 50_000)], 30_000)
    calls, minutes = columns.numeric("calls"), columns.numeric("minutes")
    assert calls.sample.counts is not None and minutes.sample.counts is None
    assert (calls.missing, calls.sample.size) == (2, n - 2)
    assert 0.0 in calls.sample.values.tolist() and calls.sample.values.size < 20
    reference = _numeric(rng.poisson(1.6, n).astype(np.float64))
    counted = compare_numeric("calls", reference, calls, Thresholds())
    expanded = compare_numeric(
        "calls", reference, _numeric(frame["calls"].to_numpy()), Thresholds()
    )
    assert counted.score == pytest.approx(expanded.score, rel=1e-12)
    assert counted.psi == pytest.approx(expanded.psi, rel=1e-12)
    assert counted.histogram == expanded.histogram


def test_a_column_captured_as_all_nulls_is_an_error_naming_it(tmp_path: Path) -> None:
    reference = _parquet(tmp_path, "ref", pd.DataFrame({"age": [30.0, 40.0]}), 2)
    nulls = pa.table({"age": pa.array([None, None, None], pa.null())})
    current = tmp_path / "cur.parquet"
    pq.write_table(nulls, current)
    with pytest.raises(DriftInputError, match=r"'age' has no usable values in the current data"):
        compare(
            ParquetColumns("reference", [reference], chunk_rows=10),
            ParquetColumns("current", [current], chunk_rows=10),
            [Column("age", "numeric")],
            Thresholds(),
        )

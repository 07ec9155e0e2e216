"""Per-feature drift findings: the statistics applied to each schema feature, plus verdicts.

A feature drifts when its primary effect size reaches its threshold: normalised Wasserstein
for numeric features, Jensen-Shannon distance for categorical ones (Evidently's defaults
above 1,000 rows, and 0.1 is Evidently's default threshold for both). PSI is reported
beside them for readers used to it, but does not gate: the score published to CloudWatch
and the verdict must be the same number, or the alarm and the report would disagree.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from training_jobs import contract
from training_jobs.drift import stats
from training_jobs.drift.columns import CategoricalSample, NumericSample, ParquetColumns
from training_jobs.drift.errors import DriftInputError, MissingFeatureError
from training_jobs.schema import Column

Method = Literal["wasserstein_normed", "jensen_shannon"]

# Equal-width bars drawn in the report between these quantiles of both samples, so one
# outlier does not flatten the picture; the tails fold into the end bars.
_HISTOGRAM_BARS = 30
_HISTOGRAM_TAIL = 0.005
# Integer-valued features with at most this many distinct values get one bar per value.
_HISTOGRAM_MAX_DISCRETE = 40


@dataclass(frozen=True)
class Thresholds:
    """Effect-size thresholds at or above which a feature counts as drifted."""

    wasserstein: float = contract.DRIFT_THRESHOLD_DEFAULT
    jensen_shannon: float = contract.DRIFT_THRESHOLD_DEFAULT

    def __post_init__(self) -> None:
        for name in ("wasserstein", "jensen_shannon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"threshold {name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Histogram:
    """What the report draws: bar labels and each side's share of its non-missing rows."""

    labels: list[str]
    reference: list[float]
    current: list[float]


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: Literal["numeric", "categorical"]
    method: Method
    score: float
    threshold: float
    drifted: bool
    psi: float
    reference_rows: int
    current_rows: int
    reference_missing: int
    current_missing: int
    histogram: Histogram
    # Categorical only: categories in the current window never seen in the reference.
    unseen_categories: dict[str, int] = field(default_factory=dict)
    # Numeric only: means and standard deviations (ddof=0) of the non-missing values.
    reference_mean: float | None = None
    current_mean: float | None = None
    reference_std: float | None = None
    current_std: float | None = None


def _require_values(name: str, side: str, sample_size: int, missing: int) -> None:
    if sample_size == 0:
        raise DriftInputError(
            f"feature {name!r} has no usable values in the {side} data "
            f"({missing} rows, all missing or non-finite); nothing to compare"
        )


def _shares(sample: stats.Sample, lower_bounds: stats.FloatArray) -> list[float]:
    """Share of a sample in [b0, b1), [b1, b2), …, [bk, +inf); below b0 joins the first."""
    starts = sample.rank_count(lower_bounds[1:], "left")
    bounds = np.concatenate(([0], starts, [sample.size]))
    shares: list[float] = (np.diff(bounds) / sample.size).tolist()
    return shares


def _quantile(sample: stats.Sample, q: float) -> float:
    rank = np.array([round(q * (sample.size - 1))], dtype=np.int64)
    return float(sample.at_rank(rank)[0])


def _distinct(sample: stats.Sample) -> stats.FloatArray:
    """The distinct values when few enough for one bar each; else the values as they are."""
    if sample.counts is not None:
        return sample.values
    values = sample.values
    if values.size == 0:
        return values
    changes = np.count_nonzero(values[1:] != values[:-1])
    return sample.compact().values if changes < _HISTOGRAM_MAX_DISCRETE else values


def _numeric_histogram(reference: stats.Sample, current: stats.Sample) -> Histogram:
    ref_distinct, cur_distinct = _distinct(reference), _distinct(current)
    few = max(ref_distinct.size, cur_distinct.size) <= _HISTOGRAM_MAX_DISCRETE
    distinct = np.union1d(ref_distinct, cur_distinct) if few else ref_distinct[:0]
    if few and distinct.size <= _HISTOGRAM_MAX_DISCRETE and np.all(distinct == np.round(distinct)):
        return Histogram(
            labels=[f"{v:g}" for v in distinct],
            reference=_shares(reference, distinct),
            current=_shares(current, distinct),
        )
    low = min(_quantile(reference, _HISTOGRAM_TAIL), _quantile(current, _HISTOGRAM_TAIL))
    high = max(_quantile(reference, 1 - _HISTOGRAM_TAIL), _quantile(current, 1 - _HISTOGRAM_TAIL))
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, _HISTOGRAM_BARS + 1)
    return Histogram(
        labels=[f"{a:.4g}–{b:.4g}" for a, b in itertools.pairwise(edges)],
        reference=_shares(reference, edges[:-1]),
        current=_shares(current, edges[:-1]),
    )


def compare_numeric(
    name: str, reference: NumericSample, current: NumericSample, thresholds: Thresholds
) -> FeatureDrift:
    """Normalised Wasserstein (gates) and decile PSI of one numeric feature."""
    ref, cur = reference.sample, current.sample
    _require_values(name, "reference", ref.size, reference.missing)
    _require_values(name, "current", cur.size, current.missing)
    score = stats.normalized_wasserstein(ref, cur)
    return FeatureDrift(
        name=name,
        kind="numeric",
        method="wasserstein_normed",
        score=score,
        threshold=thresholds.wasserstein,
        drifted=score >= thresholds.wasserstein,
        psi=stats.numeric_psi(ref, cur),
        reference_rows=ref.size,
        current_rows=cur.size,
        reference_missing=reference.missing,
        current_missing=current.missing,
        histogram=_numeric_histogram(ref, cur),
        reference_mean=ref.mean(),
        current_mean=cur.mean(),
        reference_std=ref.std(),
        current_std=cur.std(),
    )


def compare_categorical(
    name: str, reference: CategoricalSample, current: CategoricalSample, thresholds: Thresholds
) -> FeatureDrift:
    """Jensen-Shannon distance (gates) and PSI over the union of categories."""
    ref_total = sum(reference.counts.values())
    cur_total = sum(current.counts.values())
    _require_values(name, "reference", ref_total, reference.missing)
    _require_values(name, "current", cur_total, current.missing)
    categories, ref_counts, cur_counts = stats.aligned_counts(reference.counts, current.counts)
    score = stats.jensen_shannon_distance(ref_counts, cur_counts)
    unseen = {c: current.counts[c] for c in categories if c not in reference.counts}
    return FeatureDrift(
        name=name,
        kind="categorical",
        method="jensen_shannon",
        score=score,
        threshold=thresholds.jensen_shannon,
        drifted=score >= thresholds.jensen_shannon,
        psi=stats.psi(ref_counts, cur_counts),
        reference_rows=ref_total,
        current_rows=cur_total,
        reference_missing=reference.missing,
        current_missing=current.missing,
        histogram=Histogram(
            labels=categories,
            reference=(ref_counts / ref_total).tolist(),
            current=(cur_counts / cur_total).tolist(),
        ),
        unseen_categories=unseen,
    )


def require_features(features: Sequence[Column], *sides: ParquetColumns) -> None:
    """Fail naming every schema feature a side lacks, before any work is done."""
    problems = []
    for side in sides:
        missing = side.missing_columns([f.name for f in features])
        problems += [
            f"{name!r} is missing from the {side.label} data (first in {path.name})"
            for name, path in missing.items()
        ]
    if problems:
        raise MissingFeatureError("feature " + "; ".join(problems))


def compare_feature(
    feature: Column, reference: ParquetColumns, current: ParquetColumns, thresholds: Thresholds
) -> FeatureDrift:
    if feature.kind == "numeric":
        finding = compare_numeric(
            feature.name,
            reference.numeric(feature.name),
            current.numeric(feature.name),
            thresholds,
        )
    else:
        finding = compare_categorical(
            feature.name,
            reference.categorical(feature.name),
            current.categorical(feature.name),
            thresholds,
        )
    return finding


def compare(
    reference: ParquetColumns,
    current: ParquetColumns,
    features: Sequence[Column],
    thresholds: Thresholds,
) -> list[FeatureDrift]:
    """Every feature's finding, one feature in memory at a time.

    Sequential on purpose: two features on two threads measured slower here (2 shared
    cores) for twice the memory.
    """
    require_features(features, reference, current)
    return [compare_feature(f, reference, current, thresholds) for f in features]

"""Drift statistics for one feature: reference vs current. Pure numpy, no I/O.

Effect sizes, not p-values: at a million captured rows every test rejects "same
distribution" for shifts nobody cares about, while an effect size stays put as data grows.

- Numeric features: normalised Wasserstein distance, exactly Evidently's definition —
  `W1(reference, current) / max(std(reference, ddof=0), 0.001)` — computed from the two
  sorted samples as scipy does (the integral of |F_ref - F_cur| over the merged support).
  It is exact, so it needs every distinct value: a float64 per value per side while one
  feature is being compared (10 M rows = 80 MB), or a (value, count) pair per distinct
  value for low-cardinality features (`Sample`). Sketches (t-digest, fixed histograms)
  would bound memory further but trade exactness for an error bound that depends on the
  data; the drift job compares one feature at a time, so exact stays cheap.
- Categorical features: Jensen-Shannon distance over the union of categories, natural log,
  no smoothing — the same value as `scipy.spatial.distance.jensenshannon` and Evidently.
  Range [0, sqrt(ln 2)] ≈ [0, 0.833].
- PSI, reported for both kinds: numeric bins are the reference's deciles (quantile bins,
  `PSI_QUANTILE_BINS`), so every bin holds ~10 % of the reference whatever the shape and a
  single outlier in the current window cannot squash the other bins, which equal-width
  (Sturges) bins over the combined range allow. PSI's usual reading — < 0.1 stable,
  0.1-0.25 moderate, > 0.25 major — was calibrated on decile bins. Evidently's PSI uses
  Sturges bins over both samples, so its PSI values differ from these by design.
  An empty bin on either side gets proportion `PSI_EPSILON` (1e-4) before the logarithm;
  that bounds one bin's contribution to about p·ln(p / 1e-4) ≤ 9.2·p instead of infinity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

PSI_EPSILON: Final = 1e-4
PSI_QUANTILE_BINS: Final = 10
# Evidently's floor on the reference's standard deviation: a constant reference feature
# still gets a finite, comparable score instead of a division by zero.
WASSERSTEIN_MIN_STD: Final = 0.001
# Rows of the merged support evaluated at once: bounds the temporaries of the integral.
_WASSERSTEIN_BLOCK_ROWS: Final = 1 << 20


IntArray = npt.NDArray[np.int64]


def sorted_finite(values: npt.ArrayLike) -> FloatArray:
    """The finite values of `values` as float64, ascending (NaN and ±inf dropped)."""
    array = np.asarray(values, dtype=np.float64)
    out = array[np.isfinite(array)]
    out.sort()
    return out


@dataclass(frozen=True)
class Sample:
    """An empirical distribution: ascending values, optionally with a count per value.

    Without counts every value is one observation — the layout for high-cardinality data.
    With counts the values are distinct — the compact layout for low-cardinality data
    (ages, counts, ratings), built by hashing instead of sorting millions of values. Both
    layouts give exactly the same statistics.
    """

    values: FloatArray
    counts: IntArray | None = None

    @classmethod
    def of(cls, values: npt.ArrayLike) -> Sample:
        """Every finite value once."""
        return cls(sorted_finite(values))

    @classmethod
    def from_counts(cls, values: npt.ArrayLike, counts: npt.ArrayLike) -> Sample:
        """Distinct values (any order) and how often each occurs."""
        vals = np.asarray(values, dtype=np.float64)
        cnts = np.asarray(counts, dtype=np.int64)
        keep = (cnts > 0) & np.isfinite(vals)
        vals, cnts = vals[keep], cnts[keep]
        order = np.argsort(vals, kind="stable")
        return cls(vals[order], cnts[order])

    @property
    def size(self) -> int:
        return int(self.values.size if self.counts is None else self.counts.sum())

    def _cumulative(self) -> IntArray:
        """Observations up to and including each value, with a leading 0."""
        assert self.counts is not None
        return np.concatenate(([0], np.cumsum(self.counts)))

    def rank_count(self, points: FloatArray, side: Literal["left", "right"]) -> IntArray:
        """Observations < each point (side="left") or <= each point (side="right")."""
        at = np.searchsorted(self.values, points, side=side)
        return at if self.counts is None else self._cumulative()[at]

    def at_rank(self, ranks: IntArray) -> FloatArray:
        """The observation at each 0-based rank of the sorted sample."""
        if self.counts is None:
            return self.values[ranks]
        return self.values[np.searchsorted(np.cumsum(self.counts), ranks, side="right")]

    def compact(self) -> Sample:
        """The counted layout (run-length encoding of a sorted sample: linear)."""
        if self.counts is not None or self.values.size == 0:
            return self
        starts = np.flatnonzero(np.concatenate(([True], self.values[1:] != self.values[:-1])))
        counts = np.diff(np.append(starts, self.values.size)).astype(np.int64)
        return Sample(self.values[starts], counts)

    def mean(self) -> float:
        if self.counts is None:
            return float(np.mean(self.values))
        return float(np.dot(self.counts, self.values) / self.size)

    def std(self) -> float:
        """Population standard deviation (ddof=0), two-pass like numpy's."""
        if self.counts is None:
            return float(np.std(self.values))
        deviation = self.values - self.mean()
        return float(np.sqrt(np.dot(self.counts, deviation * deviation) / self.size))


def _require_non_empty(reference: Sample, current: Sample) -> None:
    if reference.size == 0 or current.size == 0:
        side = "reference" if reference.size == 0 else "current"
        raise ValueError(f"the {side} sample is empty: a distance needs values on both sides")


def wasserstein(reference: Sample, current: Sample) -> float:
    """First Wasserstein distance between two empirical distributions.

    The same formula as `scipy.stats.wasserstein_distance`: the sum over the merged sample
    of |F_ref - F_cur| times the gap to the next value. Ties contribute zero gaps, so the
    counted layout (one term per distinct value) gives the same terms as the expanded one.
    """
    _require_non_empty(reference, current)
    if reference.counts is None and current.counts is None:
        return _wasserstein_expanded(reference.values, current.values)
    ref, cur = reference.compact(), current.compact()
    support = np.union1d(ref.values, cur.values)
    points = support[:-1]
    ref_cdf = ref.rank_count(points, "right") / ref.size
    cur_cdf = cur.rank_count(points, "right") / cur.size
    return float(np.sum(np.abs(ref_cdf - cur_cdf) * np.diff(support)))


def _wasserstein_expanded(reference: FloatArray, current: FloatArray) -> float:
    """W1 of two sorted samples, the CDFs read off one linear merge.

    At the last element of a run of ties the running counts equal scipy's
    `searchsorted(..., side="right")`; within the run the gaps are zero. Temporaries are
    bounded by `_WASSERSTEIN_BLOCK_ROWS` whatever the sample sizes.
    """
    n_ref, n_cur = reference.size, current.size
    total_rows = n_ref + n_cur
    # Where each current value lands in the merge; ties go after the reference's.
    current_at = np.searchsorted(reference, current, side="right")
    current_at += np.arange(n_cur)
    is_current = np.zeros(total_rows, dtype=bool)
    is_current[current_at] = True
    merged = np.empty(total_rows, dtype=np.float64)
    merged[current_at] = current
    merged[~is_current] = reference
    del current_at

    total = 0.0
    current_seen = 0
    last = total_rows - 1
    for start in range(0, last, _WASSERSTEIN_BLOCK_ROWS):
        stop = min(start + _WASSERSTEIN_BLOCK_ROWS, last)
        cur_count = np.cumsum(is_current[start:stop], dtype=np.int64) + current_seen
        current_seen = int(cur_count[-1])
        ref_count = np.arange(start + 1, stop + 1, dtype=np.int64) - cur_count
        gaps = merged[start + 1 : stop + 1] - merged[start:stop]
        total += float(np.sum(np.abs(ref_count / n_ref - cur_count / n_cur) * gaps))
    return total


def normalized_wasserstein(reference: Sample, current: Sample) -> float:
    """Evidently's `wasserstein`: W1 / max(std(reference, ddof=0), 0.001)."""
    norm = max(reference.std(), WASSERSTEIN_MIN_STD)
    return wasserstein(reference, current) / norm


def quantile_bin_edges(reference: Sample, n_bins: int = PSI_QUANTILE_BINS) -> FloatArray:
    """Interior bin edges at the reference's quantiles, duplicates removed.

    Edges are reference values (inverted-CDF quantiles); bins are (-inf, e1], (e1, e2], …,
    (ek, +inf). A value with a point mass (a popular 0) yields one edge, not several.
    """
    if reference.size == 0:
        raise ValueError("the reference sample is empty: cannot place PSI bins")
    probabilities = np.arange(1, n_bins) / n_bins
    ranks = np.ceil(probabilities * reference.size).astype(np.int64) - 1
    edges: FloatArray = np.unique(reference.at_rank(np.clip(ranks, 0, reference.size - 1)))
    return edges


def binned_counts(sample: Sample, edges: FloatArray) -> IntArray:
    """Counts per bin (-inf, e1], …, (ek, +inf)."""
    cumulative = sample.rank_count(edges, "right")
    bounds = np.concatenate(([0], cumulative, [sample.size])).astype(np.int64)
    return np.diff(bounds)


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Population stability index over aligned bins: Σ (c - r) · ln(c / r).

    Proportions of 0 on either side become `PSI_EPSILON` (see the module docstring).
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != cur.shape:
        raise ValueError(f"bins differ: {ref.shape} reference vs {cur.shape} current")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("PSI needs at least one value on each side")
    ref_p = np.maximum(ref / ref.sum(), PSI_EPSILON)
    cur_p = np.maximum(cur / cur.sum(), PSI_EPSILON)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def numeric_psi(reference: Sample, current: Sample) -> float:
    """PSI of two numeric samples over the reference's decile bins."""
    _require_non_empty(reference, current)
    edges = quantile_bin_edges(reference)
    return psi(binned_counts(reference, edges), binned_counts(current, edges))


def jensen_shannon_distance(p_counts: npt.ArrayLike, q_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (natural log, no smoothing) of two aligned count vectors.

    Equals `scipy.spatial.distance.jensenshannon(p, q)`: both vectors are normalised first,
    and 0 · ln 0 counts as 0.
    """
    p = np.asarray(p_counts, dtype=np.float64)
    q = np.asarray(q_counts, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"categories differ: {p.shape} vs {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("Jensen-Shannon distance needs at least one value on each side")
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0

    def _kl_to_m(a: FloatArray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    divergence = (_kl_to_m(p) + _kl_to_m(q)) / 2.0
    return float(np.sqrt(max(divergence, 0.0)))


def aligned_counts(
    reference: Mapping[str, int], current: Mapping[str, int]
) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The union of categories (the reference's sorted, then unseen ones sorted) and counts."""
    unseen = sorted(set(current) - set(reference))
    categories = [*sorted(reference), *unseen]
    ref = np.array([reference.get(c, 0) for c in categories], dtype=np.int64)
    cur = np.array([current.get(c, 0) for c in categories], dtype=np.int64)
    return categories, ref, cur

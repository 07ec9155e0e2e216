"""The drift statistics against hand-computed values and scipy's reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from training_jobs.drift import stats


def _sorted(values: list[float]) -> stats.Sample:
    return stats.Sample.of(values)


def _counted(values: np.ndarray) -> stats.Sample:
    distinct, counts = np.unique(values, return_counts=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(distinct.size)  # from_counts must not rely on the input order
    return stats.Sample.from_counts(distinct[order], counts[order])


# --- Wasserstein -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "current", "expected"),
    [
        # A pure shift by 5 moves every unit of mass 5.
        ([0.0, 1.0, 3.0], [5.0, 6.0, 8.0], 5.0),
        # F_ref = 1/2 and F_cur = 1/4 on [0, 1): area 1/4.
        ([0.0, 1.0], [0.0, 1.0, 1.0, 1.0], 0.25),
        # Ties: F_ref = 1, F_cur = 2/3 on [2, 3).
        ([2.0, 2.0, 2.0], [2.0, 2.0, 3.0], 1.0 / 3.0),
        ([4.0], [4.0], 0.0),
    ],
)
def test_wasserstein_matches_hand_computed(
    reference: list[float], current: list[float], expected: float
) -> None:
    assert stats.wasserstein(_sorted(reference), _sorted(current)) == pytest.approx(
        expected, abs=1e-12
    )


def test_normalized_wasserstein_divides_by_population_std() -> None:
    reference = _sorted([0.0, 1.0, 3.0])
    # std with ddof=0: sqrt(((0 - 4/3)² + (1 - 4/3)² + (3 - 4/3)²) / 3) = sqrt(14/9)
    expected = 5.0 / math.sqrt(14.0 / 9.0)
    assert stats.normalized_wasserstein(reference, _sorted([5.0, 6.0, 8.0])) == pytest.approx(
        expected, rel=1e-12
    )


def test_normalized_wasserstein_floors_a_constant_reference_std() -> None:
    # Evidently's floor of 0.001 keeps a constant reference finite: (1/3) / 0.001.
    score = stats.normalized_wasserstein(_sorted([2.0, 2.0, 2.0]), _sorted([2.0, 2.0, 3.0]))
    assert score == pytest.approx(1000.0 / 3.0, rel=1e-12)


@pytest.mark.parametrize(
    ("n_reference", "n_current", "discrete", "seed"),
    [
        (1_000, 1_000, False, 0),
        (10_000, 3_333, False, 1),
        (17, 250_000, False, 2),
        (50_000, 70_000, True, 3),  # many ties
        (1, 9, True, 4),
    ],
)
def test_wasserstein_matches_scipy(
    n_reference: int, n_current: int, discrete: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    if discrete:
        reference = rng.poisson(3.0, n_reference).astype(np.float64)
        current = rng.poisson(3.4, n_current).astype(np.float64)
    else:
        reference = rng.gamma(2.0, 3.0, n_reference) - 4.0
        current = rng.gamma(2.2, 3.0, n_current) - 4.0
    expected = wasserstein_distance(reference, current)
    expanded = stats.wasserstein(stats.Sample.of(reference), stats.Sample.of(current))
    counted = stats.wasserstein(_counted(reference), _counted(current))
    mixed = stats.wasserstein(stats.Sample.of(reference), _counted(current))
    assert expanded == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert counted == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert mixed == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_wasserstein_spans_several_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The block-wise integral must give the same value however the merge is cut.
    monkeypatch.setattr(stats, "_WASSERSTEIN_BLOCK_ROWS", 7)
    rng = np.random.default_rng(5)
    reference, current = rng.normal(0, 1, 100), rng.normal(0.3, 1.2, 61)
    ours = stats.wasserstein(stats.Sample.of(reference), stats.Sample.of(current))
    assert ours == pytest.approx(wasserstein_distance(reference, current), rel=1e-12)


def test_wasserstein_refuses_an_empty_side() -> None:
    with pytest.raises(ValueError, match="current sample is empty"):
        stats.wasserstein(_sorted([1.0]), _sorted([]))


def test_counted_and_expanded_samples_agree_on_every_statistic() -> None:
    rng = np.random.default_rng(9)
    reference = rng.binomial(12, 0.05, 30_000).astype(np.float64)
    current = rng.binomial(12, 0.08, 20_000).astype(np.float64)
    expanded = (stats.Sample.of(reference), stats.Sample.of(current))
    counted = (_counted(reference), _counted(current))
    assert counted[0].size == expanded[0].size == 30_000
    assert counted[0].mean() == pytest.approx(float(np.mean(reference)), rel=1e-12)
    assert counted[0].std() == pytest.approx(float(np.std(reference)), rel=1e-12)
    assert stats.normalized_wasserstein(*counted) == pytest.approx(
        stats.normalized_wasserstein(*expanded), rel=1e-12
    )
    assert stats.numeric_psi(*counted) == pytest.approx(stats.numeric_psi(*expanded), rel=1e-12)
    assert stats.quantile_bin_edges(counted[0]).tolist() == (
        stats.quantile_bin_edges(expanded[0]).tolist()
    )


def test_sorted_finite_drops_nan_and_infinities() -> None:
    out = stats.sorted_finite([3.0, np.nan, -np.inf, 1.0, np.inf, 2.0])
    assert out.tolist() == [1.0, 2.0, 3.0]


# --- Jensen-Shannon ----------------------------------------------------------------------


def test_jensen_shannon_hand_computed() -> None:
    # p = (1/2, 1/2), q = (1/4, 3/4), m = (3/8, 5/8); natural log.
    kl_p = 0.5 * math.log(0.5 / 0.375) + 0.5 * math.log(0.5 / 0.625)
    kl_q = 0.25 * math.log(0.25 / 0.375) + 0.75 * math.log(0.75 / 0.625)
    expected = math.sqrt((kl_p + kl_q) / 2)
    assert stats.jensen_shannon_distance([1, 1], [1, 3]) == pytest.approx(expected, rel=1e-12)


def test_jensen_shannon_bounds() -> None:
    assert stats.jensen_shannon_distance([7, 0], [0, 3]) == pytest.approx(math.sqrt(math.log(2)))
    assert stats.jensen_shannon_distance([2, 4, 6], [1, 2, 3]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 1_000, 12)
    q = rng.integers(0, 1_000, 12)
    p[seed % 12] = 0  # a category absent on one side: no smoothing, 0 · ln 0 = 0
    assert stats.jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p, q), rel=1e-12)


def test_aligned_counts_puts_unseen_categories_last() -> None:
    categories, ref, cur = stats.aligned_counts({"b": 1, "a": 3}, {"b": 2, "z": 5, "c": 1})
    assert categories == ["a", "b", "c", "z"]
    assert ref.tolist() == [3, 1, 0, 0]
    assert cur.tolist() == [0, 2, 1, 5]


# --- PSI ---------------------------------------------------------------------------------


def test_psi_hand_computed() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert stats.psi([50, 50], [25, 75]) == pytest.approx(expected, rel=1e-12)


def test_psi_replaces_an_empty_bin_with_epsilon() -> None:
    # reference (1, 0) → (1, 1e-4); current (1/2, 1/2)
    eps = stats.PSI_EPSILON
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - eps) * math.log(0.5 / eps)
    assert stats.psi([100, 0], [50, 50]) == pytest.approx(expected, rel=1e-12)


def test_quantile_bins_hold_a_tenth_of_a_continuous_reference() -> None:
    reference = stats.Sample.of(np.arange(1.0, 101.0))
    edges = stats.quantile_bin_edges(reference)
    assert edges.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    assert stats.binned_counts(reference, edges).tolist() == [10] * 10


def test_quantile_bins_collapse_a_point_mass() -> None:
    reference = stats.Sample.of(np.concatenate((np.zeros(60), np.arange(1.0, 41.0))))
    edges = stats.quantile_bin_edges(reference)
    assert edges.tolist() == [0.0, 10.0, 20.0, 30.0]
    assert stats.binned_counts(reference, edges).tolist() == [60, 10, 10, 10, 10]


def test_numeric_psi_of_identical_samples_is_zero_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = stats.Sample.of(rng.normal(0, 1, 20_000))
    assert stats.numeric_psi(reference, reference) == 0.0
    shifted = stats.Sample.of(rng.normal(0.5, 1, 20_000))
    # A half-sigma shift of a normal is a "moderate" PSI on decile bins.
    assert 0.1 < stats.numeric_psi(reference, shifted) < 0.5

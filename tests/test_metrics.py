"""Metrics against hand-computed cases."""

import numpy as np
import pytest
from scipy import stats

from gan_runner.metrics import univariate as metrics


def test_histogram_kl_of_identical_samples_is_zero():
    x = np.random.default_rng(0).normal(size=1000)
    assert metrics.histogram_kl(x, x) == pytest.approx(0.0, abs=1e-6)


def test_histogram_kl_matches_hand_computation():
    # 2 bins on [0, 2]: real = [0.5, 1.5, 1.5, 1.5] -> p = (1/4, 3/4); fake -> q = (3/4, 1/4)
    real = np.array([0.0, 2.0, 1.5, 1.5])
    fake = np.array([0.5, 0.5, 0.5, 1.5, 99.0])  # 99 lies outside the real range: dropped
    p, q = np.array([0.25, 0.75]), np.array([0.75, 0.25])
    expected = np.sum(p * (np.log(p) - np.log(q)))
    assert metrics.histogram_kl(real, fake, bins=2) == pytest.approx(expected, rel=1e-6)


def test_histogram_kl_floor_of_two_normal_samples_is_about_0_2():
    # SEED.md: two samples of 1000 from one N(0,1) give a median of 0.20 with this estimator.
    rng = np.random.default_rng(1)
    values = [metrics.histogram_kl(rng.normal(size=1000), rng.normal(size=1000)) for _ in range(50)]
    assert 0.15 < np.median(values) < 0.27


def test_kl_to_normal_small_for_target_samples_large_for_shifted():
    rng = np.random.default_rng(2)
    assert metrics.kl_to_normal(rng.normal(size=20000), 0.0, 1.0) < 0.01
    assert metrics.kl_to_normal(rng.normal(2.0, 1.0, size=20000), 0.0, 1.0) > 1.0


def test_kl_to_normal_keeps_far_fakes_in_tail_bins():
    # All fakes at 100 (outside +-5 sd) must not be dropped: the KL is huge, not ~0.
    assert metrics.kl_to_normal(np.full(1000, 100.0), 0.0, 1.0) > 10


def test_moments_of_known_arrays():
    m = metrics.moments(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m["mean"] == 2.5 and m["std"] == pytest.approx(np.sqrt(1.25)) and m["skew"] == pytest.approx(0.0)
    assert m["kurtosis"] == pytest.approx(-1.36)  # excess kurtosis of 4 evenly spaced points


def test_w1_of_a_shift_is_the_shift():
    q = stats.norm.ppf((np.arange(1, 5001) - 0.5) / 5000)
    assert metrics.w1_to_normal(q + 0.3, 0.0, 1.0) == pytest.approx(0.3, abs=1e-9)
    assert metrics.w1_to_normal(2 * q, 0.0, 2.0) == pytest.approx(0.0, abs=1e-9)


def test_ks_equals_scipy():
    x = np.random.default_rng(3).normal(0.1, 1.2, size=3000)
    assert metrics.ks_to_normal(x, 0.0, 1.0) == pytest.approx(stats.kstest(x, "norm").statistic, abs=1e-12)


@pytest.mark.parametrize("order", ["as drawn", "sorted"])
def test_kl_to_normal_counts_as_numpys_histogram_over_generated_fakes(order):
    """The fakes' bin counts come from searchsorted on the sorted fakes (an evaluation sorts
    once): the KL must be bit for bit the one from np.histogram on the same edges, including
    fakes exactly on an edge, in a tail bin or all in one bin."""
    rng = np.random.default_rng(7)
    for case in range(40):
        fake = rng.normal(rng.uniform(-2, 2), rng.uniform(0.2, 3), size=int(rng.integers(1, 5000)))
        if case % 5 == 0:
            fake[: len(fake) // 3] = rng.uniform(-50, 50, len(fake) // 3)
        if case == 3:
            fake[:] = 0.0
        mean, std, bins = float(rng.uniform(-1, 1)), float(rng.uniform(0.5, 2)), int(rng.integers(2, 120))
        inner = np.linspace(mean - 5 * std, mean + 5 * std, bins + 1)
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        if case % 3 == 0:  # a third of the fakes exactly on an edge, the last edge included
            fake[: len(fake) // 3] = rng.choice(inner, len(fake) // 3)
        target = np.diff(stats.norm.cdf(edges, loc=mean, scale=std))
        counts, _ = np.histogram(fake, bins=edges)
        expected = metrics._kl(target, counts.astype(np.float64))
        given = np.sort(fake) if order == "sorted" else fake
        assert metrics.kl_to_normal(given, mean, std, bins=bins) == expected


@pytest.mark.parametrize("case", range(30))
def test_moments_skew_and_kurtosis_are_scipys_bit_for_bit(case):
    """moments() skips scipy's axis/NaN wrapper for speed: every value must still be exactly
    scipy.stats.skew / kurtosis, over generated samples (sizes 1 to 20,000; normal, skewed,
    heavy-tailed, constant, with NaN)."""
    from scipy import stats

    rng = np.random.default_rng(case)
    n = int(rng.choice([1, 2, 3, 4, 17, 1000, 20000]))
    kind = case % 5
    x = [
        rng.normal(rng.uniform(-3, 3), rng.uniform(0.01, 5), n),
        rng.exponential(rng.uniform(0.1, 3), n),
        rng.standard_t(2, n),
        np.full(n, rng.uniform(-5, 5)),
        np.where(rng.random(n) < 0.01, np.nan, rng.normal(size=n)),
    ][kind]
    m = metrics.moments(x)
    np.testing.assert_array_equal(m["skew"], float(stats.skew(x)))
    np.testing.assert_array_equal(m["kurtosis"], float(stats.kurtosis(x)))

"""gan_runner/image_metrics.py against hand-computed cases: Frechet distances with closed forms
(1-D and diagonal Gaussians, commuting covariances), MNIST scores of textbook outputs, class
coverage; and the degenerate inputs that must give a number or one clear error, never NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gan_runner.metrics import image as im


def _closed_form_diagonal(mu1, var1, mu2, var2) -> float:
    """FD of N(mu1, diag var1) and N(mu2, diag var2): sum (mu1-mu2)^2 + (sd1-sd2)^2."""
    mu1, var1, mu2, var2 = map(np.asarray, (mu1, var1, mu2, var2))
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2))


def test_fd_of_1d_gaussians_is_mean_gap_squared_plus_sd_gap_squared():
    # N(0, 1) vs N(1, 4): 1^2 + (1 - 2)^2 = 2
    assert im.frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, abs=1e-12)
    assert im.frechet_distance(3.0, 9.0, -1.0, 1.0) == pytest.approx(16 + 4, abs=1e-12)  # scalars too


def test_fd_of_diagonal_gaussians_matches_the_closed_form():
    mu1, var1, mu2, var2 = [0, 1, 2], [1, 4, 9], [1, 1, 0], [4, 1, 0.25]
    expected = _closed_form_diagonal(mu1, var1, mu2, var2)  # 1+0+4 + 1+1+6.25 = 13.25
    assert expected == pytest.approx(13.25)
    assert im.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, abs=1e-10)


def test_fd_with_rotated_covariances_keeps_the_closed_form():
    """Q D1 Q^T and Q D2 Q^T commute: the FD is the diagonal one (rotation-invariant)."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    d1, d2 = np.array([1, 2, 3, 4, 5, 6.0]), np.array([6, 5, 4, 3, 2, 1.0])
    mu1, mu2 = np.arange(6.0), np.arange(6.0)[::-1]
    got = im.frechet_distance(q @ mu1, q @ np.diag(d1) @ q.T, q @ mu2, q @ np.diag(d2) @ q.T)
    assert got == pytest.approx(_closed_form_diagonal(mu1, d1, mu2, d2), rel=1e-9)


def test_sqrtm_trace_agrees_with_tf_gans_symmetric_form_on_non_commuting_covariances():
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) @ rng.normal(size=(8, 8))
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        assert im.trace_sqrt_product(s1, s2) == pytest.approx(im._trace_sqrt_symmetric(s1, s2), rel=1e-9)


def test_fd_is_zero_for_equal_gaussians_and_symmetric():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 4)), rng.normal(1, 2, size=(60, 4))
    assert im.frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-9)
    assert im.frechet_distance_features(x, y) == pytest.approx(im.frechet_distance_features(y, x), rel=1e-9)


def test_feature_stats_use_the_unbiased_covariance():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])  # mean (1, 1), var 4/3 (ddof=1), cov 0
    mu, sigma = im.gaussian_stats(x)
    np.testing.assert_allclose(mu, [1, 1])
    np.testing.assert_allclose(sigma, np.eye(2) * 4 / 3)
    # the same cloud shifted by 3 along x: only the mean term remains
    assert im.frechet_distance_features(x, x + [3.0, 0.0]) == pytest.approx(9.0, abs=1e-9)


# ---- degenerate inputs: a number or one clear message ------------------------------------------


def test_identical_samples_give_the_exact_fd():
    """All fakes the same image: covariance 0, FD = ||mu1 - mu2||^2 + tr(sigma_real)."""
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 10))
    fake = np.tile(rng.normal(size=10), (200, 1))
    mu, sigma = im.gaussian_stats(real)
    expected = float(np.sum((mu - fake[0]) ** 2) + np.trace(sigma))
    got = im.frechet_distance_features(fake, real)
    assert math.isfinite(got) and got == pytest.approx(expected, rel=1e-6)


def test_fewer_samples_than_dimensions_give_a_finite_fd():
    rng = np.random.default_rng(4)
    few, other = rng.normal(size=(4, 10)), rng.normal(size=(5, 10))  # covariances of rank 3 and 4 in 10-D
    got = im.frechet_distance_features(few, other)
    s1, s2 = np.cov(few, rowvar=False), np.cov(other, rowvar=False)
    exact = float(
        np.sum((few.mean(0) - other.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2 * im._trace_sqrt_symmetric(s1, s2)
    )
    assert math.isfinite(got) and got >= 0 and got == pytest.approx(exact, rel=1e-3)
    assert im.frechet_distance_features(few, few) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize(
    ("features", "words"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "1 of 2 rows hold NaN or inf"),
        (np.ones((1, 3)), "at least 2 samples"),
        (np.ones(5), "2-D array"),
    ],
)
def test_bad_features_raise_one_clear_line(features, words):
    with pytest.raises(ValueError, match=words):
        im.gaussian_stats(features)


def test_fd_refuses_mismatched_or_non_finite_parameters():
    with pytest.raises(ValueError, match="shapes do not match"):
        im.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="sigma2 holds NaN"):
        im.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.nan))


# ---- MNIST score ---------------------------------------------------------------------------------


def test_mnist_score_is_10_for_confident_uniform_predictions_and_1_for_one_class():
    confident = np.tile(np.eye(10), (30, 1))  # 300 samples, each class 30 times, probability 1
    assert im.mnist_score(confident) == pytest.approx(10.0, rel=1e-12)
    one_class = np.tile(np.eye(10)[7], (300, 1))
    assert im.mnist_score(one_class) == pytest.approx(1.0, abs=1e-12)
    unsure = np.full((300, 10), 0.1)  # every class equally likely for every sample: no information
    assert im.mnist_score(unsure) == pytest.approx(1.0, abs=1e-12)
    two_classes = np.tile(np.eye(10)[[2, 5]], (50, 1))
    assert im.mnist_score(two_classes) == pytest.approx(2.0, rel=1e-12)


def test_mnist_score_hand_computed_mixed_case():
    """p1 = (1, 0), p2 = (.5, .5): p(y) = (.75, .25); KL1 = log(4/3), KL2 = .5 log(2/3) + .5 log 2."""
    expected = math.exp((math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2)) / 2)
    assert im.mnist_score(np.array([[1.0, 0.0], [0.5, 0.5]])) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.240806, abs=1e-6)


def test_softmax_is_stable_and_mnist_score_refuses_non_probabilities():
    p = im.softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match="rows must be probabilities"):
        im.mnist_score(np.array([[3.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        im.mnist_score(np.array([[np.nan, 1.0]]))


# ---- coverage -------------------------------------------------------------------------------------


def test_coverage_counts_classes_with_at_least_two_percent():
    labels = np.array([0] * 96 + [1] * 2 + [2] * 1 + [3] * 1)  # 96%, 2%, 1%, 1%
    covered, histogram = im.coverage(labels)
    assert covered == 2  # exactly 2% counts
    np.testing.assert_allclose(histogram, [0.96, 0.02, 0.01, 0.01, 0, 0, 0, 0, 0, 0])
    assert im.coverage(labels, threshold=0.01)[0] == 4


def test_coverage_of_probabilities_uses_the_argmax():
    probs = np.tile(np.eye(10), (5, 1)) * 0.6 + 0.04  # each row: its class 0.64, others 0.04
    covered, histogram = im.coverage(probs)
    assert covered == 10 and np.allclose(histogram, 0.1)
    assert im.coverage(np.tile(np.eye(10)[4], (50, 1)))[0] == 1


def test_coverage_refuses_bad_labels():
    with pytest.raises(ValueError, match="labels: must be in 0..9"):
        im.coverage(np.array([0, 10]))
    with pytest.raises(ValueError, match="no samples"):
        im.coverage(np.array([], dtype=int))


# ---- KID (unbiased MMD^2, cubic kernel) and PRDC, by hand --------------------------------------


def test_mmd2_of_two_pairs_by_hand():
    """d = 1, k(x, y) = (x y + 1)^3. real {0, 1}, fake {0, 2}: k(0,1) = 1 and k(0,2) = 1 (the
    off-diagonal means), cross terms 1, 1, 1, 27 (mean 7.5): 1 + 1 - 2 * 7.5 = -13."""
    assert im.mmd2_unbiased([[0.0], [1.0]], [[0.0], [2.0]]) == pytest.approx(-13.0, abs=1e-12)
    # the kernel's d: x.y / d with d = 2 for the same points doubled in width gives the same numbers
    assert im.mmd2_unbiased([[0.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [2.0, 2.0]]) == pytest.approx(-13.0, abs=1e-12)


def test_kid_averages_tf_gan_blocks_and_gives_their_standard_error():
    """4 rows a side -> 2 blocks. Block 1: real {0, 1} vs fake {0, 2}: -13 (above). Block 2:
    real {0, 1} vs fake {0, 1}: 1 + 1 - 2 * (1 + 1 + 1 + 8) / 4 = -3.5. Mean -8.25; std (ddof 1)
    of the two = 9.5 / sqrt 2, over sqrt 2 blocks = 4.75."""
    kid, std = im.kernel_distance([[0.0], [1.0], [0.0], [1.0]], [[0.0], [2.0], [0.0], [1.0]])
    assert kid == pytest.approx(-8.25, abs=1e-12) and std == pytest.approx(4.75, abs=1e-12)
    # 2500 rows with blocks of at most 1024 -> 3 blocks of 834, 833, 833 (TF-GAN's split)
    np.testing.assert_array_equal(im._block_edges(2500, 3), [0, 833, 1666, 2500])


def test_prdc_by_hand_with_k_1():
    """1-D, k = 1. real {0, 1, 3}: radii 1, 1, 2; fake {0.5, 0.6, 10}: radii 0.1, 0.1, 9.4.
    Fakes inside real balls: 0.5 (balls of 0 and 1), 0.6 (same), 10 (none) -> precision 2/3,
    density (2 + 2 + 0) / 3 / 1 = 4/3. Reals inside fake balls: 0 (no: 0.5 > 0.1, 10 > 9.4),
    1 (9 < 9.4), 3 (7 < 9.4) -> recall 2/3. Reals whose ball holds a fake: 0, 1 (not 3: 2.4 > 2)
    -> coverage 2/3."""
    got = im.prdc([[0.0], [1.0], [3.0]], [[0.5], [0.6], [10.0]], k=1)
    assert got == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "density": 4 / 3, "coverage_nn": 2 / 3}, abs=1e-12
    )


def test_prdc_of_identical_sets_and_of_a_far_cloud():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 10))
    far = rng.normal(size=(200, 10)) + 100
    same = im.prdc(x, x, k=5)  # every fake sits at a real centre, inside its ball
    assert same["precision"] == 1 and same["recall"] == 1 and same["coverage_nn"] == 1 and same["density"] >= 1
    assert im.prdc(x, far) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage_nn": 0.0}


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: im.prdc(np.zeros((5, 2)), np.zeros((5, 3))), "differ in width: 2 vs 3"),
        (lambda: im.prdc(np.zeros((5, 2)), np.zeros((5, 2)), k=5), r"k must be in 1..4"),
        (lambda: im.kernel_distance(np.zeros((3, 2)), np.zeros((9, 2))), "at least 4 real and 4 fake"),
        (lambda: im.feature_scores(np.zeros((5, 10)), np.zeros((5, 10)), ["fid"]), "unknown metric.*fid; allowed: fd"),
    ],
)
def test_bad_kid_prdc_input_raises_one_clear_line(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_feature_scores_computes_only_the_chosen_metrics():
    rng = np.random.default_rng(6)
    fake, real = rng.normal(size=(50, 10)), rng.normal(size=(50, 10))
    assert set(im.feature_scores(fake, real, ["kid", "recall"])) == {"histogram", "kid", "kid_std", "recall"}
    every = im.feature_scores(fake, real)
    assert set(every) == {"histogram", "kid_std", *im.IMAGE_METRICS}
    assert every["precision"] == im.prdc(real, fake)["precision"]  # real first: balls around the reals

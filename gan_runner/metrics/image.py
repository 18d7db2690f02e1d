"""Sample-quality numbers from a classifier's outputs: Frechet distance, MNIST score, class
coverage. Pure numpy/scipy on float64, no TensorFlow (gan_runner/metrics/classifier.py makes the
features; these functions only see arrays).

Features are the classifier's 10 logits, as in TF-GAN's `mnist_frechet_distance` (its frozen
MNIST classifier's `logits:0`): comparable in spirit with the published MNIST FD, a 10 x 10
covariance that is well conditioned from a few dozen samples on, and cheap to compare. The
penultimate layer would see more within-class style, but needs N >> its width (128) before
its covariance means anything.

Degenerate inputs give a number or a ValueError with one line, never NaN: identical samples
(zero covariance), fewer samples than feature dimensions (singular covariance), non-finite
features (from NaN images).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from scipy.special import xlogy

N_CLASSES = 10
COVERAGE_THRESHOLD = 0.02  # a class counts as covered from 2% of the samples on
SQRTM_EPS = 1e-6  # x the mean variance: added to both covariances' diagonals when sqrtm fails
IMAG_TOL = 1e-3  # imaginary parts of sqrtm up to this (relative) are rounding, dropped
SQUARE_RTOL = 1e-6  # sqrtm's result must square back to the product within this (relative)


def _finite_2d(x, what: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (samples, dims), got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"{what}: {bad} of {len(x)} rows hold NaN or inf (non-finite images?)")
    return x


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) (ddof=1, as TF-GAN) of features (n, d), n >= 2."""
    x = _finite_2d(features, "features")
    if len(x) < 2:
        raise ValueError(f"features: need at least 2 samples for a covariance, got {len(x)}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) by scipy.linalg.sqrtm with the usual guards: a result that is
    not finite or not a square root (a near-singular product: identical samples, fewer samples
    than dimensions) is computed again with eps*I added to both covariances; imaginary parts
    from rounding are dropped. Should that fail too, the exact symmetric form TF-GAN uses,
    tr((s1^(1/2) s2 s1^(1/2))^(1/2)), gives the number."""
    root = _checked_sqrtm(sigma1 @ sigma2)
    if root is None:
        offset = SQRTM_EPS * max(np.trace(sigma1) + np.trace(sigma2), 1e-12) / len(sigma1) * np.eye(len(sigma1))
        root = _checked_sqrtm((sigma1 + offset) @ (sigma2 + offset))
    return float(np.trace(root)) if root is not None else _trace_sqrt_symmetric(sigma1, sigma2)


def _checked_sqrtm(matrix: np.ndarray) -> np.ndarray | None:
    """sqrtm(matrix) as a real array, or None when it is not finite, has a large imaginary part,
    or does not square back to the matrix."""
    with warnings.catch_warnings():  # "Matrix is singular": judged by the checks below instead
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(matrix)
    if not np.isfinite(root).all():
        return None
    if np.iscomplexobj(root):
        if np.abs(root.imag).max() > IMAG_TOL * max(np.abs(root.real).max(), 1.0):
            return None
        root = root.real
    size = max(np.linalg.norm(matrix), 1e-12)
    return root if np.linalg.norm(root @ root - matrix) <= SQUARE_RTOL * size else None


def _trace_sqrt_symmetric(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(A B)) = tr(sqrt(A^(1/2) B A^(1/2))) for symmetric PSD A, B; the inner matrix is
    symmetric PSD, so its eigenvalues (clipped at 0) give the trace without complex numbers."""
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = half @ sigma2 @ half
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)): the Frechet (W2)
    distance between N(mu1, sigma1) and N(mu2, sigma2); >= 0 (rounding below 0 is clipped)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            f"frechet_distance: shapes do not match: mu {mu1.shape} / {mu2.shape}, "
            f"sigma {sigma1.shape} / {sigma2.shape}"
        )
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"frechet_distance: {name} holds NaN or inf")
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(fd, 0.0))


def frechet_distance_features(features1, features2) -> float:
    """FD between the Gaussians fitted to two feature sets (n1, d) and (n2, d)."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


def softmax(logits) -> np.ndarray:
    """Row-wise softmax (n, k) in float64, stable for large logits."""
    z = _finite_2d(logits, "logits")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _probabilities(probs) -> np.ndarray:
    p = _finite_2d(probs, "probs")
    if len(p) == 0:
        raise ValueError("probs: no samples")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs: rows must be probabilities (>= 0, summing to 1); pass softmax(logits)")
    return p


def mnist_score(probs) -> float:
    """exp(E_x KL(p(y|x) || p(y))), p(y) the mean of p(y|x) over the samples (TF-GAN's
    classifier score). k (10) for confident predictions spread evenly over k classes, 1 when
    every sample gets the same prediction. 0 * log 0 counts as 0."""
    p = _probabilities(probs)
    marginal = p.mean(axis=0)
    # KL rows: sum_y p log p - p log p(y); where p(y|x) = 0 the term is 0 (xlogy).
    kl = xlogy(p, p).sum(axis=1) - xlogy(p, marginal[None, :]).sum(axis=1)
    return float(np.exp(max(kl.mean(), 0.0)))


def class_histogram(probs_or_labels, n_classes: int = N_CLASSES) -> np.ndarray:
    """Fraction of the samples (k,) given to each class: argmax of probs (n, k), or labels (n,)."""
    x = np.asarray(probs_or_labels)
    if x.ndim == 2:
        labels = _finite_2d(x, "probs").argmax(axis=1)
    elif x.ndim == 1:
        labels = x.astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"labels: must be in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    else:
        raise ValueError(f"coverage: expected probs (n, {n_classes}) or labels (n,), got shape {x.shape}")
    if len(labels) == 0:
        raise ValueError("coverage: no samples")
    return np.bincount(labels, minlength=n_classes).astype(np.float64) / len(labels)


def coverage(
    probs_or_labels, threshold: float = COVERAGE_THRESHOLD, n_classes: int = N_CLASSES
) -> tuple[int, np.ndarray]:
    """(how many classes get at least `threshold` of the samples, the class histogram (k,))."""
    histogram = class_histogram(probs_or_labels, n_classes)
    return int((histogram >= threshold).sum()), histogram


# ---- kernel distance (KID) and PRDC on the same features ----------------------------------------

KID_MAX_BLOCK = 1024  # TF-GAN's max_block_size: the MMD^2 is averaged over blocks of at most this
PRDC_K = 5  # Naeem et al. 2020's default k for the k-NN balls


def _pair(real, fake, what: str) -> tuple[np.ndarray, np.ndarray]:
    r, f = _finite_2d(real, f"{what} real"), _finite_2d(fake, f"{what} fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"{what}: real and fake features differ in width: {r.shape[1]} vs {f.shape[1]}")
    return r, f


def _block_edges(n: int, blocks: int) -> np.ndarray:
    """TF-GAN's split of n rows into `blocks` consecutive blocks whose sizes differ by at most 1."""
    size, extra = divmod(n, blocks)
    sizes = [size] * (blocks - extra) + [size + 1] * extra
    return np.concatenate([[0], np.cumsum(sizes)])


def mmd2_unbiased(real, fake) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al.
    2018): mean k(r, r') over pairs r != r' + the same for fakes - 2 mean k(r, f). Can be < 0."""
    r, f = _pair(real, fake, "kid")
    m, n = len(r), len(f)
    if m < 2 or n < 2:
        raise ValueError(f"kid: needs at least 2 real and 2 fake samples, got {m} and {n}")
    d = r.shape[1]
    k_rr, k_ff, k_rf = (_cubic(a @ b.T / d + 1) for a, b in ((r, r), (f, f), (r, f)))
    return float(
        (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1)) + (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1)) - 2 * k_rf.mean()
    )


def _cubic(x: np.ndarray) -> np.ndarray:
    return x * x * x  # a few times faster than x ** 3 on large arrays


def kernel_distance(real, fake, max_block_size: int = KID_MAX_BLOCK) -> tuple[float, float]:
    """(KID, its standard error) as TF-GAN's kernel_classifier_distance_and_std: both sets cut
    into the same number of consecutive blocks of at most max_block_size rows, the unbiased
    MMD^2 of each block pair, their mean and std/sqrt(blocks) (ddof=1). One difference: TF-GAN
    returns a NaN std for a single block; here at least 2 blocks are made (each needs 2 rows),
    so the error bar always exists."""
    r, f = _pair(real, fake, "kid")
    if len(r) < 4 or len(f) < 4:
        raise ValueError(f"kid: needs at least 4 real and 4 fake samples (2 blocks of 2), got {len(r)} and {len(f)}")
    blocks = max(2, int(np.ceil(max(len(r), len(f)) / max_block_size)))
    blocks = min(blocks, len(r) // 2, len(f) // 2)
    er, ef = _block_edges(len(r), blocks), _block_edges(len(f), blocks)
    est = np.array([mmd2_unbiased(r[er[i] : er[i + 1]], f[ef[i] : ef[i + 1]]) for i in range(blocks)])
    return float(est.mean()), float(est.std(ddof=1) / np.sqrt(blocks))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)); squared form clipped at 0 before the root."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (its own 0 is the 1st smallest)."""
    return np.partition(_distances(x, x), k, axis=1)[:, k]


def prdc(real, fake, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall, density, coverage of Naeem et al. 2020 (as their `prdc` package), with
    k-NN balls: B(x, distance to x's k-th nearest neighbour in its own set), strict `<`.
    precision: fakes inside some real ball; recall: reals inside some fake ball; density: real
    balls holding each fake / k, averaged (1 ~ as dense as the reals, can exceed 1); coverage:
    reals whose own ball holds a fake. Returned under the names precision, recall, density,
    coverage_nn (coverage is the class count)."""
    r, f = _pair(real, fake, "prdc")
    if not 1 <= k < min(len(r), len(f)):
        raise ValueError(f"prdc: k must be in 1..{min(len(r), len(f)) - 1} (fewer than each set's samples), got {k}")
    real_radii, fake_radii = _kth_neighbour_radii(r, k), _kth_neighbour_radii(f, k)
    rf = _distances(r, f)  # (n_real, n_fake)
    inside_real = rf < real_radii[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((rf < fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage_nn": float((rf.min(axis=1) < real_radii).mean()),
    }


# ---- the selectable set (eval.metrics) ----------------------------------------------------------

# eval.metrics names; each logged as eval/<name> (kid also eval/kid_std). The gan_runner.bench_metrics
# timing at eval.n_fake=2000: all cost well under 10% of the DCGAN's time between evaluations.
IMAGE_METRICS = ("fd", "mnist_score", "coverage", "kid", "precision", "recall", "density", "coverage_nn")
FLOOR_METRICS = ("fd", "kid", "precision", "recall", "density", "coverage_nn")  # real vs real: eval/<name>_floor
PRDC_METRICS = ("precision", "recall", "density", "coverage_nn")


def feature_scores(
    fake_logits, real_logits, metrics=IMAGE_METRICS, k: int = PRDC_K, coverage_threshold: float = COVERAGE_THRESHOLD
) -> dict:
    """The chosen metrics of fake vs real classifier logits (n, 10), by name (kid adds kid_std);
    always the class `histogram` (n_classes,) of the fakes, which the pictures use."""
    fake, real = _pair(real_logits, fake_logits, "scores")[::-1]
    unknown = sorted(set(metrics) - set(IMAGE_METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; allowed: {', '.join(IMAGE_METRICS)}")
    probs = softmax(fake)
    out: dict = {"histogram": class_histogram(probs)}
    if "fd" in metrics:
        out["fd"] = frechet_distance(*gaussian_stats(fake), *gaussian_stats(real))
    if "mnist_score" in metrics:
        out["mnist_score"] = mnist_score(probs)
    if "coverage" in metrics:
        out["coverage"] = int((out["histogram"] >= coverage_threshold).sum())
    if "kid" in metrics:
        out["kid"], out["kid_std"] = kernel_distance(real, fake)
    if any(m in metrics for m in PRDC_METRICS):  # one distance matrix serves all four
        out.update({m: v for m, v in prdc(real, fake, k).items() if m in metrics})
    return out


def class_scores(fake_logits, fake_labels, real_logits, real_labels, n_classes: int = N_CLASSES) -> dict[str, float]:
    """How well conditional fakes obey their labels (TF-GAN's conditional MNIST eval), by the
    classifier's logits (n, k) of fakes made for `fake_labels` (n,) and of labelled real digits:
      class_accuracy: fraction of fakes the classifier puts in their own class;
      class_xent: mean cross-entropy -log p(y | G(z, y)) (nats; 0 = certain and right);
      fd_intra: the mean over classes of the FD between the class's fakes and as many real
        digits of that class (the first of them; fewer if fewer are there). Classes with < 2
        fakes or < 2 real digits are left out; none left: ValueError."""
    fake, real = _finite_2d(fake_logits, "fake logits"), _finite_2d(real_logits, "real logits")
    y, real_y = np.asarray(fake_labels).reshape(-1), np.asarray(real_labels).reshape(-1)
    if len(y) != len(fake) or len(real_y) != len(real):
        raise ValueError(f"labels: {len(y)} for {len(fake)} fakes and {len(real_y)} for {len(real)} real digits")
    z = fake - fake.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # log softmax, stable
    per_class = []
    for c in range(n_classes):
        mine, theirs = fake[y == c], real[real_y == c]
        m = min(len(mine), len(theirs))
        if m >= 2:
            per_class.append(frechet_distance(*gaussian_stats(mine[:m]), *gaussian_stats(theirs[:m])))
    if not per_class:
        raise ValueError("fd_intra: no class has 2 fakes and 2 real digits")
    return {
        "class_accuracy": float(np.mean(fake.argmax(axis=1) == y)),
        "class_xent": float(-np.mean(log_p[np.arange(len(y)), y])),
        "fd_intra": float(np.mean(per_class)),
    }

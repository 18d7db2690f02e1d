"""Sample-quality numbers from a classifier's outputs: Frechet distance, MNIST score, class
coverage. Pure numpy/scipy on float64, no TensorFlow (gan_runner/classifier.py makes the
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
        raise ValueError(f"frechet_distance: shapes do not match: mu {mu1.shape} / {mu2.shape}, "
                         f"sigma {sigma1.shape} / {sigma2.shape}")
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


def coverage(probs_or_labels, threshold: float = COVERAGE_THRESHOLD, n_classes: int = N_CLASSES) -> tuple[int, np.ndarray]:
    """(how many classes get at least `threshold` of the samples, the class histogram (k,))."""
    histogram = class_histogram(probs_or_labels, n_classes)
    return int((histogram >= threshold).sum()), histogram

"""The conditional models' label conventions (numpy only, no TensorFlow): G's input is the noise
with the class one-hot joined to it, [z | one_hot(y)] (B, latent + K), so every caller that feeds
a generator a (B, width) float array (evaluation, sampling, the logged MLflow model) works for
both kinds of model. Evaluation draws its labels balanced: sample i has class i % K."""

from __future__ import annotations

import numpy as np


def eval_labels(n: int, num_classes: int) -> np.ndarray:
    """The classes of a run's n evaluation samples: 0, 1, ..., K-1, 0, 1, ... (n,) int."""
    return np.arange(n) % num_classes


def with_labels(z: np.ndarray, labels, num_classes: int) -> np.ndarray:
    """[z | one_hot(labels)]: (n, latent) noise and n labels in 0..K-1 -> (n, latent + K) float32."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    return np.concatenate([z, np.eye(num_classes, dtype=np.float32)[labels]], axis=1).astype(np.float32)


def relabel(inputs: np.ndarray, labels, num_classes: int) -> np.ndarray:
    """G inputs [z | one_hot(y)] with their one-hot part replaced by `labels` (the same z)."""
    return with_labels(inputs[:, : inputs.shape[1] - num_classes], labels, num_classes)


def parse(value: str, num_classes: int, key: str) -> list[int]:
    """`3`, `0..9` (inclusive) or `1,4,7` -> classes, each in 0..K-1; ValueError with one line."""
    text = str(value).strip()
    try:
        if ".." in text:
            lo, hi = (int(part) for part in text.split("..", 1))
            classes = list(range(lo, hi + 1))
        else:
            classes = [int(part) for part in text.split(",")]
    except ValueError:
        classes = []
    if not classes or any(not 0 <= c < num_classes for c in classes):
        raise ValueError(f"{key}={value}: expected classes in 0..{num_classes - 1} (e.g. {key}=3, 0..9 or 1,4,7)")
    return classes

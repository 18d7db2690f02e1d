"""Real data for the GANs, as float32 numpy arrays (N, ...). No TensorFlow."""

from __future__ import annotations

import numpy as np


class DataError(ValueError):
    """The data cannot be found or read; one line for the user."""


def load(data_cfg, seed: int) -> np.ndarray:
    loader = LOADERS.get(data_cfg.name)
    if loader is None:
        raise DataError(f"data: unknown choice '{data_cfg.name}'; known: {', '.join(sorted(LOADERS))}")
    return loader(data_cfg, seed)


def normal1d(data_cfg, seed: int) -> np.ndarray:
    """n samples of N(mean, std), shape (n, 1): the seed's np.random.normal(size=1000)."""
    rng = np.random.default_rng(seed)
    return rng.normal(data_cfg.mean, data_cfg.std, size=(data_cfg.n, 1)).astype(np.float32)


LOADERS = {"normal1d": normal1d}

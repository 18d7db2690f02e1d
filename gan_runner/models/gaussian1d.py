"""The note's 1-D GAN (SEED.md section 1): networks plus what to measure and draw."""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras
import numpy as np

from gan_runner import plots
from gan_runner.metrics import univariate
from gan_runner.models import spectral


def latent_dim(model_cfg) -> int:
    return int(model_cfg.noise_dim)


def build_generator(model_cfg) -> keras.Model:
    """z (B, noise_dim) ~ U(-1, 1) -> Dense(hidden, relu) -> Dense(1, linear) -> (B, 1)."""
    return keras.Sequential(
        [
            keras.Input((model_cfg.noise_dim,)),
            keras.layers.Dense(model_cfg.hidden, activation="relu"),
            keras.layers.Dense(1),
        ],
        name="generator",
    )


def build_discriminator(model_cfg, sample_shape: tuple[int, ...]) -> keras.Model:
    """x (B, 1) -> Dense(hidden, relu) -> Dense(1) logits (the seed's sigmoid is in the loss);
    model.d_spectral_norm: each Dense spectrally normalised (Miyato et al. 2018)."""
    sn = spectral.maybe(model_cfg)
    return keras.Sequential(
        [
            keras.Input(sample_shape),
            sn(keras.layers.Dense(model_cfg.hidden, activation="relu")),
            sn(keras.layers.Dense(1)),
        ],
        name="discriminator",
    )


def evaluate(generate: Callable[[int], np.ndarray], real: np.ndarray, cfg, step: int) -> dict[str, float]:
    """eval/* for one step. `generate(n)` returns n fakes (n, 1) from noise fixed by (seed, step)."""
    fake = generate(cfg.eval.n_fake)[:, 0].astype(np.float64)
    mean, std = cfg.data.mean, cfg.data.std
    seed_n = min(len(real), len(fake))  # the note compares 1000 real with 1000 fake
    ordered = np.sort(fake)  # once for the three below (the moments sum in the fakes' own order)
    out = {
        "eval/kl": univariate.histogram_kl(real[:, 0], fake[:seed_n], bins=cfg.eval.bins),
        "eval/kl_target": univariate.kl_to_normal(ordered, mean, std, bins=cfg.eval.bins),
        "eval/w1": univariate.w1_to_normal(ordered, mean, std),
        "eval/ks": univariate.ks_to_normal(ordered, mean, std),
    }
    out.update({f"eval/{k}": v for k, v in univariate.moments(fake).items()})
    return out


def reference_metrics(real: np.ndarray, cfg, rng: np.random.Generator) -> dict[str, float]:
    """What "as good as real" reads at these sample sizes, once per run: the same estimators
    applied to fresh samples of the target itself."""
    mean, std = cfg.data.mean, cfg.data.std
    other = rng.normal(mean, std, size=len(real))
    big = rng.normal(mean, std, size=cfg.eval.n_fake)
    return {
        "eval/kl_floor": univariate.histogram_kl(real[:, 0], other, bins=cfg.eval.bins),
        "eval/kl_target_floor": univariate.kl_to_normal(big, mean, std, bins=cfg.eval.bins),
    }


def pictures(generate: Callable[[int], np.ndarray], real: np.ndarray, cfg, step: int) -> dict:
    """The seed's KDE plot of real (blue) vs fake (red), as a function that draws it."""
    fake = generate(len(real))[:, 0]
    title = f"Distribution of real and fake data (step {step})"
    return {"kde": functools.partial(plots.kde_figure, real[:, 0], fake, title=title)}

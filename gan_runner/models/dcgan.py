"""The seed's DCGAN (SEED.md section 2, from Atienza's book): networks, image metrics, and the
sample grid. Layer sizes come from `model.*` (checked in config.py: equal list lengths, and
g_start x product(g_strides) = 28)."""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from gan_runner import metrics, plots


def latent_dim(model_cfg) -> int:
    return int(model_cfg.latent_dim)


def build_generator(model_cfg) -> keras.Model:
    """z (B, latent) ~ U(-1, 1) -> Dense(s*s*f0) -> (B, s, s, f0) -> per filter f, stride t:
    BatchNorm -> ReLU -> Conv2DTranspose(f, k, t, same) -> sigmoid: (B, 28, 28, 1) in [0, 1]."""
    start, first = int(model_cfg.g_start), int(model_cfg.g_filters[0])
    layers: list = [keras.Input((latent_dim(model_cfg),)),
                    keras.layers.Dense(start * start * first),
                    keras.layers.Reshape((start, start, first))]
    for filters, strides in zip(model_cfg.g_filters, model_cfg.g_strides):
        layers += [keras.layers.BatchNormalization(),
                   keras.layers.Activation("relu"),
                   keras.layers.Conv2DTranspose(int(filters), int(model_cfg.kernel_size), strides=int(strides), padding="same")]
    layers.append(keras.layers.Activation("sigmoid"))
    return keras.Sequential(layers, name="generator")


def build_discriminator(model_cfg, sample_shape: tuple[int, ...]) -> keras.Model:
    """x (B, 28, 28, 1) -> per filter f, stride t: LeakyReLU -> Conv2D(f, k, t, same) -> Flatten
    -> Dense(1) logits (B, 1): the seed's sigmoid is folded into the loss, as in gaussian1d."""
    layers: list = [keras.Input(tuple(sample_shape))]
    for filters, strides in zip(model_cfg.d_filters, model_cfg.d_strides):
        layers += [keras.layers.LeakyReLU(negative_slope=float(model_cfg.leaky_slope)),
                   keras.layers.Conv2D(int(filters), int(model_cfg.kernel_size), strides=int(strides), padding="same")]
    layers += [keras.layers.Flatten(), keras.layers.Dense(1)]
    return keras.Sequential(layers, name="discriminator")


def evaluate(generate: Callable[[int], np.ndarray], real: np.ndarray, cfg, step: int) -> dict[str, float]:
    """Cheap image statistics of eval.n_fake fakes against as many real images (no Inception
    net offline, so no FID): pixel-intensity KL, distance of the mean images, and diversity
    (mean per-pixel std of the fakes over that of the reals: ~0 when G collapses to one image)."""
    fake = generate(cfg.eval.n_fake).astype(np.float64)  # (n, 28, 28, 1)
    ref = real[:cfg.eval.n_fake].astype(np.float64)
    return {
        "eval/pixel_kl": metrics.histogram_kl(ref.ravel(), fake.ravel(), bins=cfg.eval.bins),
        "eval/mean_image_rmse": float(np.sqrt(np.mean((ref.mean(0) - fake.mean(0)) ** 2))),
        "eval/diversity": float(fake.std(0).mean() / max(ref.std(0).mean(), 1e-8)),
    }


def pictures(generate: Callable[[int], np.ndarray], real: np.ndarray, cfg, step: int) -> dict:
    """The seed's 4x4 grid: the same model.grid_rows x grid_cols noise vectors at every call
    (generate(n) uses noise fixed for the run), as one uint8 image."""
    rows, cols = int(cfg.model.grid_rows), int(cfg.model.grid_cols)
    return {"samples": plots.image_grid(generate(rows * cols), rows, cols)}

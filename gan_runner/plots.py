"""Pictures: seaborn figures for the 1-D GAN, uint8 grids for image GANs. No TensorFlow."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402


def kde_figure(real: np.ndarray, fake: np.ndarray, title: str, bw_adjust: float = 0.3) -> plt.Figure:
    """The seed's picture: KDE of real (blue) and fake (red). The note's `bw=0.3` is gone from
    seaborn 0.13; `bw_adjust` scales the default bandwidth instead."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    sns.kdeplot(
        x=np.asarray(real, np.float64), bw_adjust=bw_adjust, color="blue", label="real", ax=ax, warn_singular=False
    )
    sns.kdeplot(
        x=np.asarray(fake, np.float64), bw_adjust=bw_adjust, color="red", label="fake", ax=ax, warn_singular=False
    )
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """(n, H, W, C) floats in [0, 1] -> one (rows*(H+pad)+pad, cols*(W+pad)+pad[, C]) uint8 image."""
    images = np.clip(np.nan_to_num(np.asarray(images, np.float32)), 0.0, 1.0)
    n, h, w, c = images.shape
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    grid = np.round(grid * 255).astype(np.uint8)
    return grid[..., 0] if c == 1 else grid


def class_histogram_figure(histogram: np.ndarray, threshold: float, title: str) -> plt.Figure:
    """Bar per digit class (fraction of the fakes the classifier puts there) and the coverage
    threshold as a dashed line: mode collapse at a glance."""
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    sns.barplot(
        x=np.arange(len(histogram)), y=np.asarray(histogram, np.float64), native_scale=True, color="steelblue", ax=ax
    )
    ax.set_xticks(np.arange(len(histogram)))
    ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"coverage threshold {threshold:g}")
    ax.set(xlabel="digit class", ylabel="fraction of fakes", title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def close(fig: plt.Figure) -> None:
    plt.close(fig)

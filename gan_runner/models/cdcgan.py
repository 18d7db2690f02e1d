"""The class-conditional DCGAN (model=cdcgan, issue 16): the seed's DCGAN networks
(gan_runner/models/dcgan.py) with the class y given to both, trained by the same step
(models/gan.py; num_classes > 0 there). G(z, y) takes [z | one_hot(y)] (gan_runner/labels.py).
D by model.cond, on the DCGAN's convolutional trunk phi(x) (flattened):
  projection  D(x, y) = psi(phi(x)) + <embed(y), phi(x)>  (Miyato & Koyama 2018, eq. 3)
  concat      D(x, y) = D_dcgan([x | one_hot(y) as K constant maps])  (Mirza & Osindero 2014)
  acgan       D(x) -> (psi(phi(x)), class logits (K,))  (Odena et al. 2017)
Judged like the DCGAN (the digit classifier's FD, MNIST score, coverage, ...) on fakes with
balanced labels, plus eval/class_accuracy, class_xent and fd_intra (metrics/image.class_scores)."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import keras
import numpy as np

from gan_runner import labels as labels_mod
from gan_runner import plots
from gan_runner.metrics import classifier
from gan_runner.metrics.image import N_CLASSES
from gan_runner.models import dcgan, spectral
from gan_runner.models.dcgan import prepare, reference_metrics  # noqa: F401  (the DCGAN's judge and floors)


def latent_dim(model_cfg) -> int:
    return int(model_cfg.latent_dim)


def num_classes(model_cfg) -> int:
    return N_CLASSES  # MNIST's and Fashion-MNIST's ten classes


def build_generator(model_cfg) -> keras.Model:
    """[z | one_hot(y)] (B, latent + K) -> the DCGAN's G -> (B, 28, 28, 1) in [0, 1]."""
    return dcgan.build_generator(model_cfg, latent_dim(model_cfg) + num_classes(model_cfg))


def build_discriminator(model_cfg, sample_shape: tuple[int, ...]) -> keras.Model:
    """By model.cond (module docstring; with model.d_spectral_norm every weight layer, the
    projection's class embedding too, is spectrally normalised): inputs [x (B, 28, 28, 1), y (B,) int32] -> logits
    (B, 1); acgan: x -> [logits (B, 1), class logits (B, K)]."""
    sn, k = spectral.maybe(model_cfg), num_classes(model_cfg)
    x = keras.Input(tuple(sample_shape), name="x")
    y = keras.Input((), dtype="int32", name="y")
    h = x
    if model_cfg.cond == "concat":  # one_hot(y) (B, K) -> K constant maps (B, H, W, K) beside x's channels
        maps = keras.layers.CategoryEncoding(k, output_mode="one_hot")(y)
        maps = keras.layers.UpSampling2D(tuple(sample_shape[:2]))(keras.layers.Reshape((1, 1, k))(maps))
        h = keras.layers.Concatenate()([x, maps])
    for layer in dcgan.d_trunk(model_cfg):
        h = layer(h)
    phi = keras.layers.Flatten()(h)  # (B, features)
    logits = sn(keras.layers.Dense(1))(phi)  # psi(phi(x))
    if model_cfg.cond == "acgan":
        return keras.Model(x, [logits, sn(keras.layers.Dense(k))(phi)], name="discriminator")
    if model_cfg.cond == "projection":  # + <embed(y), phi(x)>
        # embed(y) as one_hot(y) @ V (K, features), i.e. an embedding lookup: Keras 3.15's
        # SpectralNormalization casts an Embedding's output to the int labels' dtype (no gradient).
        one_hot = keras.layers.CategoryEncoding(k, output_mode="one_hot")(y)
        embedded = sn(keras.layers.Dense(int(phi.shape[-1]), use_bias=False, name="embed"))(one_hot)  # (B, features)
        logits = keras.layers.Add()([logits, keras.layers.Dot(axes=1)([embedded, phi])])
    return keras.Model([x, y], logits, name="discriminator")


# ---- judging: does G obey the label? ------------------------------------------------------------


def evaluate(generate: Callable, real: np.ndarray, cfg, step: int) -> dict[str, float]:
    """The DCGAN's eval/* on eval.n_fake fakes with balanced labels (i % K, fixed noise), plus
    eval/class_accuracy, eval/class_xent and eval/fd_intra against those labels."""
    n = int(cfg.eval.n_fake)
    wanted = labels_mod.eval_labels(n, num_classes(cfg.model))
    scores = prepare(cfg).scores(generate(n), *classifier.chosen_metrics(cfg.eval), labels=wanted)
    dcgan._LAST_HISTOGRAM.update(
        owner=weakref.ref(dcgan._owner(generate)), step=step, histogram=scores.pop("histogram")
    )
    return {f"eval/{name}": float(value) for name, value in scores.items()}


def class_grid(generate: Callable, k: int, cols: int) -> np.ndarray:
    """Row c: G(z_j, c) for the run's fixed evaluation noise z_1..z_cols: (k * cols, 28, 28, 1)."""
    return np.concatenate([generate(cols, np.full(cols, c)) for c in range(k)])


def pictures(generate: Callable, real: np.ndarray, cfg, step: int) -> dict:
    """The sample grid, one row per class (the same z down each column: a row that obeys shows
    one class, a column one style), as one uint8 image; and the DCGAN's class histogram."""
    k, cols = num_classes(cfg.model), int(cfg.model.grid_cols)
    return {
        "samples": plots.image_grid(class_grid(generate, k, cols), k, cols),
        "classes": dcgan.class_figure(generate, cfg, step),
    }

"""The seed's DCGAN (SEED.md section 2, from Atienza's book): networks, sample-quality metrics
from a digit classifier (FD, MNIST score, coverage), the sample grid and the class histogram.
Layer sizes come from `model.*` (checked in config.py: equal list lengths, and
g_start x product(g_strides) = 28)."""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Callable

import keras
import numpy as np
from omegaconf import OmegaConf

from gan_runner import plots
from gan_runner.metrics import classifier
from gan_runner.models import spectral


def latent_dim(model_cfg) -> int:
    return int(model_cfg.latent_dim)


def build_generator(model_cfg, input_dim: int | None = None) -> keras.Model:
    """z (B, latent) ~ U(-1, 1) (or cdcgan's [z | one_hot(y)], input_dim wide) -> Dense(s*s*f0) -> (B, s, s, f0) -> per filter f, stride t:
    BatchNorm -> ReLU -> Conv2DTranspose(f, k, t, same) -> sigmoid: (B, 28, 28, 1) in [0, 1]."""
    start, first = int(model_cfg.g_start), int(model_cfg.g_filters[0])
    layers: list = [
        keras.Input((input_dim or latent_dim(model_cfg),)),
        keras.layers.Dense(start * start * first),
        keras.layers.Reshape((start, start, first)),
    ]
    for filters, strides in zip(model_cfg.g_filters, model_cfg.g_strides):
        layers += [
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Conv2DTranspose(
                int(filters), int(model_cfg.kernel_size), strides=int(strides), padding="same"
            ),
        ]
    layers.append(keras.layers.Activation("sigmoid"))
    return keras.Sequential(layers, name="generator")


def build_discriminator(model_cfg, sample_shape: tuple[int, ...]) -> keras.Model:
    """x (B, 28, 28, 1) -> per filter f, stride t: LeakyReLU -> Conv2D(f, k, t, same) -> Flatten
    -> Dense(1) logits (B, 1): the seed's sigmoid is folded into the loss, as in gaussian1d.
    model.d_spectral_norm: every Conv2D and the Dense spectrally normalised (SNGAN)."""
    sn = spectral.maybe(model_cfg)
    layers: list = [keras.Input(tuple(sample_shape)), *d_trunk(model_cfg)]
    layers += [keras.layers.Flatten(), sn(keras.layers.Dense(1))]
    return keras.Sequential(layers, name="discriminator")


def d_trunk(model_cfg) -> list:
    """D's convolutions: per filter f, stride t: LeakyReLU -> Conv2D(f, k, t, same) (spectrally
    normalised with model.d_spectral_norm)."""
    sn, layers = spectral.maybe(model_cfg), []
    for filters, strides in zip(model_cfg.d_filters, model_cfg.d_strides):
        layers += [
            keras.layers.LeakyReLU(negative_slope=float(model_cfg.leaky_slope)),
            sn(keras.layers.Conv2D(int(filters), int(model_cfg.kernel_size), strides=int(strides), padding="same")),
        ]
    return layers


# ---- judging the digits (gan_runner/classifier.py, gan_runner/image_metrics.py) ---------------

_JUDGES: dict[str, classifier.Judge] = {}  # one per data + classifier config in this process
_LAST_HISTOGRAM: dict = {}  # the latest evaluation's class histogram, for pictures() at that step


def prepare(cfg) -> classifier.Judge:
    """The run's judge (digit classifier + reference digits), loaded from the cache or trained
    once per process before the run starts; a too large eval.n_fake or missing labels fail here
    with one line, before any MLflow run exists."""
    key = json.dumps(
        [
            cfg.data.name,
            cfg.data.path,
            OmegaConf.to_container(cfg.eval.classifier, resolve=True),
            cfg.eval.coverage_threshold,
        ],
        sort_keys=True,
        default=str,
    )
    if key not in _JUDGES:
        _JUDGES[key] = classifier.judge_for(cfg.data, cfg.eval)
    judge = _JUDGES[key]
    judge.check_n(int(cfg.eval.n_fake))
    return judge


def reference_metrics(real: np.ndarray, cfg, rng: np.random.Generator) -> dict[str, float]:
    """Once per run (step 0): eval/fd_floor, the FD between two disjoint sets of eval.n_fake real
    reference digits (what "as good as real" reads at this N; likewise eval/kid_floor,
    precision_floor, ... for the chosen eval.metrics), and the classifier's held-out
    accuracy on the reference digits. Deterministic: the split is fixed, `rng` is not needed."""
    judge = prepare(cfg)
    n = int(cfg.eval.n_fake)
    floors = judge.floors(n, *classifier.chosen_metrics(cfg.eval))
    return {
        **{f"eval/{name}": value for name, value in floors.items()},
        "classifier/accuracy": judge.accuracy,
        "classifier/n_train": float(len(judge.split.train.labels)),
        "classifier/n_reference": float(judge.n_reference),
        "classifier/cached": float(not judge.classifier.trained),
        "classifier/train_s": judge.classifier.train_s,
    }


def evaluate(generate: Callable[[int], np.ndarray], real: np.ndarray, cfg, step: int) -> dict[str, float]:
    """eval.n_fake fakes (fixed noise) against as many reference digits, through the classifier:
    eval/fd (logits' Frechet distance; lower is better, eval/fd_floor is real vs real),
    eval/mnist_score (1 = one class ... 10 = ten confident classes), eval/coverage (classes
    with >= eval.coverage_threshold of the fakes; below 10 = modes missing), eval/kid (+ kid_std)
    and Naeem et al.'s eval/precision, recall, density, coverage_nn: those in eval.metrics."""
    scores = prepare(cfg).scores(generate(int(cfg.eval.n_fake)), *classifier.chosen_metrics(cfg.eval))
    _LAST_HISTOGRAM.update(owner=weakref.ref(_owner(generate)), step=step, histogram=scores.pop("histogram"))
    return {f"eval/{name}": float(value) for name, value in scores.items()}


def _owner(generate):
    return getattr(generate, "__self__", generate)  # the Trainer behind a bound method


def pictures(generate: Callable[[int], np.ndarray], real: np.ndarray, cfg, step: int) -> dict:
    """The seed's 4x4 grid: the same model.grid_rows x grid_cols noise vectors at every call
    (generate(n) uses noise fixed for the run), as one uint8 image; and the class histogram of
    the eval.n_fake fakes as a bar chart (the evaluation's at this step, else computed)."""
    rows, cols = int(cfg.model.grid_rows), int(cfg.model.grid_cols)
    return {
        "samples": plots.image_grid(generate(rows * cols), rows, cols),
        "classes": class_figure(generate, cfg, step),
    }


def class_figure(generate: Callable[[int], np.ndarray], cfg, step: int):
    """The class histogram of the eval.n_fake fakes as a bar chart (the evaluation's at this
    step, else computed), as a function that draws it."""
    last = _LAST_HISTOGRAM
    if last.get("step") == step and last["owner"]() is _owner(generate):
        histogram = last["histogram"]
    else:
        histogram = prepare(cfg).scores(generate(int(cfg.eval.n_fake)), [])["histogram"]
    threshold = float(cfg.eval.coverage_threshold)
    return functools.partial(
        plots.class_histogram_figure,
        histogram,
        threshold,
        f"Digit classes of {cfg.eval.n_fake} fakes (step {step}); coverage {int((histogram >= threshold).sum())}/10",
    )

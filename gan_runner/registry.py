"""Name -> model. The config group `conf/model/` is the user-facing registry; this dict is the
code side, and a test checks that the two agree.

Entries name a module path, imported only when training starts (the modules import
TensorFlow, which the config check must not wait for). Each model module provides:

    build_generator(model_cfg) -> keras.Model        # (B, latent) -> sample
    build_discriminator(model_cfg, sample_shape) -> keras.Model   # sample -> (B, 1) logits
    latent_dim(model_cfg) -> int
    evaluate(generate, real, cfg, step) -> dict[str, float]     # eval/* metrics
    pictures(generate, real, cfg, step) -> dict[str, figure or uint8 image]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class ModelEntry:
    module: str
    data_kind: str  # the kind of data the model consumes


MODELS: dict[str, ModelEntry] = {
    "gaussian1d": ModelEntry("gan_runner.models.gaussian1d", "vector1d"),
    "dcgan": ModelEntry("gan_runner.models.dcgan", "image"),
    "dcgan_mnist": ModelEntry("gan_runner.models.dcgan", "image"),  # conf/model/dcgan_mnist.yaml = dcgan
}

DATA_KINDS: dict[str, str] = {
    "normal1d": "vector1d",
    "mnist": "image",
    "fashion_mnist": "image",
}


def known_models() -> list[str]:
    return sorted(MODELS)


def data_for(kind: str) -> list[str]:
    return sorted(name for name, k in DATA_KINDS.items() if k == kind)


def get_model(name: str) -> ModuleType:
    """The model's module; unknown names fail with the list of known ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(known_models())}")
    return importlib.import_module(MODELS[name].module)

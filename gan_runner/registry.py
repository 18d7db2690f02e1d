"""Name -> model, name -> data: one table each. The config groups `conf/model/` and `conf/data/`
are the user-facing registry; these tables are the code side (a test checks that they agree).
An entry holds all the code needs to know of the name: the builder module, the kind of data,
the schema of its config section (config/schema.py; the validation rules per name are in
config/checks.py, MODEL_CHECKS and DATA_CHECKS, keyed by the same names).

Entries name a module path, imported only when training starts (the modules import
TensorFlow, which the config check must not wait for). Each model module provides:

    build_generator(model_cfg) -> keras.Model        # (B, latent) -> sample
    build_discriminator(model_cfg, sample_shape) -> keras.Model   # sample -> (B, 1) logits
    latent_dim(model_cfg) -> int                     # z's width (G's input adds K one-hot columns
    num_classes(model_cfg) -> int                    #   when the module has num_classes: conditional)
    evaluate(generate, real, cfg, step) -> dict[str, float]     # eval/* metrics
    pictures(generate, real, cfg, step) -> dict[str, uint8 image or figure]  # a figure as a
        # function that draws it: the trainer draws it on its host thread, off the training one
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from gan_runner.config.schema import CdcganModel, DcganModel, Gaussian1dModel, ImageData, Normal1dData


@dataclass(frozen=True)
class ModelEntry:
    module: str
    data_kind: str  # the kind of data the model consumes
    schema: type  # the dataclass of the model.* section
    alias_of: str | None = None  # another name for that model (a conf/model/ file only; never model.name)
    conditional: bool = False  # G(z, y), D(x, y): trains on the data's labels (gan_runner/models/gan.py)


@dataclass(frozen=True)
class DataEntry:
    kind: str
    schema: type  # the dataclass of the data.* section


MODELS: dict[str, ModelEntry] = {
    "gaussian1d": ModelEntry("gan_runner.models.gaussian1d", "vector1d", Gaussian1dModel),
    "dcgan": ModelEntry("gan_runner.models.dcgan", "image", DcganModel),
    "dcgan_mnist": ModelEntry("gan_runner.models.dcgan", "image", DcganModel, alias_of="dcgan"),
    "cdcgan": ModelEntry("gan_runner.models.cdcgan", "image", CdcganModel, conditional=True),
    "cdcgan_mnist": ModelEntry("gan_runner.models.cdcgan", "image", CdcganModel, alias_of="cdcgan", conditional=True),
}

DATA: dict[str, DataEntry] = {
    "normal1d": DataEntry("vector1d", Normal1dData),
    "mnist": DataEntry("image", ImageData),
    "fashion_mnist": DataEntry("image", ImageData),
}
DATA_KINDS: dict[str, str] = {name: entry.kind for name, entry in DATA.items()}  # a view of DATA


def known_models() -> list[str]:
    return sorted(MODELS)


def data_for(kind: str) -> list[str]:
    return sorted(name for name, k in DATA_KINDS.items() if k == kind)


def get_model(name: str) -> ModuleType:
    """The model's module; unknown names fail with the list of known ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(known_models())}")
    return importlib.import_module(MODELS[name].module)

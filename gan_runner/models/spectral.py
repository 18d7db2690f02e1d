"""model.d_spectral_norm (Miyato et al. 2018; StudioGAN's MODEL.apply_d_sn) for both models' D."""

from __future__ import annotations

import keras


def maybe(model_cfg):
    """A wrapper for D's weight layers: Keras 3's SpectralNormalization (one power iteration per
    training call, as SNGAN) when model.d_spectral_norm, else the layer unchanged."""
    if model_cfg.get("d_spectral_norm"):
        return lambda layer: keras.layers.SpectralNormalization(layer, power_iterations=1)
    return lambda layer: layer

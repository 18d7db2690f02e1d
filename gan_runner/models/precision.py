"""trainer.precision: Keras 3 mixed precision for G and D.

The choices are config/checks.py's PRECISIONS. `float32` changes nothing. `mixed_float16` / `mixed_bfloat16` build G and D under that Keras
dtype policy (float32 variables, half-precision compute), with each network's final layer back
in float32, so D's logits, G's samples, the losses and every logged number stay float32.
float16 needs loss scaling (its range ends at 65504 and underflows below ~6e-8): each optimizer
is wrapped in keras.optimizers.LossScaleOptimizer (dynamic scale; its scale and counter are
optimizer variables, so checkpoints carry them). bfloat16 has float32's range: no scaling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


@contextlib.contextmanager
def policy(name: str) -> Iterator[None]:
    """Layers built inside take the `name` policy; the global policy is restored after, so
    nothing built later (the evaluation classifier) changes."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_output(model: keras.Model) -> keras.Model:
    """The layers that make the model's outputs (every head of a multi-output D; and the layer
    each wraps, e.g. SpectralNormalization's Dense) compute in float32: their half-precision
    input is cast up on the way in. Their variables are float32 under every mixed policy
    already, so only the compute dtype changes."""
    for output in model.outputs:
        layer = output._keras_history[0]  # the layer that made this output
        while layer is not None:
            if layer.dtype_policy.name != "float32":
                layer.dtype_policy = "float32"
            layer = getattr(layer, "layer", None)
    return model


def optimizer(opt: keras.optimizers.Optimizer, name: str) -> keras.optimizers.Optimizer:
    """The optimizer a network trains with under `name`: loss-scaled for float16."""
    return keras.optimizers.LossScaleOptimizer(opt) if name == "mixed_float16" else opt

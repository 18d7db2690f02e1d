"""An exponential moving average of the generator's weights (Yazici et al. 2019; StudioGAN's
`apply_g_ema`, Karras et al.'s G_ema): evaluated, sampled and saved instead of the raw G."""

from __future__ import annotations

import keras
import tensorflow as tf


def update(ema: keras.Model, model: keras.Model, decay) -> None:
    """ema_w <- decay * ema_w + (1 - decay) * w for the trainable weights; the non-trainable ones
    (BatchNorm's moving statistics) are copied, as StudioGAN copies buffers. decay = 0: a copy.
    In-graph (decay may be a tensor)."""
    decay = tf.cast(decay, tf.float32)
    for averaged, weight in zip(ema.trainable_weights, model.trainable_weights):
        averaged.assign(decay * averaged.value + (1.0 - decay) * weight.value)
    for copied, weight in zip(ema.non_trainable_weights, model.non_trainable_weights):
        copied.assign(weight.value)


def decay_at(step, decay: float, start_step: int):
    """The decay of the update after G update number `step` (0-based): 0 (a copy of G) before
    ema.start_step, so early weights far from the final ones are not averaged in."""
    return tf.where(step >= start_step, tf.constant(decay, tf.float32), tf.constant(0.0, tf.float32))

"""The adversarial training step, shared by every model.

One step = one D update on real + fake (BCE, targets labels.real / labels.fake), then one
G update through D (target labels.real). The loop over steps runs inside a `tf.function`
(`run_steps`), so the Python cost is paid once per chunk, not once per step.

Everything a step depends on lives in TensorFlow variables: the networks, both optimizers,
`step` (which fixes the position in a sequential pass over the data) and `rng` (a
`tf.random.Generator` that draws noise and random batch indices). Saving these and restoring
them continues a run bit for bit.

D outputs logits (its sigmoid folded into the loss with from_logits=True: the same model as the
seed's Dense(1, sigmoid) + BCE, numerically safer). The fakes that D trains on and the fakes G
is trained through both come from G in training mode, so BatchNorm sees one mode (the seed's
`predict()` ran it in inference mode for D's fakes; SEED.md 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class StepConfig:
    latent_dim: int
    batch_size: int
    order: str = "random"  # random | sequential
    reuse_noise: bool = False  # G update reuses the D update's noise (the 1-D seed)
    real_label: float = 1.0
    fake_label: float = 0.0
    update: str = "alternating"  # alternating | simultaneous


def sequential_bounds(n: int, batch_size: int) -> np.ndarray:
    """Start/end of each mini-batch when walking n samples in order, as the seed does: n //
    batch_size blocks of batch_size, the last one taking the remainder (1000 by 333 -> 333,
    333, 334). Shape (blocks, 2)."""
    blocks = max(1, n // batch_size)
    starts = np.arange(blocks, dtype=np.int64) * batch_size
    ends = np.append(starts[1:], n)
    return np.stack([starts, ends], axis=1)


class GanStep:
    """Owns G, D, their optimizers, the step counter and the training RNG."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model,
                 d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer,
                 real_data: np.ndarray, config: StepConfig, seed: int):
        if d_optimizer is g_optimizer:
            raise ValueError("D and G need separate optimizer instances")
        self.generator, self.discriminator = generator, discriminator
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.config = config
        self.real = tf.constant(real_data)  # (N, ...) kept in memory; batches are gathered in-graph
        self.n_real = int(real_data.shape[0])
        self.bounds = tf.constant(sequential_bounds(self.n_real, config.batch_size))
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = tf.random.Generator.from_seed(seed)
        d_optimizer.build(discriminator.trainable_variables)
        g_optimizer.build(generator.trainable_variables)
        self._run_steps_graph = tf.function(self._run_steps, autograph=False)  # the loop is written out below
        # One trace for every batch size: the batch dimension is left open.
        self.generate = tf.function(lambda z: generator(z, training=False),
                                    input_signature=[tf.TensorSpec((None, config.latent_dim), tf.float32)])

    # ---- pieces of a step (each usable on its own; tests call them) -------------------------

    def noise(self, n) -> tf.Tensor:
        return self.rng.uniform((n, self.config.latent_dim), -1.0, 1.0)  # (n, latent)

    def real_batch(self) -> tf.Tensor:
        if self.config.order == "sequential":
            start_end = self.bounds[self.step % tf.shape(self.bounds, out_type=tf.int64)[0]]
            return self.real[start_end[0]:start_end[1]]
        idx = self.rng.uniform((self.config.batch_size,), 0, self.n_real, dtype=tf.int64)
        return tf.gather(self.real, idx)

    @staticmethod
    def _bce(logits, targets):
        """Mean binary cross-entropy on logits; `targets` is a tensor like logits or a float."""
        targets = tf.broadcast_to(tf.cast(targets, logits.dtype), tf.shape(logits))
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))

    def d_update(self, real, noise):
        """One D update on real + G(noise). Returns (loss, accuracy at 0.5)."""
        fake = self.generator(noise, training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            loss = self._d_loss(real_logits, fake_logits)
        grads = tape.gradient(loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return loss, self._d_accuracy(real_logits, fake_logits)

    def g_update(self, noise):
        """One G update through D (D's weights untouched). Returns (loss, fraction called real)."""
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(noise, training=True), training=True)
            loss = self._bce(fake_logits, self.config.real_label)
        grads = tape.gradient(loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return loss, tf.reduce_mean(tf.cast(fake_logits > 0, tf.float32))

    def simultaneous_update(self, real, noise):
        """D and G from one shared G forward (saves the second G pass; not the seed's algorithm)."""
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake = self.generator(noise, training=True)
            logits = self.discriminator(tf.concat([real, fake], axis=0), training=True)  # (2B, 1)
            real_logits, fake_logits = logits[:tf.shape(real)[0]], logits[tf.shape(real)[0]:]
            d_loss = self._d_loss(real_logits, fake_logits)
            g_loss = self._bce(fake_logits, self.config.real_label)
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables
        d_grads, g_grads = d_tape.gradient(d_loss, d_vars), g_tape.gradient(g_loss, g_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        g_acc = tf.reduce_mean(tf.cast(fake_logits > 0, tf.float32))
        return d_loss, self._d_accuracy(real_logits, fake_logits), g_loss, g_acc

    def _d_loss(self, real_logits, fake_logits):
        # One BCE over the concatenated 2B batch, like the seed's train_on_batch(concat(real, fake)).
        logits = tf.concat([real_logits, fake_logits], axis=0)
        targets = tf.concat([tf.fill(tf.shape(real_logits), self.config.real_label),
                             tf.fill(tf.shape(fake_logits), self.config.fake_label)], axis=0)
        return self._bce(logits, targets)

    @staticmethod
    def _d_accuracy(real_logits, fake_logits):
        correct = tf.concat([real_logits > 0, fake_logits <= 0], axis=0)
        return tf.reduce_mean(tf.cast(correct, tf.float32))

    # ---- the compiled loop --------------------------------------------------------------------

    def one_step(self):
        real = self.real_batch()
        batch = tf.shape(real)[0]
        noise = self.noise(batch)
        if self.config.update == "simultaneous":
            d_loss, d_acc, g_loss, g_acc = self.simultaneous_update(real, noise)
        else:
            d_loss, d_acc = self.d_update(real, noise)
            g_noise = noise if self.config.reuse_noise else self.noise(batch)
            g_loss, g_acc = self.g_update(g_noise)
        self.step.assign_add(1)
        return {"d_loss": d_loss, "d_acc": d_acc, "g_loss": g_loss, "g_acc": g_acc}

    def run_steps(self, n_steps: int) -> dict[str, tf.Tensor]:
        """Run n_steps steps in-graph (traced once: n_steps goes in as a tensor)."""
        return self._run_steps_graph(tf.constant(n_steps, tf.int64))

    def _run_steps(self, n_steps):
        """Run n_steps steps in-graph; returns the metrics of the last one. Stops right after a
        step whose loss is NaN/inf, so `step` then names the step that diverged. Written as a
        tf.while_loop: the step has no Python control flow on tensors, and AutoGraph would
        rewrite it and every Keras call below it (~1 s of the 1-D run's tracing) for nothing."""
        names = ("d_loss", "d_acc", "g_loss", "g_acc")

        def go_on(i, *metrics):
            finite = tf.math.is_finite(metrics[0] + metrics[2])
            return tf.logical_and(i < n_steps, finite)

        def body(i, *_):
            metrics = self.one_step()
            return (i + 1, *(metrics[k] for k in names))

        zero = tf.constant(0.0)
        _, *last = tf.while_loop(go_on, body, (tf.constant(0, tf.int64), *(zero for _ in names)))
        return dict(zip(names, last))

    def state_variables(self) -> dict:
        """Every variable a step reads or writes, by a stable name: what a checkpoint holds.
        Positional names, since Keras' layer names depend on how many layers were built before."""
        groups = {"generator": self.generator.weights, "discriminator": self.discriminator.weights,
                  "d_optimizer": self.d_optimizer.variables, "g_optimizer": self.g_optimizer.variables}
        out = {f"{group}.{i}": var for group, variables in groups.items() for i, var in enumerate(variables)}
        out.update({"step": self.step, "rng": self.rng.state})
        return out

    def learning_rates(self) -> dict[str, float]:
        """The rates the optimizers use at their current iteration (after any schedule)."""
        return {"lr_d": float(self.d_optimizer.learning_rate.numpy()),
                "lr_g": float(self.g_optimizer.learning_rate.numpy())}

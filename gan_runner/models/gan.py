"""The adversarial training step, shared by every model.

One step = trainer.d_steps D updates on real + fake (the `loss` group's D loss, plus the
`penalty`), then one G update through D (the loss's G loss), then the EMA of G's weights when
ema.decay is set. `step` counts G updates. The default (loss=ns, d_steps 1, no penalty, no EMA)
is the seed's: BCE against labels.real / labels.fake. The loop over steps runs inside a `tf.function`
(`run_steps`), so the Python cost is paid once per chunk, not once per step.

A class-conditional model (StepConfig.num_classes > 0, model=cdcgan) uses the same step: each
real batch carries its labels y, each fake its label drawn uniformly from the one training RNG
(after the noise it goes with), G's input is [z | one_hot(y)] (gan_runner/labels.py) and D is
called as D(x, y) (or D(x) -> (logits, class logits) with an auxiliary class head: AC-GAN, whose
class cross-entropy, times class_loss_weight, joins D's loss on real and G's loss on fakes).

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

from gan_runner.models import ema, losses

METRICS = ("d_loss", "d_acc", "g_loss", "g_acc")  # + d_penalty when a penalty is on


@dataclass(frozen=True)
class StepConfig:
    latent_dim: int
    batch_size: int
    order: str = "random"  # random | sequential
    reuse_noise: bool = False  # G update reuses the D update's noise (the 1-D seed)
    real_label: float = 1.0
    fake_label: float = 0.0
    update: str = "alternating"  # alternating | simultaneous
    loss: str = "ns"  # losses.LOSSES
    penalty: str = "none"  # losses.PENALTIES
    penalty_weight: float = 0.0  # gp: lambda; r1: gamma
    d_steps: int = 1  # D updates per G update (WGAN's n_critic)
    ema_decay: float | None = None  # None: no EMA generator
    ema_start: int = 0  # G updates before which the EMA is a plain copy
    num_classes: int = 0  # > 0: class-conditional (real labels needed; fake labels drawn uniformly)
    class_loss_weight: float = 0.0  # D with a class head (acgan): weight of its cross-entropy
    jit_compile: bool = False  # XLA-compile the loop of steps (run_steps)


def sequential_bounds(n: int, batch_size: int) -> np.ndarray:
    """Start/end of each mini-batch when walking n samples in order, as the seed does: n //
    batch_size blocks of batch_size, the last one taking the remainder (1000 by 333 -> 333,
    333, 334). Shape (blocks, 2)."""
    blocks = max(1, n // batch_size)
    starts = np.arange(blocks, dtype=np.int64) * batch_size
    ends = np.append(starts[1:], n)
    return np.stack([starts, ends], axis=1)


class GanStep:
    """Owns G, D, their optimizers, the step counter, the training RNG and the EMA of G."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        d_optimizer: keras.optimizers.Optimizer,
        g_optimizer: keras.optimizers.Optimizer,
        real_data: np.ndarray,
        config: StepConfig,
        seed: int,
        ema_generator: keras.Model | None = None,
        real_labels: np.ndarray | None = None,
    ):
        if d_optimizer is g_optimizer:
            raise ValueError("D and G need separate optimizer instances")
        self.generator, self.discriminator = generator, discriminator
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.config = config
        self.d_loss_fn, self.g_loss_fn = losses.PAIRS[config.loss]
        # Built like G by the caller (same architecture), starting from G's weights.
        self.ema_generator = ema_generator if config.ema_decay is not None else None
        if self.ema_generator is not None:
            self.ema_generator.set_weights(generator.get_weights())
        self.real = tf.constant(real_data)  # (N, ...) kept in memory; batches are gathered in-graph
        self.n_real = int(real_data.shape[0])
        self.conditional = config.num_classes > 0
        if self.conditional and (real_labels is None or len(real_labels) != self.n_real):
            raise ValueError("a conditional model needs one label per real sample")
        self.real_labels = tf.constant(np.asarray(real_labels, np.int32)) if self.conditional else None  # (N,)
        self.class_head = len(discriminator.outputs) == 2  # D(x) -> (logits, class logits): AC-GAN
        self.bounds = tf.constant(sequential_bounds(self.n_real, config.batch_size))
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = tf.random.Generator.from_seed(seed)
        d_optimizer.build(discriminator.trainable_variables)
        g_optimizer.build(generator.trainable_variables)
        self._run_steps_graph = tf.function(  # the loop is written out below
            self._run_steps, autograph=False, jit_compile=config.jit_compile
        )
        # One trace for every batch size: the batch dimension is left open. `generate` is the
        # generator that evaluation, pictures and saved weights use: the EMA one when on.
        spec = [tf.TensorSpec((None, generator.input_shape[-1]), tf.float32)]  # latent (+ K one-hot)
        self.generate_raw = tf.function(lambda z: generator(z, training=False), input_signature=spec)
        self.generate = (
            self.generate_raw
            if self.ema_generator is None
            else tf.function(lambda z: self.ema_generator(z, training=False), input_signature=spec)
        )
        self.metric_names = (
            METRICS
            + (("d_penalty",) if config.penalty != "none" else ())
            + (("d_class", "g_class") if self.class_head else ())
        )

    @property
    def eval_generator(self) -> keras.Model:
        """The generator evaluated, sampled and saved: the EMA of G when ema.decay is set."""
        return self.generator if self.ema_generator is None else self.ema_generator

    # ---- pieces of a step (each usable on its own; tests call them) -------------------------

    def uniform(self, shape, low: float, high: float) -> tf.Tensor:
        """float32 U[low, high) from the training RNG, bit for bit what `rng.uniform` draws
        without XLA. Under jit_compile XLA's own uniform takes the high 23 bits of each Philox
        word, TensorFlow's kernel the low 23: the same run would draw other noise. So the words
        are drawn as integers (the same under both) and converted as TensorFlow's kernel does."""
        bits = self.rng.uniform_full_int(shape, tf.uint32)
        mantissa = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(bits, 0x7FFFFF), 0x3F800000)  # [1, 2)
        return (tf.bitcast(mantissa, tf.float32) - 1.0) * (high - low) + low

    def noise(self, n) -> tf.Tensor:
        return self.uniform(tf.stack([n, self.config.latent_dim]), -1.0, 1.0)  # (n, latent)

    def labels(self, n) -> tf.Tensor:
        """n fake labels, uniform over the classes, from the training RNG. (n,) int32"""
        return self.rng.uniform((n,), 0, self.config.num_classes, dtype=tf.int32)

    def condition(self, z, y) -> tf.Tensor:
        """G's input [z | one_hot(y)] (n, latent + K), as gan_runner/labels.py builds it in numpy."""
        return tf.concat([z, tf.one_hot(y, self.config.num_classes, dtype=z.dtype)], axis=1)

    def real_batch(self, k: int = 0):
        """The real batch of D update k of this step (sequential: block step * d_steps + k);
        (x, y) for a conditional model."""
        if self.config.order == "sequential":
            block = self.step * self.config.d_steps + k
            start_end = self.bounds[block % tf.shape(self.bounds, out_type=tf.int64)[0]]
            x = self.real[start_end[0] : start_end[1]]
            return (x, self.real_labels[start_end[0] : start_end[1]]) if self.conditional else x
        idx = self.rng.uniform((self.config.batch_size,), 0, self.n_real, dtype=tf.int64)
        return (
            (tf.gather(self.real, idx), tf.gather(self.real_labels, idx))
            if self.conditional
            else tf.gather(self.real, idx)
        )

    def draw(self) -> dict:
        """Every random draw of one step, in a fixed order, from the one training RNG: per D
        update its real batch, noise and (gp) interpolation weights alpha (B,); then G's noise
        (the last D update's with batch.reuse_noise; none for the simultaneous update). With
        the defaults: real batch, noise, G noise, as the seed's step. A conditional model draws
        each noise's fake labels right after it (real_y / fake_y; G's: g_y)."""
        d = []
        for k in range(self.config.d_steps):
            real, draw = self.real_batch(k), {}
            if self.conditional:
                real, draw["real_y"] = real
            rows = tf.shape(real)[0]
            draw.update(real=real, noise=self.noise(rows))
            if self.conditional:
                draw["fake_y"] = self.labels(rows)
                draw["noise"] = self.condition(draw["noise"], draw["fake_y"])
            if self.config.penalty == "gp":
                draw["alpha"] = self.uniform(tf.reshape(rows, [1]), 0.0, 1.0)  # (B,): one per sample
            d.append(draw)
        if self.config.update == "simultaneous":
            return {"d": d}
        if self.config.reuse_noise:
            return {"d": d, "g_noise": d[-1]["noise"], **({"g_y": d[-1]["fake_y"]} if self.conditional else {})}
        g_noise = self.noise(rows)
        if not self.conditional:
            return {"d": d, "g_noise": g_noise}
        g_y = self.labels(rows)
        return {"d": d, "g_noise": self.condition(g_noise, g_y), "g_y": g_y}

    def _local(self, *tensors):
        """This replica's rows of a step's draws: all of them on one device (distribute.py)."""
        return tensors

    def _scale(self, loss):
        """This replica's share of a batch-mean loss: the whole of it on one device."""
        return loss

    def critic(self, x, y=None, training=True):
        """D's logits (B, 1) and its class logits (B, K) (None without a class head). A
        conditional D is called D(x, y), one with a class head (acgan) D(x) -> both."""
        if not self.conditional:
            return self.discriminator(x, training=training), None
        out = self.discriminator([x, y] if len(self.discriminator.inputs) == 2 else x, training=training)
        return (out[0], out[1]) if self.class_head else (out, None)

    def _penalty(self, real, fake, alpha, real_y=None):
        """The penalty group's term of D's loss (0 for none). A conditional D is differentiated
        in x at the real labels (gp: real and fake interpolated under the real sample's label)."""
        weight = self.config.penalty_weight
        d = (
            self.discriminator
            if not self.conditional
            else (lambda x, training=True: self.critic(x, real_y, training)[0])
        )
        if self.config.penalty == "gp":
            return self._scale(losses.gradient_penalty(d, real, fake, alpha, weight))
        if self.config.penalty == "r1":
            return self._scale(losses.r1_penalty(d, real, weight))
        return tf.constant(0.0)

    def _class_loss(self, class_logits, y):
        """The class head's mean cross-entropy against y (unweighted); 0 without a class head."""
        if class_logits is None:
            return tf.constant(0.0)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=class_logits)
        return self._scale(tf.reduce_mean(xent))

    def _with_class(self, loss, class_loss):
        return loss + self.config.class_loss_weight * class_loss if self.class_head else loss

    def d_update(self, real, noise, alpha=None, real_y=None, fake_y=None):
        """One D update on real + G(noise). Returns (loss without penalty and class term,
        accuracy at 0, penalty, class loss on the real batch)."""
        fake = self.generator(noise, training=True)
        with tf.GradientTape() as tape:
            real_logits, real_classes = self.critic(real, real_y)
            fake_logits, _ = self.critic(fake, fake_y)
            loss = self._d_loss(real_logits, fake_logits)
            class_loss = self._class_loss(real_classes, real_y)  # AC-GAN's D: real labels only (StudioGAN)
            penalty = self._penalty(real, fake, alpha, real_y)
            total = loss + penalty if self.config.penalty != "none" else loss
            total = self._with_class(total, class_loss)
            total = self.d_optimizer.scale_loss(total)  # x the loss scale (mixed_float16), else unchanged
        grads = tape.gradient(total, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return loss, self._d_accuracy(real_logits, fake_logits), penalty, class_loss

    def g_update(self, noise, fake_y=None):
        """One G update through D (D's weights untouched). Returns (loss without the class term,
        fraction called real, class loss of the fakes)."""
        with tf.GradientTape() as tape:
            fake_logits, fake_classes = self.critic(self.generator(noise, training=True), fake_y)
            loss = self._g_loss(fake_logits)
            class_loss = self._class_loss(fake_classes, fake_y)
            total = self.g_optimizer.scale_loss(self._with_class(loss, class_loss))
        grads = tape.gradient(total, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return loss, tf.reduce_mean(tf.cast(fake_logits > 0, tf.float32)), class_loss

    def simultaneous_update(self, real, noise, alpha=None, real_y=None, fake_y=None):
        """D and G from one shared G forward (saves the second G pass; not the seed's algorithm)."""
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake = self.generator(noise, training=True)
            both_y = tf.concat([real_y, fake_y], axis=0) if self.conditional else None
            logits, classes = self.critic(tf.concat([real, fake], axis=0), both_y)  # (2B, 1), (2B, K)
            b = tf.shape(real)[0]
            real_logits, fake_logits = logits[:b], logits[b:]
            d_loss = self._d_loss(real_logits, fake_logits)
            g_loss = self._g_loss(fake_logits)
            d_class = self._class_loss(None if classes is None else classes[:b], real_y)
            g_class = self._class_loss(None if classes is None else classes[b:], fake_y)
            penalty = self._penalty(real, tf.stop_gradient(fake), alpha, real_y)
            d_total = d_loss + penalty if self.config.penalty != "none" else d_loss
            d_total, g_total = self._with_class(d_total, d_class), self._with_class(g_loss, g_class)
            d_total, g_total = self.d_optimizer.scale_loss(d_total), self.g_optimizer.scale_loss(g_total)
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables
        d_grads, g_grads = d_tape.gradient(d_total, d_vars), g_tape.gradient(g_total, g_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        g_acc = tf.reduce_mean(tf.cast(fake_logits > 0, tf.float32))
        return d_loss, self._d_accuracy(real_logits, fake_logits), g_loss, g_acc, penalty, d_class, g_class

    def _d_loss(self, real_logits, fake_logits):
        return self._scale(self.d_loss_fn(real_logits, fake_logits, self.config.real_label, self.config.fake_label))

    def _g_loss(self, fake_logits):
        return self._scale(self.g_loss_fn(fake_logits, self.config.real_label, self.config.fake_label))

    @staticmethod
    def _d_accuracy(real_logits, fake_logits):
        correct = tf.concat([real_logits > 0, fake_logits <= 0], axis=0)
        return tf.reduce_mean(tf.cast(correct, tf.float32))

    # ---- the compiled loop --------------------------------------------------------------------

    def _args(self, draw: dict, names: tuple[str, ...]) -> dict:
        """This replica's rows of the named draws that are there, as keyword arguments."""
        present = [name for name in names if name in draw]
        return dict(zip(present, self._local(*(draw[name] for name in present))))

    def update(self, draws: dict) -> dict:
        """The updates of one step from its draws; the last D update's metrics."""
        d_names = ("real", "noise", "alpha", "real_y", "fake_y")
        if self.config.update == "simultaneous":
            d_loss, d_acc, g_loss, g_acc, penalty, d_class, g_class = self.simultaneous_update(
                **self._args(draws["d"][0], d_names)
            )
        else:
            for d in draws["d"]:
                d_loss, d_acc, penalty, d_class = self.d_update(**self._args(d, d_names))
            g = {"noise": draws["g_noise"], **({"fake_y": draws["g_y"]} if "g_y" in draws else {})}
            g_loss, g_acc, g_class = self.g_update(**self._args(g, ("noise", "fake_y")))
        out = {"d_loss": d_loss, "d_acc": d_acc, "g_loss": g_loss, "g_acc": g_acc}
        if self.config.penalty != "none":
            out["d_penalty"] = penalty
        if self.class_head:
            out.update(d_class=d_class, g_class=g_class)
        return out

    def one_step(self):
        out = self.update(self.draw())
        if self.ema_generator is not None:  # after G's update, from the step's number before it
            ema.update(
                self.ema_generator,
                self.generator,
                ema.decay_at(self.step, self.config.ema_decay, self.config.ema_start),
            )
        self.step.assign_add(1)
        return out

    def run_steps(self, n_steps: int) -> dict[str, tf.Tensor]:
        """Run n_steps steps in-graph (traced once: n_steps goes in as a tensor)."""
        return self._run_steps_graph(tf.constant(n_steps, tf.int64))

    def _run_steps(self, n_steps):
        """Run n_steps steps in-graph; returns the metrics of the last one. Stops right after a
        step whose loss is NaN/inf, so `step` then names the step that diverged. Written as a
        tf.while_loop: the step has no Python control flow on tensors, and AutoGraph would
        rewrite it and every Keras call below it (~1 s of the 1-D run's tracing) for nothing."""
        names = self.metric_names

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
        groups = {
            "generator": self.generator.weights,
            "discriminator": self.discriminator.weights,
            "d_optimizer": self.d_optimizer.variables,
            "g_optimizer": self.g_optimizer.variables,
        }
        if self.ema_generator is not None:
            groups["generator_ema"] = self.ema_generator.weights
        out = {f"{group}.{i}": var for group, variables in groups.items() for i, var in enumerate(variables)}
        out.update({"step": self.step, "rng": self.rng.state})
        return out

    def learning_rates(self) -> dict[str, float]:
        """The rates the optimizers use at their current iteration (after any schedule)."""
        return {
            "lr_d": float(self.d_optimizer.learning_rate.numpy()),
            "lr_g": float(self.g_optimizer.learning_rate.numpy()),
        }

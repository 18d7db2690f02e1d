"""trainer.strategy: the devices one GAN step runs on.

`default` runs on one device (TensorFlow's default strategy). `mirrored` uses
`tf.distribute.MirroredStrategy` over the visible devices (all GPUs, else the CPU): the
networks, optimizer slots, step counter and training RNG become mirrored variables (built
inside `strategy.scope()`), and each step splits its global batch across the replicas.

The split keeps the single-device arithmetic: the real batch and the noise are drawn once per
step from the one training RNG (cross-replica context), every replica takes its slice, and each
replica's loss (and penalty) is its share of the global mean (local mean x local rows / global
rows). The EMA of G is updated in cross-replica context after the replicas' updates. Keras
sums gradients over replicas, so every update equals the single-device update at the same
global batch, up to float summation order. Exception: BatchNormalization normalises with each
replica's local batch statistics (Keras' default), so models with BatchNorm match only roughly.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator

import tensorflow as tf

from gan_runner.models.gan import GanStep

SUM = tf.distribute.ReduceOp.SUM
MEAN = tf.distribute.ReduceOp.MEAN


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return _mirrored()
    return tf.distribute.get_strategy()  # the default strategy: one device, scope() changes nothing


@functools.cache
def _mirrored() -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per process. Each new one numbers its collective ops from the same
    start, and TensorFlow's collective executor remembers an instance number's shapes for the
    whole process: a second run (a multirun's next job) with other variables then aborts
    ("Shape mismatch in the collective instance")."""
    return tf.distribute.MirroredStrategy()


@contextlib.contextmanager
def scope(name: str) -> Iterator[tf.distribute.Strategy]:
    """Build models, optimizers and the GanStep inside this (variables are created mirrored)."""
    strategy = make_strategy(name)
    with strategy.scope():
        yield strategy


def step_class() -> type[GanStep]:
    """The GanStep for the strategy in scope."""
    return MirroredGanStep if isinstance(tf.distribute.get_strategy(), tf.distribute.MirroredStrategy) else GanStep


class MirroredGanStep(GanStep):
    """GanStep whose D and G updates run on every replica with a slice of the global batch."""

    def __init__(self, *args, **kwargs):
        self.strategy = tf.distribute.get_strategy()
        # MirroredStrategy traces each replica's step in its own thread, switching threads at
        # every cross-replica sync: a replica's share of the batch must be thread-local.
        self._replica = threading.local()
        super().__init__(*args, **kwargs)

    def update(self, draws: dict) -> dict:
        # Called in cross-replica context after `draw()` drew exactly what the single-device step
        # draws, in the same order; every replica gets all draws and takes its rows (_local).
        out = self.strategy.run(super().update, args=(draws,))
        # Losses are already shares of the global mean: summing gives it. Accuracies are local
        # means: their mean is the global one when the batch splits evenly (else off by < 1/B).
        return {k: self.strategy.reduce(MEAN if k.endswith("acc") else SUM, v, axis=None) for k, v in out.items()}

    def _local(self, *tensors):
        """This replica's rows of the tensors (all with the same leading batch B): rows
        [i B / n, (i + 1) B / n); their share of B is kept for _scale."""
        ctx = tf.distribute.get_replica_context()
        i, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
        rows = tf.shape(tensors[0])[0]
        start, end = i * rows // n, (i + 1) * rows // n
        self._replica.share = tf.cast(end - start, tf.float32) / tf.cast(rows, tf.float32)
        return tuple(t[start:end] for t in tensors)

    def _scale(self, loss):
        # This replica's share of the global batch-mean loss: D's loss has 2b of 2B rows, G's b
        # of B. (Not an all-reduce of the row counts: that extra collective inside the two tapes
        # of the simultaneous update ran in a different order on the replicas and failed.)
        return loss * self._replica.share

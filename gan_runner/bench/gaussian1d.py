"""`make bench` section `gaussian1d`: the seed's full 1-D schedule through the real CLI, and the
note's own Keras loop (SEED.md section 1) for the same schedule, timed over a part of it."""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.table import Table

from gan_runner.bench.common import console, record_target, timed_cli

CLI_TARGET_S, LOOP_TARGET_S, RATIO_TARGET = 8.0, 1.6, 200.0
SEED_EPOCHS = 1000  # the note's schedule: 1000 epochs of 3 mini-batches


def bench_gaussian1d(repeats: int, seed_loop_epochs: int = 0) -> None:
    """The seed's schedule (3000 D+G updates, eval every 30 steps) via the CLI, `repeats` times,
    each on a new SQLite store; with `seed_loop_epochs`, the note's loop over that many epochs."""
    walls, cpus, metrics = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            wall, cpu, runs = timed_cli([f"seed={i}"], folder)
            walls.append(wall)
            cpus.append(cpu)
            metrics.append(runs[0])
    loops = [m["perf/loop_s"] for m in metrics]
    table = Table(title=f"gaussian1d, seed schedule (3000 steps), {repeats} runs, median [min-max]")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")

    def row(name, values, target, fmt="{:.3f}"):
        table.add_row(
            name,
            f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]",
            target,
        )

    row("training loop (s, incl. tracing, evaluation, the last checkpoint)", loops, f"<= {LOOP_TARGET_S}")
    row("  of which evaluation (s, 100 x 20,000 fakes)", [m["perf/eval_s"] for m in metrics], "")
    row("  of which tracing, steps and the rest (s)", [m["perf/loop_s"] - m["perf/eval_s"] for m in metrics], "")
    row(
        "KDE plots (s, 3 figures, drawn on the host thread beside the steps)",
        [m["perf/pictures_s"] for m in metrics],
        "",
    )
    row("steps/s (whole loop)", [3000 / x for x in loops], "", "{:.0f}")
    row("whole CLI wall time (s, new SQLite store)", walls, f"<= {CLI_TARGET_S:g}")
    row("whole CLI CPU time (s, user + sys)", cpus, "")
    for key, target in (
        ("eval/kl", "<= 0.27"),
        ("eval/kl_target", "<= 0.02"),
        ("eval/mean", "|x| <= 0.1"),
        ("eval/std", "|x-1| <= 0.1"),
        ("eval/kl_floor", "~0.20"),
        ("eval/w1", ""),
        ("eval/ks", ""),
    ):
        row(key, [m[key] for m in metrics], target, "{:.4f}")
    console.print(table)
    wall, cpu, loop = statistics.median(walls), statistics.median(cpus), statistics.median(loops)
    record_target(
        "`make run` (gaussian1d, seed schedule), whole CLI, MLflow on a new SQLite store",
        f"{wall:.1f} s wall ({cpu:.1f} CPU s), median of {repeats}",
        f"<= {CLI_TARGET_S:g} s",
        wall <= CLI_TARGET_S,
    )
    record_target(
        "the same run's training loop `perf/loop_s`",
        f"{loop:.2f} s, median of {repeats}",
        f"<= {LOOP_TARGET_S} s",
        loop <= LOOP_TARGET_S,
    )
    if seed_loop_epochs:
        seed_s, measured = seed_loop(seed_loop_epochs)
        how = f"{measured} of {SEED_EPOCHS} epochs timed, scaled x{SEED_EPOCHS / measured:.3g}"
        ratio = seed_s / loop
        console.print(f"the note's Keras loop: {seed_s:.0f} s for the seed schedule ({how}); {ratio:.0f}x our loop")
        record_target(
            "the seed's own Keras loop (predict + train_on_batch) for the same schedule, vs `perf/loop_s`",
            f"{seed_s:.0f} s ({how}): {ratio:.0f}x",
            f">= {RATIO_TARGET:g}x on the loop",
            ratio >= RATIO_TARGET,
        )
    else:
        record_target(
            "the seed's own Keras loop (predict + train_on_batch) for the same schedule, vs `perf/loop_s`",
            "skipped: --seed-loop-epochs 0",
            f">= {RATIO_TARGET:g}x on the loop",
            None,
        )


def seed_loop(epochs: int, seed: int = 0) -> tuple[float, int]:
    """The note's 1-D loop as written (SEED.md section 1), on Keras 3 with its one needed change
    (`RMSprop(learning_rate=...)`, not `lr=`), for `epochs` of its 1000 epochs, the KL printout
    every 10 epochs included. Returns (seconds for all 1000 epochs, scaled linearly from the
    epochs timed after a one-epoch warm-up; the number of epochs timed, at most 999). Wall time
    of this process's loop; the networks' set-up and the first (tracing) epoch are not counted."""
    import keras
    from keras.layers import Dense, Input
    from keras.models import Model
    from keras.optimizers import RMSprop

    from gan_runner.metrics.univariate import histogram_kl

    keras.utils.set_random_seed(seed)
    real = np.random.normal(size=1000).reshape(-1, 1)

    def noise(m, n=16):
        return np.random.uniform(-1.0, 1.0, size=[m, n])

    keras.backend.clear_session()
    x = Input(batch_shape=(None, 1))
    discriminator = Model(x, Dense(1, activation="sigmoid")(Dense(32, activation="relu")(x)))
    discriminator.compile(loss="binary_crossentropy", optimizer=RMSprop(learning_rate=0.001))
    z = Input(batch_shape=(None, 16))
    generator = Model(z, Dense(1, activation="linear")(Dense(32, activation="relu")(z)))
    discriminator.trainable = False  # the note's BuildGAN (in Keras 3 this freezes D for good: SEED.md trap 1)
    gz = Input(batch_shape=(None, 16))
    gan = Model(gz, discriminator(generator(gz)))
    gan.compile(loss="binary_crossentropy", optimizer=RMSprop(learning_rate=0.0005))

    def epoch(e: int) -> None:
        size = real.shape[0] // 3
        for n in range(3):
            bx = real[n * size : real.shape[0] if n == 2 else (n + 1) * size]
            bz = noise(bx.shape[0])
            fakes = generator.predict(bz, verbose=0)
            target = np.zeros(bx.shape[0] * 2)
            target[: bx.shape[0]], target[bx.shape[0] :] = 0.9, 0.1
            discriminator.train_on_batch(np.concatenate([bx, fakes]), target)
            gan.train_on_batch(bz, np.full(bx.shape[0], 0.9))
        if e % 10 == 0:
            histogram_kl(real[:, 0], generator.predict(noise(real.shape[0]), verbose=0)[:, 0])

    epochs = min(epochs, SEED_EPOCHS - 1)
    epoch(0)  # traces the train and predict functions (the note pays this once too; not timed)
    started, cpu_started = time.perf_counter(), _cpu()
    for e in range(1, epochs + 1):
        epoch(e)
    wall = time.perf_counter() - started
    console.print(f"  the note's loop: {epochs} epochs in {wall:.1f} s wall, {_cpu() - cpu_started:.1f} CPU s")
    return wall * SEED_EPOCHS / epochs, epochs


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

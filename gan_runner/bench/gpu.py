"""`make bench ARGS=gpu`: the DCGAN step (batch 64, the alternating update) per trainer.precision x
trainer.jit_compile, on whatever accelerator TensorFlow sees: its step time and GFLOP/s (the FLOPs
counted from the layers as in bench/dcgan.py). Without a GPU the same variants run on the CPU,
so the code path is exercised, and the scoreboard row says that no GPU figure was measured.

Each variant runs in its own worker process (bench/dcgan.py's worker, the same timing code), the
rounds interleaved, so a machine shared with other jobs slows every variant alike.
"""

from __future__ import annotations

import itertools
import os
import statistics

from rich.table import Table

from gan_runner.bench.common import console, dcgan_worker, record_target

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # config/checks.py's choices
JIT = (False, True)
UPDATE = "alternating"  # the seed's update


def bench_gpu(repeats: int, steps: int = 5) -> None:
    variants = {
        (p, j): [f"trainer.precision={p}", f"trainer.jit_compile={str(j).lower()}"]
        for p, j in itertools.product(PRECISIONS, JIT)
    }
    results: dict[tuple, list[dict]] = {v: [] for v in variants}
    results[("float32", False)].append(dcgan_worker(steps, variants[("float32", False)]))
    gpus = results[("float32", False)][0]["gpus"]
    if not gpus:  # on a CPU, XLA and emulated half precision take minutes a step under load: one round, 1 step
        repeats, steps = 1, 1
    for round_ in range(repeats):
        for variant, overrides in variants.items():
            if not (round_ == 0 and variant == ("float32", False)):
                results[variant].append(dcgan_worker(steps, overrides))
    device = f"GPU {gpus[0]}" if gpus else f"CPU ({os.cpu_count()} cores; no GPU visible)"
    table = Table(title=f"dcgan step per precision x jit_compile on {device}: median over {repeats} x {steps} steps")
    for column in ("precision", "jit_compile", "s/step", "GFLOP/s", "vs float32 no jit", "CPU s/step"):
        table.add_column(column, justify="left" if column in ("precision", "jit_compile") else "right")
    speed = {}
    for (precision, jit), runs in results.items():
        wall = statistics.median(x for r in runs for x in r["wall"][UPDATE])
        cpu = statistics.median(x for r in runs for x in r["cpu"][UPDATE])
        speed[(precision, jit)] = (wall, runs[0]["flops"][UPDATE] / 1e9 / wall, cpu)
    reference = speed[("float32", False)][0]
    for (precision, jit), (wall, gflops, cpu) in speed.items():
        table.add_row(
            precision, str(jit).lower(), f"{wall:.3f}", f"{gflops:.0f}", f"{reference / wall:.2f}x", f"{cpu:.3f}"
        )
    console.print(table)
    best = max(speed, key=lambda v: speed[v][1])
    work = "DCGAN step on a GPU, best of precision x jit_compile (make bench ARGS=gpu)"
    if gpus:
        measured = (
            f"{speed[best][1]:.0f} GFLOP/s, {speed[best][0] * 1000:.1f} ms/step ({best[0]}, jit {str(best[1]).lower()})"
        )
        record_target(work, measured, "figures per variant (no pass mark)", None)
    else:
        record_target(work, "no GPU on this machine", "figures per variant (no pass mark)", None)

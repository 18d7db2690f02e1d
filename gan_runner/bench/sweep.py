"""`make bench` section `sweep`: 8 gaussian1d jobs of the seed's schedule as one multirun,
Hydra's basic launcher (one process, jobs one after another, TensorFlow's default threads) vs
the joblib launcher (hydra/launcher=parallel: 2 worker processes, 1 TF thread each on 2 cores).
Also where a job's time goes: one standalone run's wall time against its training loop
(perf/loop_s), the rest being process start, imports (TensorFlow, MLflow) and MLflow calls.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from rich.table import Table

from gan_runner.bench.common import console, record_target, timed_cli

JOBS = 8
LAUNCHERS = {"basic (1 process)": [], "joblib (2 workers x 1 thread)": ["hydra/launcher=parallel"]}
# A job of the seed schedule trains for ~2 s and costs ~1.6 s more; a joblib worker's start
# (TensorFlow and MLflow imports, ~7 s) is paid once per worker. Longer jobs show the launcher's
# scaling once that start is amortized.
LENGTHS = {"seed schedule, 3000 steps": [], "10x longer, 30000 steps": ["train_steps=30000"]}


def bench_sweep(repeats: int) -> None:
    seeds = ",".join(str(i) for i in range(JOBS))
    cases = [(length, name) for length in LENGTHS for name in LAUNCHERS]
    walls: dict[tuple, list[float]] = {case: [] for case in cases}
    cpus: dict[tuple, list[float]] = {case: [] for case in cases}
    loops: dict[tuple, list[float]] = {case: [] for case in cases}
    single_walls, single_loops = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for k, (length, name) in enumerate(cases):
                folder = Path(tmp) / f"{i}-case{k}"
                folder.mkdir()
                args = [
                    "-m",
                    f"hydra.sweep.dir={folder / 'multirun'}",
                    f"seed={seeds}",
                    *LENGTHS[length],
                    *LAUNCHERS[name],
                ]
                wall, cpu, metrics = timed_cli(args, folder)
                assert len(metrics) == JOBS, f"{name}: {len(metrics)} of {JOBS} jobs logged"
                walls[length, name].append(wall)
                cpus[length, name].append(cpu)
                loops[length, name].append(sum(m["perf/loop_s"] for m in metrics))
            folder = Path(tmp) / f"{i}-single"
            folder.mkdir()
            wall, _, (metrics,) = timed_cli([f"seed={i}"], folder)
            single_walls.append(wall)
            single_loops.append(metrics["perf/loop_s"])

    med = statistics.median
    table = Table(title=f"sweep: {JOBS} gaussian1d jobs, {repeats} repeats, median [min-max], {os.cpu_count()} cores")
    for column, justify in (("figure", "left"), ("value", "right"), ("target", "right")):
        table.add_column(column, justify=justify)

    def row(label, values, target="", fmt="{:.1f}"):
        table.add_row(label, f"{fmt.format(med(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]", target)

    basic, joblib = LAUNCHERS
    for length in LENGTHS:
        for name in LAUNCHERS:
            row(f"{length}: {name}: sweep wall time (s)", walls[length, name])
            row(f"{length}: {name}: CPU time, all processes (s)", cpus[length, name])
            row(f"{length}: {name}: training loops, sum over jobs (s)", loops[length, name])
        speedups = [b / j for b, j in zip(walls[length, basic], walls[length, joblib])]
        row(f"{length}: speed-up of joblib over basic (x)", speedups, ">= 1.6", "{:.2f}")
        row(
            f"{length}: basic: per-job time outside the loop (s)",
            [(w - s) / JOBS for w, s in zip(walls[length, basic], loops[length, basic])],
        )
        # 2 workers: each job holds one of them; worker-seconds not spent in a training loop
        row(
            f"{length}: joblib: per-job worker time outside the loop (s)",
            [(2 * w - s) / JOBS for w, s in zip(walls[length, joblib], loops[length, joblib])],
        )
        for name in LAUNCHERS:
            row(
                f"{length}: {name}: per-job CPU outside the loops (s)",
                [(c - s) / JOBS for c, s in zip(cpus[length, name], loops[length, name])],
            )
        if length == next(iter(LENGTHS)):  # the issue-15 row: the seed schedule's jobs
            record_target(
                f"{JOBS} seed-schedule jobs, joblib vs basic launcher",
                f"{med(speedups):.2f}x",
                ">= 1.6x",
                med(speedups) >= 1.6,
            )
    row("one standalone run: wall time (s)", single_walls)
    row("one standalone run: training loop perf/loop_s (s)", single_loops, "", "{:.2f}")
    row("one standalone run: start, imports, MLflow, rest (s)", [w - s for w, s in zip(single_walls, single_loops)])
    console.print(table)

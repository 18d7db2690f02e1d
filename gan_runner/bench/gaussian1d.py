"""`make bench` section `gaussian1d`: the seed's full 1-D schedule through the real CLI."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from rich.table import Table

from gan_runner.bench.common import cli_run, console, last_run_metrics


def bench_gaussian1d(repeats: int) -> None:
    """The seed's schedule (3000 D+G updates, eval every 30 steps) via the CLI, `repeats` times."""
    walls, loops, metrics = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for i in range(repeats):
            walls.append(cli_run([f"seed={i}"], store))
            metrics.append(last_run_metrics(store, "gaussian1d"))
            loops.append(metrics[-1]["perf/loop_s"])
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

    row("training loop (s, incl. tracing + eval + KDE plots)", loops, "<= 1.6")
    row("  of which evaluation (s, 100 x 20,000 fakes)", [m["perf/eval_s"] for m in metrics], "")
    row("  of which KDE plots (s, 3 figures)", [m["perf/pictures_s"] for m in metrics], "")
    row("  steps + tracing (s)", [m["perf/loop_s"] - m["perf/eval_s"] - m["perf/pictures_s"] for m in metrics], "")
    row("steps/s (whole loop)", [3000 / x for x in loops], "", "{:.0f}")
    row("whole CLI wall time (s)", walls, "<= 12")
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

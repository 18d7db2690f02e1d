"""`make bench` / `python -m gan_runner.bench [section ...]`: the speed and quality figures the
README quotes, measured on this machine. Each section prints a small table.

Sections: gaussian1d (the seed's full 1-D schedule through the real CLI); sweep (8 such jobs,
basic launcher vs joblib, and a job's overhead: gan_runner/bench_sweep.py); dcgan (step time,
GFLOP/s against the numpy matmul peak, peak RSS: gan_runner/bench_dcgan.py); quality (the DCGAN's
eval/fd, eval/mnist_score, eval/coverage next to real digits, and what judging costs:
gan_runner/bench_quality.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gan_runner.bench_dcgan import bench_dcgan
from gan_runner.bench_quality import bench_quality
from gan_runner.bench_sweep import bench_sweep

console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)  # piped: no wrapped tables


def cli_run(args: list[str], store: str) -> float:
    """Run `python -m gan_runner` as a user would; return its wall time in seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gan_runner", f"tracking.uri={store}", *args],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def last_run_metrics(store: str, experiment: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return run.data.metrics


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
        table.add_row(name, f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]", target)

    row("training loop (s, incl. tracing + eval + KDE plots)", loops, "<= 1.6")
    row("  of which evaluation (s, 100 x 20,000 fakes)", [m["perf/eval_s"] for m in metrics], "")
    row("  of which KDE plots (s, 3 figures)", [m["perf/pictures_s"] for m in metrics], "")
    row("  steps + tracing (s)", [m["perf/loop_s"] - m["perf/eval_s"] - m["perf/pictures_s"] for m in metrics], "")
    row("steps/s (whole loop)", [3000 / x for x in loops], "", "{:.0f}")
    row("whole CLI wall time (s)", walls, "<= 12")
    for key, target in (("eval/kl", "<= 0.27"), ("eval/kl_target", "<= 0.02"), ("eval/mean", "|x| <= 0.1"),
                        ("eval/std", "|x-1| <= 0.1"), ("eval/kl_floor", "~0.20"), ("eval/w1", ""), ("eval/ks", "")):
        row(key, [m[key] for m in metrics], target, "{:.4f}")
    console.print(table)


SECTIONS = {"gaussian1d": bench_gaussian1d, "sweep": bench_sweep, "dcgan": bench_dcgan, "quality": bench_quality}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", help=f"any of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args.repeats)


if __name__ == "__main__":
    main()

"""`make bench ARGS="cond [--steps 300,2000] [--seeds 3] [--conds projection,concat,acgan]"`: does the
class-conditional DCGAN draw the digit it is asked for, per model.cond (gan_runner/bench/cond.py).

Each (cond, seed) is one run of experiments/cdcgan.yaml through the real CLI into one SQLite store,
to the largest --steps, evaluated (eval.n_fake=2000, 200 per class) at every --steps. A table of
eval/class_accuracy (chance: 0.10), eval/fd_intra, eval/fd and eval/class_xent at each of those
steps (mean +- std over seeds) and the seconds per training step; the last run's row-per-class
sample grid of the cond with the best class accuracy is copied to --grid-out.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import time
from pathlib import Path

from gan_runner.bench.common import console, record_target, timed_cli

CONDS = ("projection", "concat", "acgan")
METRICS = ("eval/class_accuracy", "eval/fd_intra", "eval/fd", "eval/class_xent")
CHANCE = 0.1
TARGET = 3 * CHANCE  # "well above chance": the scoreboard's bar at the smallest --steps


def _data_args() -> list[str]:
    mnist = os.environ.get("GAN_RUNNER_MNIST")  # make bench sets it
    return [f"data.path={mnist}"] if mnist else []


def _train_s(m: dict) -> float:
    """Training seconds of a run: its loop less evaluation and pictures (tracing included)."""
    return m["perf/loop_s"] - m.get("perf/eval_s", 0.0) - m.get("perf/pictures_s", 0.0)


def _mean_std(values: list[float], fmt: str = "{:.3f}") -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.mean(values))} +- {fmt.format(std)}"


def bench_cond(
    repeats: int,
    steps: list[int],
    seeds: int,
    conds: tuple[str, ...] | list[str] = CONDS,
    grid_out: Path = Path("docs/cdcgan_grid.png"),
    folder: Path = Path(".bench/cond"),
) -> dict:
    """`repeats` is the other sections' timing option: each run here is timed once."""
    from mlflow.tracking import MlflowClient
    from rich.table import Table

    folder = folder.resolve() / time.strftime("%Y%m%d-%H%M%S")
    longest, every = max(steps), math.gcd(*steps)
    history: dict[tuple[str, int], list[dict]] = {}  # (cond, steps) -> per seed {metric: value}
    per_step: dict[str, list[float]] = {}
    walls: dict[str, list[float]] = {}
    last_run: dict[str, tuple[str, str]] = {}  # cond -> (store, run id) of its last seed
    for cond in conds:
        for seed in range(seeds):
            run_folder = folder / f"{cond}-{seed}"
            run_folder.mkdir(parents=True)
            args = [
                "experiment=cdcgan",
                *_data_args(),
                f"model.cond={cond}",
                f"train_steps={longest}",
                f"eval_every={every}",
                f"log_every={every}",
                f"sample_every={longest}",
                f"plot_every={longest}",
                f"seed={seed}",
                "tracking.log_model=false",
                "checkpoint.every=0",
            ]
            wall, _, (metrics,) = timed_cli(args, run_folder)
            walls.setdefault(cond, []).append(wall)
            per_step.setdefault(cond, []).append(_train_s(metrics) / longest)
            store = f"sqlite:///{run_folder / 'mlflow.db'}"
            client = MlflowClient(tracking_uri=store)
            (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
            last_run[cond] = (store, run.info.run_id)
            at = {k: {m.step: m.value for m in client.get_metric_history(run.info.run_id, k)} for k in METRICS}
            for n in steps:
                history.setdefault((cond, n), []).append({k: at[k][n] for k in METRICS})
    table = Table(title=f"cdcgan on MNIST (experiments/cdcgan.yaml; eval.n_fake=2000), {seeds} seed(s): mean +- std")
    for column in ("model.cond", "steps", *METRICS, "s/step (training)", "run wall s"):
        table.add_column(column, justify="left" if column == "model.cond" else "right")
    for (cond, n), rows in history.items():
        table.add_row(
            cond,
            str(n),
            *(_mean_std([r[k] for r in rows]) for k in METRICS),
            _mean_std(per_step[cond]),
            _mean_std(walls[cond], "{:.0f}"),
        )
    console.print(table)
    first = min(steps)
    best = max(conds, key=lambda c: statistics.mean(r["eval/class_accuracy"] for r in history[(c, first)]))
    accuracy = statistics.mean(r["eval/class_accuracy"] for r in history[(best, first)])
    record_target(
        f"cdcgan class accuracy at {first} steps (best cond: {best})",
        f"{accuracy:.1%}",
        f">= {TARGET:.0%} (chance {CHANCE:.0%})",
        accuracy >= TARGET,
    )
    store, run_id = last_run[best]
    client = MlflowClient(tracking_uri=store)
    (png,) = [
        a.path
        for a in client.list_artifacts(run_id, "images")
        if a.path.startswith(f"images/samples+step+{longest}+") and a.path.endswith(".png")
    ]
    grid_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(client.download_artifacts(run_id, png, str(folder)), grid_out)
    console.print(f"grid ({best}, step {longest}, one row per digit): {grid_out}")
    return history

"""`make bench ARGS="techniques [--steps 300,2000] [--seeds 3] [--presets a,b] [--no-equal-time]"`:
which GAN technique wins, measured here (gan_runner/bench/techniques.py).

  * 1-D: the seed's 1-D GAN (3000 steps) per loss, as one multirun (`-m loss=... seed=...`):
    eval/kl_target (KL of 20,000 fakes to N(0, 1)) mean +- std over the seeds.
  * Step time: the DCGAN's seconds per step (batch 64) without and with gp, r1, spectral norm
    (in this process, after tracing; `repeats` timings, median), as overheads over the plain step.
  * DCGAN presets (experiments/): each at equal G steps (every --steps) and, unless
    --no-equal-time, at the wall-clock training time of seed_dcgan's run at the largest steps;
    --seeds seeds each, through the real CLI into one SQLite store. A table of the last
    eval/fd, eval/mnist_score, eval/coverage (mean +- std over seeds) and seconds per step
    (training only: loop time less evaluation and pictures), and a seaborn chart of eval/fd over
    steps per preset (band: +- std over seeds) written to --out.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PRESETS = ("seed_dcgan", "dcgan_ema", "dcgan_lsgan", "dcgan_hinge_sn", "dcgan_wgan_gp", "dcgan_fast")
LOSSES_1D = {"": "ns,minimax,hinge,wasserstein,lsgan", "penalty=gp": "wasserstein"}
OVERHEADS = {
    "plain (ns)": [],
    "penalty=gp": ["penalty=gp"],
    "penalty=r1": ["penalty=r1"],
    "model.d_spectral_norm=true": ["model.d_spectral_norm=true"],
    "trainer.d_steps=5": ["trainer.d_steps=5"],
}
EXPERIMENT = "techniques"


def _data_args() -> list[str]:
    mnist = os.environ.get("GAN_RUNNER_MNIST")
    return [f"data.path={mnist}"] if mnist else []


def _cli(args: list[str], store: str, cwd: Path, experiment: str = EXPERIMENT) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gan_runner",
            *args,
            f"tracking.uri={store}",
            f"tracking.experiment={experiment}",
            "tracking.log_model=false",
            "checkpoint.every=0",
        ],
        cwd=cwd,
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _runs(store: str, experiment: str = EXPERIMENT) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:  # nothing run yet
        return []
    # a sweep's parent run (gan_runner.sweep) holds no training metrics: left out
    return [
        r
        for r in client.search_runs([exp.experiment_id], max_results=5000)
        if r.info.status == "FINISHED" and "perf/loop_s" in r.data.metrics
    ]


def _mean_std(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.mean(values))} +- {fmt.format(std)} (n={len(values)})"


def bench_1d(store: str, tmp: Path, seeds: int) -> None:
    from rich.table import Table

    from gan_runner.bench.common import console

    seed_list = ",".join(str(s) for s in range(seeds))
    for extra, losses in LOSSES_1D.items():
        _cli(
            [
                "-m",
                f"loss={losses}",
                f"seed={seed_list}",
                *([extra] if extra else []),
                f"hydra.sweep.dir={tmp / 'multirun'}",
            ],
            store,
            tmp,
            "gaussian1d",
        )
    rows: dict[str, list] = {}
    for run in _runs(store, "gaussian1d"):
        tags = run.data.tags
        label = tags["loss"] + ("" if tags["penalty"] == "none" else f" + {tags['penalty']}")
        rows.setdefault(label, []).append(run.data.metrics)
    table = Table(title=f"1-D GAN (the seed's 3000 steps) per loss, {seeds} seeds: mean +- std")
    for column in ("loss", "eval/kl_target", "eval/w1", "eval/std (target 1)", "floor (kl_target of real)"):
        table.add_column(column, justify="left" if column == "loss" else "right")
    for label, metrics in rows.items():
        table.add_row(
            label,
            *(
                _mean_std([m[k] for m in metrics], "{:.4f}")
                for k in ("eval/kl_target", "eval/w1", "eval/std", "eval/kl_target_floor")
            ),
        )
    console.print(table)


def bench_overheads(repeats: int, steps: int = 10) -> dict[str, float]:
    """Seconds per DCGAN step (model defaults, batch 64), median of `repeats` timings of `steps`
    steps: CPU seconds of this process (what a step costs, little changed by other jobs on the
    cores) and wall seconds (what it takes here and now). The overhead is on CPU seconds."""
    from hydra import compose, initialize_config_dir
    from rich.table import Table

    from gan_runner import config, data, tracking, train
    from gan_runner.bench.common import console

    out, walls = {}, {}
    for label, extra in OVERHEADS.items():
        overrides = ["model=dcgan", *_data_args(), "data.n=2000", "tracking=none", *extra]
        with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
            cfg = config.validate(compose(config_name="config", overrides=overrides), overrides)
        train.configure_threads(cfg.trainer)
        trainer = train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())
        trainer._run_chunk(2)  # traces
        cpu, wall = [], []
        for _ in range(max(repeats, 1)):
            cpu_started, started = time.process_time(), time.perf_counter()
            trainer._run_chunk(steps)
            cpu.append((time.process_time() - cpu_started) / steps)
            wall.append((time.perf_counter() - started) / steps)
        out[label] = statistics.median(cpu)
        walls[label] = statistics.median(wall)
    base = out["plain (ns)"]
    table = Table(title=f"DCGAN step time (batch 64, {steps} steps x {repeats}, median)")
    for column in ("D", "CPU s/step", "overhead (CPU)", "wall s/step"):
        table.add_column(column, justify="left" if column == "D" else "right")
    for label, seconds in out.items():
        table.add_row(label, f"{seconds:.3f}", f"{seconds / base - 1:+.0%}", f"{walls[label]:.3f}")
    console.print(table)
    return out


def _train_s(m: dict) -> float:
    return m["perf/loop_s"] - m.get("perf/eval_s", 0.0) - m.get("perf/pictures_s", 0.0)


def _run_all(plans: list[list[str]], store: str, tmp: Path, jobs: int) -> None:
    """Each plan (CLI overrides) as its own run, `jobs` at a time, the cores shared between them
    (trainer.intra_op_threads); a failed run raises once the others are done. A plan whose run
    name and seed already have a FINISHED run in the store is not run again (a bench continued
    with --folder)."""
    done = {(r.data.tags["mlflow.runName"], r.data.tags["seed"]) for r in _runs(store)}
    todo = [args for args in plans if (_value(args, "tracking.run_name"), _value(args, "seed")) not in done]
    if len(todo) < len(plans):
        print(f"{len(plans) - len(todo)} of {len(plans)} runs already in {store}: not run again", flush=True)
    threads = [f"trainer.intra_op_threads={max(1, (os.cpu_count() or 1) // jobs)}"] if jobs > 1 else []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(_cli, [*args, *threads], store, tmp) for args in todo]:
            future.result()


def _value(args: list[str], key: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(key + "="))


def bench_presets(
    store: str,
    tmp: Path,
    steps: list[int],
    seeds: int,
    presets: list[str],
    equal_time: bool,
    out: Path,
    jobs: int = 1,
) -> None:
    # Hydra override values: no '=', ',' or '()' in run names. The three metrics of the table only.
    common = [
        "model=dcgan",
        *_data_args(),
        "sample_every=100000",
        "plot_every=100000",
        "eval.metrics=[fd,mnist_score,coverage]",
    ]

    def plan(preset: str, n: int, seed: int, name: str) -> list[str]:
        return [
            f"experiment={preset}",
            *common,
            f"train_steps={n}",
            f"eval_every={max(1, n // 10)}",
            f"seed={seed}",
            f"tracking.run_name={name}",
        ]

    _run_all([plan(p, n, s, f"{p}/{n} steps") for n in steps for p in presets for s in range(seeds)], store, tmp, jobs)
    if equal_time and "seed_dcgan" in presets:
        longest = max(steps)
        by_group: dict[str, list] = {}
        for r in _runs(store):
            by_group.setdefault(r.data.tags["mlflow.runName"], []).append(r.data.metrics)
        budget = statistics.mean(_train_s(m) for m in by_group[f"seed_dcgan/{longest} steps"])
        plans = []
        for preset in presets:
            if preset == "seed_dcgan":
                continue
            per_step = statistics.mean(_train_s(m) / longest for m in by_group[f"{preset}/{longest} steps"])
            n = max(1, round(budget / per_step))
            plans += [plan(preset, n, s, f"{preset}/{n} steps at equal time {budget:.0f}s") for s in range(seeds)]
        _run_all(plans, store, tmp, jobs)
    _report(store, out)


def _report(store: str, out: Path) -> None:
    import pandas as pd
    import seaborn as sns
    from mlflow.tracking import MlflowClient
    from rich.table import Table

    from gan_runner import plots
    from gan_runner.bench.common import console

    client = MlflowClient(tracking_uri=store)
    groups: dict[str, list] = {}
    curves = []
    for run in _runs(store):
        group = run.data.tags["mlflow.runName"]
        groups.setdefault(group, []).append(run)
        curves += [
            {"preset": group, "seed": run.data.tags["seed"], "step": m.step, "eval/fd": m.value}
            for m in client.get_metric_history(run.info.run_id, "eval/fd")
        ]
    table = Table(title="DCGAN presets on MNIST (eval.n_fake=2000): last evaluation, mean +- std over seeds")
    for column in ("preset / steps", "eval/fd", "eval/mnist_score", "eval/coverage", "s/step (training)"):
        table.add_column(column, justify="left" if column.startswith("preset") else "right")
    for group, runs in sorted(groups.items()):
        metrics = [r.data.metrics for r in runs]
        steps = int(group.split("/")[1].split()[0])
        table.add_row(
            group,
            *(_mean_std([m[k] for m in metrics]) for k in ("eval/fd", "eval/mnist_score", "eval/coverage")),
            _mean_std([_train_s(m) / steps for m in metrics], "{:.3f}"),
        )
    floor = [
        r.data.metrics["eval/fd_floor"] for runs in groups.values() for r in runs if "eval/fd_floor" in r.data.metrics
    ]
    if floor:
        table.add_row("real digits (eval/fd_floor)", f"{statistics.mean(floor):.2f}", "", "", "")
    console.print(table)
    frame = pd.DataFrame(curves)
    if frame.empty:
        return
    fig, ax = plots.plt.subplots(figsize=(8, 4.5))  # plots: the Agg backend, set once
    sns.lineplot(data=frame, x="step", y="eval/fd", hue="preset", errorbar="sd", ax=ax)
    ax.set_yscale("log")
    ax.set_title("eval/fd over G steps per preset (band: +- std over seeds)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plots.close(fig)
    console.print(f"chart: {out}")


def bench_techniques(
    repeats: int,
    steps: list[int],
    seeds: int,
    presets: list[str],
    equal_time: bool,
    out: Path,
    parts: tuple[str, ...] = ("1d", "overheads", "presets"),
    folder: Path | None = None,
    jobs: int = 1,
) -> None:
    """The runs go to a SQLite store in a new folder of .bench/techniques/ (kept: a later failure
    loses no runs), or in `folder`, continuing the bench kept there: its finished runs count."""
    folder = (folder or Path(".bench/techniques") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    if "1d" in parts:
        bench_1d(store, folder, seeds)
    if "overheads" in parts:
        bench_overheads(repeats)
    if "presets" in parts:
        bench_presets(store, folder, steps, seeds, presets, equal_time, out, jobs)

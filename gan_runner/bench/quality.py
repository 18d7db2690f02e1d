"""`make bench ARGS=quality`: how good the seed's DCGAN's digits are, by eval/fd, eval/mnist_score
and eval/coverage (N = eval.n_fake = 2000) next to what real digits score, and what judging
costs.

  * Quality: the seed's update rule (alternating) and the cheaper simultaneous one, both at
    equal steps (BENCH_QUALITY_STEPS, default 300) and the simultaneous one again at the
    alternating run's wall-clock budget (its steps scaled by the two loops' times). One run
    each through the real CLI, seed 0; next to them, N real reference digits scored the same way
    against the first N (their FD is eval/fd_floor).
  * Cost: training the classifier from scratch (into a temp cache, which the runs then reuse),
    and one evaluation of N=2000 fakes (generate + classify + metrics) against the training
    time between two evaluations at the default cadence (eval_every steps): target < 10%.
    `repeats` evaluations are timed (median).
Data: $GAN_RUNNER_MNIST (set by `make bench`), else wherever `data.path` finds MNIST.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.table import Table

from gan_runner.bench.common import console, timed_cli

STEPS = int(os.environ.get("BENCH_QUALITY_STEPS", "300"))
UPDATES = {"alternating (seed)": "alternating", "simultaneous": "simultaneous"}


def _data_args() -> list[str]:
    mnist = os.environ.get("GAN_RUNNER_MNIST")
    return [f"data.path={mnist}"] if mnist else []


def measure_costs(cache: Path, repeats: int) -> dict:
    """In this process: a fresh classifier (timed), real digits' scores, and eval vs training time."""
    from gan_runner import data, evaluate, train

    cfg = evaluate.compose([*_data_args(), f"eval.classifier.cache_dir={cache}", "tracking=none"])
    train.configure_threads(cfg.trainer)  # before TensorFlow loads
    from gan_runner.models import dcgan

    judge = dcgan.prepare(cfg)  # trains: the cache dir is new
    n = int(cfg.eval.n_fake)
    # the floor's second set scored like fakes: its FD is eval/fd_floor; the MNIST score and
    # coverage of real digits
    real_scores = judge.scores(judge.split.reference.images[n : 2 * n].astype(np.float32)[..., None] / 255.0)
    real = data.load(cfg.data, cfg.seed)
    gan = train.build_gan(cfg, real)

    def run_steps(k: int) -> None:
        for value in gan.run_steps(k).values():
            float(value)  # waits for the steps

    def generate(k: int) -> np.ndarray:  # as the Trainer generates: the run's eval noise, in chunks
        z = train.eval_noise(cfg.seed, k, gan.config.latent_dim)
        return train.generate_chunked(gan.generate, z, gan.generator.output_shape[1:])

    run_steps(20)  # tracing and warm-up
    steps = 100
    started = time.perf_counter()
    run_steps(steps)
    step_s = (time.perf_counter() - started) / steps
    dcgan.evaluate(generate, real, cfg, 0)  # warm-up (traces the generator at n)
    evals, gens = [], []
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        generate(n)
        gens.append(time.perf_counter() - started)
        started = time.perf_counter()
        dcgan.evaluate(generate, real, cfg, 0)
        evals.append(time.perf_counter() - started)
    return {
        "n": n,
        "eval_every": int(cfg.eval_every),
        "step_s": step_s,
        "eval_s": statistics.median(evals),
        "generate_s": statistics.median(gens),
        "train_s": judge.classifier.train_s,
        "accuracy": judge.accuracy,
        "n_train": len(judge.split.train.labels),
        "updates": int(cfg.eval.classifier.train_steps),
        "real": real_scores,
    }


def bench_quality(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "classifier"
        costs = measure_costs(cache, repeats)
        common = [
            "model=dcgan",
            *_data_args(),
            f"eval.classifier.cache_dir={cache}",
            "tracking.log_model=false",
            "checkpoint.every=0",
            "seed=0",
        ]
        rows: list[tuple[str, dict]] = []
        for i, (label, update) in enumerate(UPDATES.items()):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            _, _, (metrics,) = timed_cli([*common, f"trainer.update={update}", f"train_steps={STEPS}"], folder)
            rows.append((f"{label}, {STEPS} steps", metrics))
        budget, sim = rows[0][1]["perf/loop_s"], rows[1][1]["perf/loop_s"]
        equal_time = max(1, round(STEPS * budget / sim))
        folder = Path(tmp) / "run_equal_time"
        folder.mkdir()
        _, _, (metrics,) = timed_cli([*common, "trainer.update=simultaneous", f"train_steps={equal_time}"], folder)
        rows.append((f"simultaneous, {equal_time} steps (alternating's {budget:.0f} s)", metrics))
    _print(costs, rows)


def _print(costs: dict, rows: list[tuple[str, dict]]) -> None:
    n = costs["n"]
    table = Table(title=f"DCGAN sample quality, N={n} fakes vs {n} reference digits (classifier logits)")
    for column in ("run", "loop s", "eval/fd", "eval/mnist_score", "eval/coverage"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, m in rows:
        table.add_row(
            label,
            f"{m['perf/loop_s']:.0f}",
            f"{m['eval/fd']:.2f}",
            f"{m['eval/mnist_score']:.2f}",
            f"{m['eval/coverage']:.0f}",
        )
    r = costs["real"]  # r["fd"] is the floor
    table.add_row(
        f"{n} real reference digits (eval/fd_floor)",
        "",
        f"{r['fd']:.2f}",
        f"{r['mnist_score']:.2f}",
        f"{r['coverage']}",
    )
    console.print(table)
    cost = Table(title="What judging costs")
    cost.add_column("figure")
    cost.add_column("value", justify="right")
    cost.add_column("target", justify="right")
    cost.add_row(
        f"classifier training ({costs['n_train']} digits, {costs['updates']} updates), s",
        f"{costs['train_s']:.1f}",
        "<= 60",
    )
    cost.add_row("classifier accuracy on the held-out reference digits", f"{costs['accuracy']:.4f}", ">= 0.97")
    cost.add_row(f"one evaluation of N={n} (generate + classify + metrics), s", f"{costs['eval_s']:.2f}", "")
    cost.add_row(f"  of which generating {n} fakes, s", f"{costs['generate_s']:.2f}", "")
    between = costs["eval_every"] * costs["step_s"]
    cost.add_row(
        f"training between evaluations ({costs['eval_every']} steps x {costs['step_s'] * 1000:.0f} ms), s",
        f"{between:.1f}",
        "",
    )
    cost.add_row("evaluation / training between evaluations", f"{costs['eval_s'] / between:.1%}", "< 10%")
    console.print(cost)

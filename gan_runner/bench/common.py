"""What the bench sections share: one console, and running the real CLI as a user would."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)  # piped: no wrapped tables


def cli_run(args: list[str], store: str) -> float:
    """Run `python -m gan_runner` as a user would; return its wall time in seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gan_runner", f"tracking.uri={store}", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def last_run_metrics(store: str, experiment: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return run.data.metrics


def timed_cli(args: list[str], folder: Path) -> tuple[float, float, list[dict[str, float]]]:
    """`python -m gan_runner <args>` on a fresh store in `folder`: (wall s, CPU s of the process
    and the workers it waited for, metrics of its runs). CPU seconds hardly change when other
    work shares the cores; wall seconds do."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cpu_before, started = _children_cpu(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gan_runner", *args, f"tracking.uri={store}"],
        cwd=folder,
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    failed = [r.data.tags.get("error", r.info.status) for r in runs if r.info.status != "FINISHED"]
    if failed:
        raise RuntimeError(f"gan_runner {' '.join(args)}: {len(failed)} runs did not finish: {failed[0]}")
    return wall, cpu, [r.data.metrics for r in runs if "perf/loop_s" in r.data.metrics]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# The issue-15 scoreboard: each section records its targeted figures here; `python -m gan_runner.bench`
# prints them together at the end, one row each with a pass/fail mark.
SCOREBOARD: list[dict] = []


def record_target(work: str, measured: str, target: str, passed: bool | None) -> None:
    """One scoreboard row: `measured` and `target` as printed (units included); passed=None when the
    figure could not be measured here (e.g. no GPU), which the board prints as such."""
    SCOREBOARD.append({"work": work, "measured": measured, "target": target, "passed": passed})

"""Shared fixtures: the real Hydra config, a real SQLite MLflow store in a temp dir, and a
helper that runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from gan_runner.config import CONF_DIR, validate

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("GAN_RUNNER_MNIST", ROOT.parent / "shared" / "datasets" / "mnist"))

# A 1-D run small enough for a test: 60 steps, eval every 30, small eval sample.
TINY_1D = ["train_steps=60", "eval_every=30", "log_every=10", "plot_every=60", "eval.n_fake=2000"]


def compose_cfg(overrides: list[str]):
    """The real composed + validated config, as `python -m gan_runner <overrides>` would see it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return validate(compose(config_name="config", overrides=overrides))


@pytest.fixture
def store(tmp_path) -> str:
    """A fresh SQLite tracking URI in a temp dir."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m gan_runner <args>` in a subprocess, as a user would type it."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "gan_runner", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def all_runs(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]

"""trainer.strategy=mirrored on the CPU split into 2 logical devices, against the one-device run.

The logical devices must be configured before TensorFlow initialises its devices, which the
pytest process has long done: the scenarios run in a fresh interpreter (this file run as a
script), which logs to a real SQLite store and prints what it found as JSON.

At an equal global batch, MirroredGanStep draws the same batch and noise as GanStep and each
replica's loss is its share of the global mean, so the losses match the one-device run up to
float summation order. gaussian1d has no BatchNorm; the DCGAN only matches roughly, because
Keras' BatchNormalization normalises with each replica's local batch statistics (half the
batch each), not the global ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "train_steps=20",
    "log_every=1",
    "eval_every=10",
    "sample_every=20",
    "eval.n_fake=500",
    "checkpoint.every=10",
    "tracking.experiment=dist",
]
LOSSES = ("train/d_loss", "train/g_loss")
TECH_KEYS = (*LOSSES, "train/d_penalty", "eval/kl_target")
TECHNIQUES = ["loss=wasserstein", "penalty=gp", "trainer.d_steps=2", "ema.decay=0.9", "model.d_spectral_norm=true"]


def scenarios(tmp: Path) -> dict:
    """Runs in the child process: one-device run, mirrored run, mirrored run resumed halfway."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from mlflow.tracking import MlflowClient

    from conftest import compose_cfg, metric_history
    from gan_runner import distribute, train
    from gan_runner.config import ConfigError

    store = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)

    def run(name: str, *extra: str) -> dict:
        overrides = [f"tracking.uri={store}", f"tracking.run_name={name}", *TINY, *extra]
        train.run(compose_cfg(overrides), overrides)
        (found,) = client.search_runs(
            [client.get_experiment_by_name("dist").experiment_id], filter_string=f"attributes.run_name = '{name}'"
        )
        return {
            "run_id": found.info.run_id,
            "status": found.info.status,
            **{k: metric_history(client, found.info.run_id, k) for k in TECH_KEYS if k in found.data.metrics},
        }

    with distribute.scope("mirrored") as strategy:
        replicas = strategy.num_replicas_in_sync
        step_class = distribute.step_class().__name__
    out = {
        "replicas": replicas,
        "step_class": step_class,
        "default": run("default"),
        "mirrored": run("mirrored", "trainer.strategy=mirrored"),
    }
    # The GAN techniques under mirrored: each replica's share of the penalty, the extra D
    # updates' draws made once in cross-replica context, the EMA updated there, SN's u per replica.
    out["techniques"] = {
        name: run(f"tech_{name}", f"trainer.strategy={strategy}", *TECHNIQUES)
        for name, strategy in (("default", "default"), ("mirrored", "mirrored"))
    }
    # Stop at step 10 (train_steps is allowed to change on resume), then resume to 20.
    half = run("half", "trainer.strategy=mirrored", "train_steps=10")
    try:  # the other strategy, asked for on the command line: refused before anything runs
        run("half", "trainer.strategy=default", f"resume={half['run_id']}")
        out["refused"] = ""
    except ConfigError as err:
        out["refused"] = str(err)
    out["resumed"] = run("half", "trainer.strategy=mirrored", f"resume={half['run_id']}")
    return out


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("distribute")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp)], cwd=tmp, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mirrored_runs_on_two_replicas(result):
    assert result["replicas"] == 2 and result["step_class"] == "MirroredGanStep"
    assert result["mirrored"]["status"] == "FINISHED"


def test_mirrored_losses_match_one_device_at_equal_global_batch(result):
    for key in LOSSES:
        one, two = result["default"][key], result["mirrored"][key]
        assert [s for s, _ in one] == [s for s, _ in two] == list(range(1, 21)), key
        assert [v for _, v in two] == pytest.approx([v for _, v in one], rel=1e-4, abs=1e-5), key
        assert len({v for _, v in two}) > 10, key  # training moved: not a constant that matches by accident


def test_mirrored_techniques_match_one_device(result):
    """loss=wasserstein penalty=gp trainer.d_steps=2 ema.decay=0.9 model.d_spectral_norm=true:
    losses, the penalty and the EMA generator's eval/kl_target within float tolerance."""
    one, two = result["techniques"]["default"], result["techniques"]["mirrored"]
    assert two["status"] == "FINISHED"
    for key in TECH_KEYS:
        assert [s for s, _ in one[key]] == [s for s, _ in two[key]] and len(one[key]) >= 2, key
        assert [v for _, v in two[key]] == pytest.approx([v for _, v in one[key]], rel=1e-3, abs=1e-4), key
    assert len({v for _, v in two["train/d_penalty"]}) > 10  # training moved


def test_resume_with_another_strategy_is_refused(result):
    assert "trainer.strategy: mirrored -> default" in result["refused"]


def test_mirrored_resume_continues_the_same_run_exactly(result):
    resumed, straight = result["resumed"], result["mirrored"]
    assert resumed["run_id"] and resumed["status"] == "FINISHED"
    for key in LOSSES:
        assert [s for s, _ in resumed[key]] == list(range(1, 21)), key
        # Same process, same strategy, state restored from the step-10 checkpoint: bit for bit.
        assert resumed[key] == straight[key], key


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(json.dumps(scenarios(Path(sys.argv[1]))))

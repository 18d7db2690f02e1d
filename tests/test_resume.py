"""Exact resume and determinism, on real tiny models, a real SQLite MLflow store and real
checkpoint files.

- A run of 2N steps, and a run of N steps resumed to 2N, log identical metrics at every step
  and end with identical state (G, D, both optimizers, step, RNG), for both models; the resume
  continues the same MLflow run, which ends FINISHED.
- A resume whose config changes training is refused with one line (exit 2, old run untouched);
  harmless differences (train_steps, log cadence) are allowed; weights.load is a new run.
- The same config and seed in two processes: identical metrics and weights.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import MNIST, ROOT, all_runs, compose_cfg, run_cli
from gan_runner import checkpoint, train
from gan_runner.store import resolve

# (overrides, N): cadences divide N, so the N-step run's final logs fall where the 2N run logs too.
# dcgan's digit classifier (eval/fd etc.) trains briefly, once per process, into {cache}.
MODELS = {
    "gaussian1d": (
        [
            "model=gaussian1d",
            "log_every=10",
            "eval_every=20",
            "plot_every=40",
            "eval.n_fake=500",
            "checkpoint.every=20",
        ],
        20,
    ),
    "dcgan": (
        [
            "model=dcgan",
            f"data.path={MNIST}",
            "data.n=256",
            "batch.size=16",
            "model.latent_dim=8",
            "model.g_filters=[16,8,8,1]",
            "model.d_filters=[8,8,8,8]",
            "log_every=2",
            "eval_every=4",
            "plot_every=8",
            "sample_every=8",
            "eval.n_fake=64",
            "tracking.log_model=false",
            "eval.classifier.train_steps=20",
            "eval.classifier.cache_dir={cache}",
            "checkpoint.every=4",
        ],
        4,
    ),
}


def model_args(model: str, cache: Path) -> tuple[list[str], int]:
    args, n = MODELS[model]
    return [a.format(cache=cache) for a in args], n


def histories(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of a run except wall-clock timings (perf/*, *_s), as sorted (step, value) lists."""
    keys = [k for k in client.get_run(run_id).data.metrics if not (k.startswith("perf/") or k.endswith("_s"))]
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


def final_state(store: str, run_id: str) -> checkpoint.Checkpoint:
    """The newest checkpoint of a run: checkpoints sit beside the SQLite store by default."""
    folder = resolve(compose_cfg([f"tracking.uri={store}"])).checkpoints / run_id
    return checkpoint.newest(folder)


def _train(store: str, overrides: list[str]) -> str:
    """One in-process run; returns the run id it logged to (new or resumed)."""
    train.run(compose_cfg([f"tracking.uri={store}", "tracking.flush_every_s=1000", *overrides]), overrides)
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri=store).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri=store).search_experiments()],
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id


@dataclass
class Pair:
    """A run of 2N steps ("full") and one of N steps resumed to 2N ("half"), as logged."""

    store: str
    n: int
    full: str  # run ids
    half: str
    runs: dict  # run id -> mlflow Run, read right after the resume
    history: dict  # run id -> histories()
    state: dict  # run id -> final Checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Pair]:
    """Per model, in this process and its own SQLite store: the two runs, read back at once
    (later tests may extend them)."""

    cache = tmp_path_factory.mktemp("classifier")
    return {model: _pair(tmp_path_factory, model, *model_args(model, cache)) for model in MODELS}


def _pair(tmp_path_factory, model: str, args: list[str], n: int) -> Pair:
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path_factory.mktemp(model) / 'mlflow.db'}"
    full = _train(store, [*args, f"train_steps={2 * n}", "tracking.run_name=full"])
    half = _train(store, [*args, f"train_steps={n}", "tracking.run_name=half"])
    assert final_state(store, half).step == n
    resumed = _train(store, [*args, f"train_steps={2 * n}", f"resume={half}"])
    assert resumed == half  # the same MLflow run continued, no new one
    client = MlflowClient(tracking_uri=store)
    return Pair(
        store,
        n,
        full,
        half,
        {r.info.run_id: r for r in all_runs(client, model)},
        {i: histories(client, i) for i in (full, half)},
        {i: final_state(store, i) for i in (full, half)},
    )


# The GAN techniques' extra state: the EMA generator, the RNG draws of extra D updates and of
# gp's alphas, spectral norm's power-iteration vectors (non-trainable weights of D).
TECHNIQUES = {
    "wgan_gp_d5_ema": ["loss=wasserstein", "penalty=gp", "trainer.d_steps=5", "ema.decay=0.999"],
    "hinge_sn": ["loss=hinge", "model.d_spectral_norm=true"],
}
# trainer.precision: the loss-scaled optimizers' state (dynamic scale, its counter) is checkpointed.
PRECISIONS = {
    "mixed_float16": ["trainer.precision=mixed_float16"],
    "mixed_bfloat16": ["trainer.precision=mixed_bfloat16"],
}


@pytest.fixture(scope="module")
def trained_techniques(tmp_path_factory) -> dict[str, Pair]:
    cache = tmp_path_factory.mktemp("classifier")
    out = {}
    for model in MODELS:
        args, n = model_args(model, cache)
        for name, extra in TECHNIQUES.items():
            out[f"{model}-{name}"] = _pair(tmp_path_factory, model, [*args, *extra], n)
    return out


@pytest.mark.parametrize("model", list(MODELS))
def test_n_steps_resumed_to_2n_equals_2n_steps_bitwise(model, trained):
    _check_bitwise(trained[model])


@pytest.mark.parametrize("case", [f"{m}-{t}" for m in MODELS for t in TECHNIQUES])
def test_techniques_resume_bitwise(case, trained_techniques):
    pair = trained_techniques[case]
    _check_bitwise(pair)
    arrays = pair.state[pair.full].arrays
    if "ema" in case:
        assert any(k.startswith("generator_ema.") for k in arrays)
        assert "eval_raw/" + ("kl_target" if case.startswith("gaussian1d") else "fd") in pair.history[pair.full]
    else:  # SN's vector u is a weight of D, so in the checkpoint: kernel, bias, u per layer
        n_layers = 2 if case.startswith("gaussian1d") else 5
        assert len([k for k in arrays if k.startswith("discriminator.")]) == 3 * n_layers


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_mixed_precision_resume_bitwise(model, precision, tmp_path_factory, trained):
    args, n = model_args(model, tmp_path_factory.mktemp("classifier"))
    pair = _pair(tmp_path_factory, model, [*args, *PRECISIONS[precision]], n)
    _check_bitwise(pair)
    arrays, plain = pair.state[pair.full].arrays, trained[model].state[trained[model].full].arrays
    # LossScaleOptimizer's own variables come first: iteration, learning_rate, step_counter, dynamic_scale
    extra = {"mixed_float16": 4, "mixed_bfloat16": 0}[precision]
    for opt in ("d_optimizer.", "g_optimizer."):
        count = len([k for k in arrays if k.startswith(opt)])
        assert count == len([k for k in plain if k.startswith(opt)]) + extra, (opt, count)
    if extra:  # the scale itself (2 ** 15 at the start, halved on overflow, doubled after 2000 good steps)
        assert float(arrays["d_optimizer.3"]) in [2.0**k for k in range(-10, 17)], arrays["d_optimizer.3"]


def _check_bitwise(pair: Pair) -> None:
    n = pair.n
    assert set(pair.runs) == {pair.full, pair.half}
    run = pair.runs[pair.half]
    assert run.info.status == "FINISHED" and run.data.tags["resumed"].startswith(f"from step {n} ")
    expected, got = pair.history[pair.full], pair.history[pair.half]
    assert len(expected) >= 6 and "train/d_loss" in expected
    assert max(s for s, _ in expected["train/d_loss"]) == 2 * n
    assert got == expected  # every key, every step, every value (floats, compared exactly)

    a, b = pair.state[pair.full], pair.state[pair.half]
    assert a.step == b.step == 2 * n
    assert sorted(a.arrays) == sorted(b.arrays) and any(k.startswith("generator.") for k in a.arrays)
    for name in a.arrays:  # G, D, both optimizers' slots, the step and the RNG state
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)


def test_resume_refuses_what_matters_allows_the_rest_and_weights_load_is_a_new_run(trained):
    from mlflow.tracking import MlflowClient

    pair = trained["gaussian1d"]
    client = MlflowClient(tracking_uri=pair.store)
    args, _ = model_args("gaussian1d", Path())
    _refused_then_allowed(pair.store, client, args, pair.half, pair.n)
    _weights_load_is_a_new_run(pair.store, client, args, pair.full, pair.n)


def _refused_then_allowed(store, client, args, run_id, n):
    before = client.get_run(run_id)
    files = sorted(p.name for p in final_state(store, run_id).path.parent.iterdir())
    result = run_cli(
        [
            f"tracking.uri={store}",
            *args,
            "model.hidden=64",
            "labels.real=1.0",
            f"train_steps={3 * n}",
            "log_every=5",
            f"resume={run_id}",
        ],
        cwd=Path(store[len("sqlite:///") :]).parent,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "model.hidden: 32 -> 64" in lines[0] and "labels.real: 0.9 -> 1.0" in lines[0], lines[0]
    assert "train_steps" not in lines[0].split("(only")[0]  # a harmless difference is not listed
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time, after.data.metrics) == (
        before.info.status,
        before.info.end_time,
        before.data.metrics,
    )
    assert sorted(p.name for p in final_state(store, run_id).path.parent.iterdir()) == files

    # train_steps and the logging cadence may differ; `last` finds the newest checkpoint.
    assert _train(store, [*args, f"train_steps={3 * n}", "log_every=5", "resume=last"]) == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = [s for s, _ in histories(client, run_id)["train/d_loss"]]
    assert steps == [*range(10, 2 * n + 1, 10), *range(2 * n + 5, 3 * n + 1, 5)]


def _weights_load_is_a_new_run(store, client, args, source_run, n):
    """weights.load (the seed's load_W): a NEW run that starts at step 0 from saved weights."""
    new = _train(store, [*args, f"train_steps={n}", f"weights.load={source_run}"])
    run = client.get_run(new)
    assert new != source_run and run.data.tags["weights.load"] == source_run
    assert "resumed" not in run.data.tags and run.data.params["weights.load"] == source_run
    assert [s for s, _ in histories(client, new)["train/d_loss"]] == list(range(10, n + 1, 10))
    assert final_state(store, new).step == n  # its own step counter, from 0


DETERMINISM_SCRIPT = """
import sys
from conftest import compose_cfg
from gan_runner import train
for overrides in {runs!r}:
    train.run(compose_cfg([f"tracking.uri=sqlite:///{{sys.argv[1]}}/mlflow.db", *overrides]), overrides)
"""


def test_same_config_same_seed_two_processes_identical(trained, tmp_path):
    """The 2N-step runs of both models again, in a fresh process: identical metric histories
    and final weights to those this process logged, without enable_op_determinism."""
    import tensorflow as tf
    from mlflow.tracking import MlflowClient
    from tensorflow.python.util import _pywrap_util_port  # private, but the only way to ask

    # What changes the numbers besides the seed is passed on as this process runs: the thread
    # pools and oneDNN (both fixed when TensorFlow starts; other tests may have started it here).
    threads = [
        f"trainer.intra_op_threads={tf.config.threading.get_intra_op_parallelism_threads()}",
        f"trainer.inter_op_threads={tf.config.threading.get_inter_op_parallelism_threads()}",
    ]
    runs = [
        [
            *model_args(model, tmp_path / "classifier")[0],
            f"train_steps={2 * pair.n}",
            "tracking.run_name=full",
            *threads,
        ]
        for model, pair in trained.items()
    ]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_ENABLE_ONEDNN_OPTS": str(int(_pywrap_util_port.IsMklEnabled())),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-c", DETERMINISM_SCRIPT.format(runs=runs), str(tmp_path)],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    other_store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    other = MlflowClient(tracking_uri=other_store)
    for model, pair in trained.items():
        (run,) = all_runs(other, model)
        expected = pair.history[pair.full]
        assert histories(other, run.info.run_id) == expected and len(expected["train/d_loss"]) >= 4, model
        mine, theirs = pair.state[pair.full].arrays, final_state(other_store, run.info.run_id).arrays
        names = [k for k in mine if k.startswith("generator.")]
        assert names and sorted(names) == sorted(k for k in theirs if k.startswith("generator."))
        for name in names:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"{model} {name}")


def test_checkpoint_holds_the_whole_state_and_meta(tmp_path):
    """The file layout resume relies on (meta with step, run id and config; RNG states); keep K."""
    cfg_args = [
        "tracking=none",
        f"checkpoint.dir={tmp_path}",
        *model_args("gaussian1d", tmp_path)[0],
        "train_steps=20",
        "checkpoint.every=5",
        "checkpoint.keep=2",
    ]
    cfg = compose_cfg(cfg_args)
    train.run(cfg, cfg_args)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert [p.name for p in checkpoint.checkpoints(folder)] == ["ckpt-000000015.npz", "ckpt-000000020.npz"]
    kept = {"config.yaml", "plots", "weights"}  # tracking=none keeps the run's files beside its checkpoints
    assert sorted(p.name for p in folder.iterdir() if p.name not in kept) == [
        "ckpt-000000015.npz",
        "ckpt-000000020.npz",
        "run.json",
    ]
    state = checkpoint.newest(folder)
    assert state.step == 20 and state.meta["run_id"] is None and state.meta["config"]["train_steps"] == 20
    names = set(state.arrays)
    assert {"step", "rng", "host.numpy_keys"} <= names
    for group in ("generator.", "discriminator.", "d_optimizer.", "g_optimizer."):
        assert any(n.startswith(group) for n in names), group
    assert int(state.arrays["step"]) == 20
    # The meta as the file's bytes hold it: a zip member __meta__.npy of UTF-8 JSON, readable
    # without TensorFlow or gan_runner, with the resolved config the run was started with.
    import io
    import zipfile

    from omegaconf import OmegaConf

    with zipfile.ZipFile(folder / "ckpt-000000020.npz") as npz:
        assert "__meta__.npy" in npz.namelist()
        raw = np.load(io.BytesIO(npz.read("__meta__.npy")), allow_pickle=False)
    meta = json.loads(raw.tobytes().decode("utf-8"))
    assert meta["format"] == 1 and meta["step"] == 20 and meta["run_id"] is None and meta["tracking_uri"] is None
    assert meta["config"] == OmegaConf.to_container(cfg, resolve=True)
    assert len(meta["numpy_random"]) == 3 and len(meta["python_random"]) == 3
    assert meta == state.meta
    assert json.loads((folder / "run.json").read_text()) == {"run_id": None, "tracking_uri": None}

"""The seed's DCGAN (issue 3): the user's command end to end through the real CLI and a real
SQLite MLflow store, the default architecture's shapes and sizes, BatchNorm's mode in the two
updates, continuing from a run's weights, and bad data through the CLI.

Speed: the CLI runs use narrow nets (the layer sizes are config values) and a small batch; the
default architecture is only built, never trained, here. Bad data is tried in parallel
subprocesses (they fail before TensorFlow loads)."""

from __future__ import annotations

import gzip
import math
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import MNIST, all_runs, compose_cfg, metric_history, run_cli

needs_mnist = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"no MNIST in {MNIST}")

# Narrow nets, small batch and data: the seed's structure at a fraction of the cost.
TINY = ["batch.size=16", "data.n=512", "eval.n_fake=64", "model.g_filters=[16,8,8,1]", "model.d_filters=[8,8,16,16]"]
GRID_ROWS = GRID_COLS = 4  # the default sample grid: 4 x 4 digits of 28 x 28


def _tiny_cfg(extra=()):
    return compose_cfg(["model=dcgan", f"data.path={MNIST}", *TINY, *extra])


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`python -m gan_runner model=dcgan train_steps=100 data.path=<MNIST>` (plus TINY) in a
    subprocess; the finished run, its client and a scratch folder."""
    from mlflow.tracking import MlflowClient

    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST in {MNIST}")
    tmp = tmp_path_factory.mktemp("dcgan_cli")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    result = run_cli(
        ["model=dcgan", "train_steps=100", f"data.path={MNIST}", f"tracking.uri={store}", *TINY],
        cwd=tmp,
        env={"TF_ENABLE_ONEDNN_OPTS": ""},
    )  # unset: the model's default (trainer.onednn=true) decides
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    (run,) = all_runs(client, "dcgan")
    return run, client, store, tmp


# ---- the user's command ---------------------------------------------------------------------


def test_cli_run_logs_metrics_at_the_cadence(cli_run):
    run, client, _, _ = cli_run
    assert run.info.status == "FINISHED"
    assert run.data.tags["model"] == "dcgan" and run.data.tags["data"] == "mnist"
    assert run.data.tags["tf.onednn"] == "on"  # dcgan's trainer.onednn=true, applied before TensorFlow loaded
    assert run.data.params["train_steps"] == "100" and run.data.params["model.latent_dim"] == "100"
    rid = run.info.run_id
    # log_every=50 (the model's default): steps 50 and 100
    for key in ("train/d_loss", "train/d_acc", "train/g_loss", "train/g_acc", "train/lr_d", "train/lr_g"):
        history = metric_history(client, rid, key)
        assert [s for s, _ in history] == [50, 100], key
        assert all(math.isfinite(v) for _, v in history), key
    # fractions of the step's decisions: D judges 16 real + 16 fake, G's 16 fakes are judged
    for key, decisions in (("train/d_acc", 32), ("train/g_acc", 16)):
        for _, value in metric_history(client, rid, key):
            assert value * decisions == pytest.approx(round(value * decisions), abs=1e-4), (key, value)
    # The seed's Keras-2 decay: lr / (1 + decay * t) at t = 100 steps
    assert run.data.metrics["train/lr_d"] == pytest.approx(2e-4 / (1 + 6e-8 * 100), rel=1e-6)
    assert run.data.metrics["train/lr_g"] == pytest.approx(1e-4 / (1 + 3e-8 * 100), rel=1e-6)
    # eval_every=500 > train_steps: evaluated once, at the last step
    evals = [k for k in run.data.metrics if k.startswith("eval/") and not k.endswith("_floor")]
    assert evals and all([s for s, _ in metric_history(client, rid, k)] == [100] for k in evals)
    assert [s for s, _ in metric_history(client, rid, "eval/fd_floor")] == [0]  # once per run


def test_cli_run_logs_the_sample_grid_as_png(cli_run, tmp_path):
    from PIL import Image

    run, client, _, _ = cli_run
    pngs = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    # sample_every=500 > train_steps: one grid, at the last step (MLflow puts the step in the name)
    assert len(pngs) == 1 and "+step+100+" in pngs[0], pngs
    image = Image.open(client.download_artifacts(run.info.run_id, pngs[0], str(tmp_path)))
    assert image.format == "PNG" and image.mode == "L"
    pixels = np.asarray(image)
    # 4 x 4 tiles of 28 x 28 with a 2-pixel black border: 4 * 30 + 2 = 122 pixels each way
    assert image.size == (GRID_COLS * 30 + 2, GRID_ROWS * 30 + 2)
    tiles = [
        pixels[2 + 30 * r : 30 * (r + 1), 2 + 30 * c : 30 * (c + 1)] for r in range(GRID_ROWS) for c in range(GRID_COLS)
    ]
    assert all(t.shape == (28, 28) for t in tiles)
    assert len({t.tobytes() for t in tiles}) == 16  # 16 different digits, not one tile repeated
    assert all(t.std() > 0 for t in tiles)
    border = pixels.copy()
    for r in range(GRID_ROWS):
        for c in range(GRID_COLS):
            border[2 + 30 * r : 30 * (r + 1), 2 + 30 * c : 30 * (c + 1)] = 0
    assert not border.any()
    # the tiles are the final generator's output for the run's fixed 16 noise vectors
    from gan_runner import plots
    from gan_runner.models import dcgan

    generator = dcgan.build_generator(_tiny_cfg().model)
    generator.load_weights(client.download_artifacts(run.info.run_id, "weights/generator.weights.h5", str(tmp_path)))
    z = np.random.default_rng([0, 16]).uniform(-1, 1, (16, 100)).astype(np.float32)  # Trainer.generate's noise
    expected = plots.image_grid(generator(z, training=False).numpy(), GRID_ROWS, GRID_COLS)
    assert np.abs(expected.astype(int) - pixels.astype(int)).max() <= 1


def test_cli_run_weights_load_and_match_the_logged_keras_model(cli_run, tmp_path):
    import keras
    import mlflow

    from gan_runner import checkpoint
    from gan_runner.models import dcgan

    run, client, store, _ = cli_run
    rid = run.info.run_id
    folder = Path(client.download_artifacts(rid, "weights", str(tmp_path)))
    cfg = _tiny_cfg()
    keras.utils.set_random_seed(123)
    generator = dcgan.build_generator(cfg.model)
    discriminator = dcgan.build_discriminator(cfg.model, (28, 28, 1))
    generator.load_weights(folder / "generator.weights.h5")
    discriminator.load_weights(folder / "discriminator.weights.h5")
    # both nets as the run's final checkpoint holds them (beside the store: checkpoints/<run id>/)
    final = checkpoint.read(Path(store[len("sqlite:///") :]).parent / "checkpoints" / rid / "ckpt-000000100.npz")
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        weights = net.get_weights()
        assert len(weights) == len([k for k in final.arrays if k.startswith(f"{name}.")]), name
        for i, value in enumerate(weights):
            np.testing.assert_array_equal(value, final.arrays[f"{name}.{i}"], err_msg=f"{name}.{i}")

    # The generator as an MLflow Keras model, with a signature: z (-1, 100) -> (-1, 28, 28, 1)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)  # runs:/ URIs resolve through the global tracking URI
    try:
        info = mlflow.models.get_model_info(f"runs:/{rid}/generator")
        logged = mlflow.keras.load_model(f"runs:/{rid}/generator")
    finally:
        mlflow.set_tracking_uri(previous_uri)
    assert info.signature is not None
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 100]
    assert list(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 28, 28, 1]
    z = np.random.default_rng(0).uniform(-1, 1, (8, 100)).astype(np.float32)
    ours = generator(z, training=False).numpy()
    np.testing.assert_allclose(logged(z, training=False).numpy(), ours, atol=1e-6)
    assert ours.shape == (8, 28, 28, 1) and 0.0 <= ours.min() and ours.max() <= 1.0
    assert discriminator(ours).shape == (8, 1)


def test_continue_from_a_run_id_starts_from_its_weights(cli_run, tmp_path):
    """The seed's load_W: weights.load=<run id>. With learning rates of 1e-20 a step cannot move
    the weights, so the new run's weights are the old run's (a fresh start would differ)."""
    import keras

    from gan_runner import train
    from gan_runner.models import dcgan

    run, client, store, _ = cli_run
    old_id = run.info.run_id
    extra = [
        f"tracking.uri={store}",
        f"weights.load={old_id}",
        "train_steps=2",
        "log_every=1",
        "optimizer.d.learning_rate=1e-20",
        "optimizer.g.learning_rate=1e-20",
        "tracking.log_model=false",
    ]
    train.run(_tiny_cfg(extra), extra)
    (new,) = [r for r in all_runs(client, "dcgan") if "weights.load" in r.data.tags]
    assert new.info.status == "FINISHED" and new.data.tags["weights.load"] == old_id
    cfg = _tiny_cfg()
    for name, build in (
        ("generator", lambda: dcgan.build_generator(cfg.model)),
        ("discriminator", lambda: dcgan.build_discriminator(cfg.model, (28, 28, 1))),
    ):
        before, after = build(), build()
        before.load_weights(client.download_artifacts(old_id, f"weights/{name}.weights.h5", str(tmp_path / "old")))
        after.load_weights(
            client.download_artifacts(new.info.run_id, f"weights/{name}.weights.h5", str(tmp_path / "new"))
        )
        for a, b in zip(before.trainable_weights, after.trainable_weights):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-12)


def test_dcgan_mnist_is_another_name_for_dcgan():
    one = OmegaConf.to_container(compose_cfg(["model=dcgan"]), resolve=True)
    other = OmegaConf.to_container(compose_cfg(["model=dcgan_mnist"]), resolve=True)
    assert one == other
    assert one["data"]["name"] == "mnist" and one["schedule"]["name"] == "inverse_time"


@needs_mnist
def test_fd_falls_over_a_short_run():
    """Learning, not just running: 100 steps of the tiny nets (Adam 2e-3) take eval/fd of 200
    fakes from the untrained G's value to well below it (measured: 379 -> 148, coverage 1 -> 8)."""
    from gan_runner import data, tracking, train
    from gan_runner.models import dcgan

    cfg = _tiny_cfg(
        [
            "tracking=none",
            "train_steps=100",
            "eval_every=100",
            "sample_every=100",
            "plot_every=100",
            "eval.n_fake=200",
            "optimizer=adam",
            "optimizer.d.learning_rate=2e-3",
            "optimizer.g.learning_rate=2e-3",
            "tracking.log_model=false",
        ]
    )
    real = data.load(cfg.data, cfg.seed)
    trainer = train.Trainer(cfg, real, tracking.NullTracker())
    before = dcgan.evaluate(trainer.generate, real, cfg, 0)
    trainer.fit()
    after = trainer.history
    assert after["eval/fd"] < 0.6 * before["eval/fd"], (before, after["eval/fd"])
    assert after["eval/coverage"] > before["eval/coverage"]


def test_the_same_run_in_a_fresh_process_with_onednn_on_logs_identical_metrics(cli_run, tmp_path):
    """Determinism with the DCGAN's default oneDNN on (the rest of the suite forces it off):
    the fixture's command again in a fresh process, every metric identical, and the same weights."""
    run, client, _, _ = cli_run
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(
        [
            "model=dcgan",
            "train_steps=100",
            f"data.path={MNIST}",
            f"tracking.uri={store}",
            *TINY,
            "tracking.log_model=false",
        ],  # logged after the last metric: saves time, changes no number
        cwd=tmp_path,
        env={"TF_ENABLE_ONEDNN_OPTS": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    other_client = MlflowClient(tracking_uri=store)
    (other,) = all_runs(other_client, "dcgan")
    assert other.data.tags["tf.onednn"] == run.data.tags["tf.onednn"] == "on"
    # all but timings and whether the digit classifier came from the cache (the second run's did)
    keys = sorted(
        k for k in run.data.metrics if not (k.startswith("perf/") or k.endswith("_s") or k == "classifier/cached")
    )
    assert {"train/d_loss", "eval/fd", "eval/mnist_score"} <= set(keys)
    assert sorted(k for k in other.data.metrics if k in run.data.metrics) == sorted(other.data.metrics)
    for key in keys:
        assert metric_history(other_client, other.info.run_id, key) == metric_history(client, run.info.run_id, key), key
    for name in ("generator", "discriminator"):
        mine = client.download_artifacts(run.info.run_id, f"weights/{name}.weights.h5", str(tmp_path / "a"))
        theirs = other_client.download_artifacts(other.info.run_id, f"weights/{name}.weights.h5", str(tmp_path / "b"))
        assert _h5_arrays(mine).keys() == _h5_arrays(theirs).keys()
        for key, value in _h5_arrays(mine).items():
            np.testing.assert_array_equal(value, _h5_arrays(theirs)[key], err_msg=f"{name} {key}")


def _h5_arrays(path) -> dict[str, np.ndarray]:
    """Every dataset of a Keras .weights.h5 file by its path in the file."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda key, item: out.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset) else None)
    return out


@needs_mnist
def test_nan_samples_with_finite_losses_are_a_divergence_and_max_mode_penalty_is_negative(tmp_path, store, client):
    """Divergence seen in the samples only: G's BatchNorm moving means set to NaN leave training
    (batch statistics) finite, while the evaluation's fakes (inference mode) are NaN. The run
    ends FAILED with tag divergence at the eval step; with on_divergence=penalty and
    objective_mode=max the sweeper gets -penalty (worse than any real value when maximising)."""
    import keras

    from gan_runner import train
    from gan_runner.models import dcgan

    cfg = _tiny_cfg()
    generator, discriminator = dcgan.build_generator(cfg.model), dcgan.build_discriminator(cfg.model, (28, 28, 1))
    moving = [v for v in generator.non_trainable_weights if "moving_mean" in v.path]
    assert moving
    for v in moving:
        v.assign(np.full(v.shape, np.nan, np.float32))
    folder = tmp_path / "nan_weights"
    folder.mkdir()
    generator.save_weights(folder / "generator.weights.h5")
    discriminator.save_weights(folder / "discriminator.weights.h5")
    keras.backend.clear_session()

    args = [
        f"tracking.uri={store}",
        f"weights.load={folder}",
        "train_steps=4",
        "log_every=1",
        "eval_every=2",
        "sample_every=100",
        "plot_every=100",
        "tracking.log_model=false",
    ]
    with pytest.raises(train.Diverged, match="diverged at step 2: the generated samples is not finite"):
        train.run(_tiny_cfg(args), args)
    (run,) = all_runs(client, "dcgan")
    assert run.info.status == "FAILED" and run.data.tags["divergence"] == "step 2"
    assert [s for s, _ in metric_history(client, run.info.run_id, "train/d_loss")] == [1, 2]  # finite losses
    assert "eval/fd" not in run.data.metrics

    penalty = [
        *args[1:],
        "tracking=none",
        "on_divergence=penalty",
        "sweep.penalty=123",
        "objective=eval/mnist_score",
        "objective_mode=max",
    ]
    assert train.run(_tiny_cfg(penalty), penalty) == -123.0  # (min mode, +123: tests/test_signals.py)


# ---- the default architecture -----------------------------------------------------------------


def test_default_nets_have_the_seeds_shapes_and_parameter_counts():
    from gan_runner.models import dcgan

    cfg = compose_cfg(["model=dcgan"])
    generator = dcgan.build_generator(cfg.model)
    discriminator = dcgan.build_discriminator(cfg.model, (28, 28, 1))
    z = np.random.default_rng(0).uniform(-1, 1, (3, 100)).astype(np.float32)
    fake = generator(z, training=False)
    assert tuple(fake.shape) == (3, 28, 28, 1) and tuple(discriminator(fake).shape) == (3, 1)

    # The seed's layers (SEED.md 2), counted by hand. Conv: k*k*c_in*c_out + c_out;
    # BatchNorm: gamma, beta (trained) + moving mean, variance (not trained) per channel.
    k, latent = 5, 100
    g_channels = [128, 128, 64, 32, 1]  # Reshape(7, 7, 128), then Conv2DTranspose 128, 64, 32, 1
    g_dense = latent * 7 * 7 * 128 + 7 * 7 * 128
    g_convs = sum(k * k * c_in * c_out + c_out for c_in, c_out in zip(g_channels, g_channels[1:]))
    g_bn = sum(g_channels[:-1])  # one BatchNorm before each Conv2DTranspose
    assert generator.count_params() == g_dense + g_convs + 4 * g_bn == 1_301_505  # the book's summary
    assert sum(int(np.prod(w.shape)) for w in generator.trainable_weights) == g_dense + g_convs + 2 * g_bn
    d_channels = [1, 32, 64, 128, 256]
    d_convs = sum(k * k * c_in * c_out + c_out for c_in, c_out in zip(d_channels, d_channels[1:]))
    side = 28
    for stride in (2, 2, 2, 1):  # 'same' padding: ceil(side / stride) -> 14, 7, 4, 4
        side = -(-side // stride)
    d_dense = side * side * 256 + 1
    assert discriminator.count_params() == d_convs + d_dense == 1_080_577  # the book's summary


# ---- BatchNorm: one mode for the fakes D trains on and the fakes G is trained through ---------


def test_batchnorm_mode_is_the_same_in_the_d_and_the_g_update():
    """SEED.md 3.3: the note's predict() made D's fakes in inference mode while G trained in
    training mode. Here D's input is recorded in both updates for the same noise and weights:
    with one BatchNorm mode the fakes are identical; with two they are not (batch statistics vs
    the moving averages)."""
    import keras
    import tensorflow as tf

    from gan_runner import data, train

    cfg = _tiny_cfg(["tracking=none", "data.n=64"])
    gan = train.build_gan(cfg, data.load(cfg.data, cfg.seed))

    class Recorder(keras.layers.Layer):
        """Identity that keeps what it was called with (eager calls only)."""

        def __init__(self):
            super().__init__()
            self.seen: list[np.ndarray] = []

        def call(self, x):
            if tf.executing_eagerly() and hasattr(x, "numpy"):  # not while Keras builds the model
                self.seen.append(x.numpy())
            return x

    recorder = Recorder()
    base = gan.discriminator
    gan.discriminator = keras.Sequential([keras.Input((28, 28, 1)), recorder, base])  # same variables as base
    moving = [v for v in gan.generator.non_trainable_weights if "moving" in v.path]

    def moving_values():
        return [keras.ops.convert_to_numpy(v).copy() for v in moving]

    real = gan.real_batch()
    noise = gan.noise(16)
    stats0 = moving_values()
    gan.d_update(real, noise)
    fakes_for_d = recorder.seen[-1][-16:]  # D's last input ends with the fakes (after the reals)
    stats1 = moving_values()
    recorder.seen.clear()
    gan.g_update(noise)  # G's weights are those of the D update: only D changed in between
    (fakes_for_g,) = recorder.seen
    stats2 = moving_values()

    np.testing.assert_allclose(fakes_for_d, fakes_for_g, atol=1e-5)
    # The mode the code documents (models/gan.py): training mode in both, so both updates move
    # BatchNorm's moving statistics (inference mode in both would move them in neither).
    d_moved = any(not np.array_equal(a, b) for a, b in zip(stats0, stats1))
    g_moved = any(not np.array_equal(a, b) for a, b in zip(stats1, stats2))
    assert d_moved and g_moved


def test_evaluation_fakes_come_in_chunks_equal_to_one_call():
    """Trainer.generate makes DCGAN fakes a few hundred at a time (2000 at once held ~1 GB of
    activations, the default run's peak RSS); the chunks join into what one call gives."""
    from gan_runner import data, tracking, train

    cfg = _tiny_cfg(["tracking=none", "data.n=64"])
    trainer = train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())
    assert train.GENERATE_VALUES // (28 * 28) < 700  # more than one chunk below
    fakes = trainer.generate(700)
    assert fakes.shape == (700, 28, 28, 1)
    np.testing.assert_allclose(fakes, trainer.gan.generate(trainer._eval_noise[700]).numpy(), atol=1e-6)
    np.testing.assert_array_equal(trainer.generate(700), fakes)  # the same noise at every call


# ---- other data -----------------------------------------------------------------------------


@pytest.mark.usefixtures("fashion_mnist")
def test_fashion_mnist_trains_the_same_way(cli_run):
    """No data.path: found in the system folder of Debian's dataset-fashion-mnist."""
    from gan_runner import train

    _, client, store, _ = cli_run  # a store that exists already (a new one costs seconds)
    extra = [
        "data=fashion_mnist",
        "data.n=256",
        "train_steps=3",
        "log_every=1",
        f"tracking.uri={store}",
        "tracking.log_model=false",
    ]
    value = train.run(compose_cfg(["model=dcgan", *[o for o in TINY if not o.startswith("data.n=")], *extra]), extra)
    (run,) = [r for r in all_runs(client, "dcgan") if r.data.tags["data"] == "fashion_mnist"]
    assert run.info.status == "FINISHED" and run.data.params["data.path"] == "None"
    assert math.isfinite(value) and [s for s, _ in metric_history(client, run.info.run_id, "train/g_loss")] == [1, 2, 3]


# ---- bad data through the CLI: one line, exit 2, no run --------------------------------------


def _idx_gz(images: np.ndarray, magic: int = 0x803) -> bytes:
    return gzip.compress(struct.pack(">IIII", magic, *images.shape) + images.astype(np.uint8).tobytes())


def _bad_data_cases(tmp_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (extra CLI args, words the error line must contain)."""
    pixels = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    folders = {name: tmp_path / name for name in ("empty", "truncated", "magic", "shape", "home")}
    for folder in folders.values():
        folder.mkdir()
    truncated = folders["truncated"] / "t10k-images-idx3-ubyte.gz"
    truncated.write_bytes((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()[:20000])
    (folders["magic"] / "digits.gz").write_bytes(_idx_gz(pixels, magic=0x0D03))
    (folders["shape"] / "digits.gz").write_bytes(_idx_gz(np.zeros((5, 32, 32), np.uint8)))
    return {
        "empty folder": ([f"data.path={folders['empty']}"], [f"data.path={folders['empty']}", "no MNIST images there"]),
        "truncated gz": ([f"data.path={folders['truncated']}"], [str(truncated), "corrupt or truncated gzip"]),
        "wrong magic": ([f"data.path={folders['magic'] / 'digits.gz'}"], ["magic number 0x00000d03"]),
        "wrong shape": ([f"data.path={folders['shape'] / 'digits.gz'}"], ["images are 32x32, expected 28x28"]),
        # No data.path, empty Keras homes, no download: every place looked is named.
        "nothing offline": (
            ["data.download=false"],
            [str(folders["home"] / "keras" / "datasets"), str(folders["home"] / ".keras" / "datasets"), "data.path="],
        ),
    }


@needs_mnist
def test_bad_data_fails_with_one_line_exit_2_and_no_run(tmp_path):
    cases = _bad_data_cases(tmp_path)
    home = tmp_path / "home"
    env = {"HOME": str(home), "KERAS_HOME": str(home / "keras")}

    def attempt(item):
        name, (args, _) = item
        folder = tmp_path / f"run-{name.replace(' ', '-')}"
        folder.mkdir()
        store = f"sqlite:///{folder / 'mlflow.db'}"
        return run_cli(["model=dcgan", "train_steps=100", f"tracking.uri={store}", *args], cwd=folder, env=env), folder

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:  # they stop before TensorFlow: mostly start-up
        results = dict(zip(cases, pool.map(attempt, cases.items())))
    from mlflow.tracking import MlflowClient

    for name, (result, folder) in results.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("gan_runner: error:"), (name, lines)
        for words in cases[name][1]:
            assert words in lines[0], (name, words, lines[0])
        db = folder / "mlflow.db"
        if db.exists():  # the data is read before any MLflow run is created
            assert all_runs(MlflowClient(tracking_uri=f"sqlite:///{db}"), "dcgan") == [], name

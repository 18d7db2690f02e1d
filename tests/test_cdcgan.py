"""The class-conditional DCGAN (model=cdcgan, gan_runner/models/cdcgan.py) on real tiny Keras
models, real MNIST digits with their labels and a real SQLite MLflow store: the conditioning
paths (shapes, a label change changes G, the projection term by hand in numpy), the labelled
batches of the one compiled step, the class metrics by hand, every model.cond trained through
the CLI's run() and resumed bit for bit, the row-per-class grid, and `gan_runner.sample`'s
label= / labels=. Bad model.cond / class_loss_weight and unlabelled data: tests/test_bad_input.py."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MNIST, compose_cfg, run_cli
from gan_runner import config

TINY_NETS = [
    "model.latent_dim=8",
    "model.g_filters=[16,8,8,1]",
    "model.d_filters=[8,8,8,8]",
]
TINY = ["model=cdcgan", f"data.path={MNIST}", "data.n=256", "batch.size=16", *TINY_NETS]


def _trainer(overrides):
    from gan_runner import data, tracking, train

    cfg = compose_cfg(["tracking=none", *TINY, *overrides])
    return train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())


def test_conditioning_paths_shapes_label_changes_g_and_the_projection_by_hand():
    import keras

    from gan_runner.models import cdcgan

    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    y = np.array([0, 3, 3, 7, 9], np.int32)
    for cond in config.CONDS:
        cfg = compose_cfg([*TINY, f"model.cond={cond}"])
        keras.utils.set_random_seed(0)
        g, d = cdcgan.build_generator(cfg.model), cdcgan.build_discriminator(cfg.model, (28, 28, 1))
        assert g.input_shape == (None, 8 + 10) and g.output_shape == (None, 28, 28, 1)
        # G: the same z with another class gives another digit
        z = np.random.default_rng(1).uniform(-1, 1, (5, 8)).astype(np.float32)
        from gan_runner.labels import with_labels

        a = g(with_labels(z, y, 10), training=False).numpy()
        b = g(with_labels(z, (y + 1) % 10, 10), training=False).numpy()
        assert a.shape == (5, 28, 28, 1) and np.abs(a - b).max() > 1e-4, cond
        if cond == "acgan":  # D(x) -> (logits, class logits); the label is no input
            assert len(d.inputs) == 1
            logits, classes = d(x, training=False)
            assert tuple(logits.shape) == (5, 1) and tuple(classes.shape) == (5, 10)
            continue
        assert len(d.inputs) == 2 and tuple(d.output_shape) == (None, 1)
        out = d([x, y], training=False).numpy()
        other = d([x, (y + 1) % 10], training=False).numpy()
        assert out.shape == (5, 1) and np.abs(out - other).max() > 0, cond  # D sees the label
        if cond == "concat":  # the first convolution sees 1 image + 10 label channels
            conv = next(w for w in d.weights if len(w.shape) == 4)
            assert conv.shape[2] == 11
            continue
        # projection: D(x, y) = psi(phi(x)) + <V[y], phi(x)>, phi the flattened trunk
        flatten = next(layer for layer in d.layers if isinstance(layer, keras.layers.Flatten))
        phi = keras.Model(d.inputs, flatten.output)([x, y], training=False).numpy().astype(np.float64)
        psi = next(layer for layer in d.layers if isinstance(layer, keras.layers.Dense) and layer.units == 1)
        w, bias = (v.astype(np.float64) for v in psi.get_weights())
        embed = d.get_layer("embed").get_weights()[0].astype(np.float64)  # (10, features)
        assert embed.shape == (10, phi.shape[1])
        by_hand = phi @ w + bias + np.sum(embed[y] * phi, axis=1, keepdims=True)
        np.testing.assert_allclose(out, by_hand, rtol=1e-4, atol=1e-5)


def test_the_step_draws_labelled_real_batches_and_uniform_fake_labels_from_the_training_rng():
    """Real (x, y) pairs are gathered together; fake labels come from the training RNG right
    after their noise and are the one-hot part of G's input; redrawing from a saved RNG state
    gives the same draws (what a bit-exact resume rests on)."""
    from gan_runner import data

    trainer = _trainer(["trainer.d_steps=2", "penalty=gp"])
    gan, cfg = trainer.gan, trainer.cfg
    labels = data.image_labels(cfg.data)
    state = gan.rng.state.numpy().copy()
    draws = gan.draw()
    gan.rng.reset(state)
    again = gan.draw()
    for d, d2 in zip(draws["d"], again["d"]):
        real, real_y, noise, fake_y = (d[k].numpy() for k in ("real", "real_y", "noise", "fake_y"))
        rows = [int(np.flatnonzero((trainer.real == img).all(axis=(1, 2, 3)))[0]) for img in real]
        np.testing.assert_array_equal(real_y, labels[rows])
        assert noise.shape == (16, 8 + 10) and fake_y.min() >= 0 and fake_y.max() <= 9
        np.testing.assert_array_equal(noise[:, 8:].argmax(axis=1), fake_y)
        np.testing.assert_array_equal(noise[:, 8:].sum(axis=1), 1.0)
        for k in d:
            np.testing.assert_array_equal(d[k].numpy(), d2[k].numpy())
    np.testing.assert_array_equal(draws["g_noise"].numpy()[:, 8:].argmax(axis=1), draws["g_y"].numpy())
    many = np.concatenate([gan.labels(1000).numpy() for _ in range(5)])
    assert set(np.unique(many)) == set(range(10)) and np.bincount(many).min() > 400  # ~500 each
    out = gan.run_steps(2)
    assert set(out) == {"d_loss", "d_acc", "g_loss", "g_acc", "d_penalty"}


def test_class_scores_by_hand():
    from gan_runner.metrics import image

    rng = np.random.default_rng(0)
    real_y = np.repeat(np.arange(10), 30)
    real = rng.normal(size=(300, 10)) + 4 * np.eye(10)[real_y]
    y = np.tile(np.arange(10), 5)  # 5 fakes per class
    fake = rng.normal(size=(50, 10)) + 4 * np.eye(10)[(y + (np.arange(50) % 5 == 0)) % 10]  # 1 in 5 off by one
    got = image.class_scores(fake, y, real, real_y)
    assert got["class_accuracy"] == pytest.approx(np.mean(fake.argmax(1) == y))
    log_p = fake - np.log(np.exp(fake).sum(axis=1, keepdims=True))
    assert got["class_xent"] == pytest.approx(-np.mean(log_p[np.arange(50), y]))
    per_class = [image.frechet_distance_features(fake[y == c], real[real_y == c][:5]) for c in range(10)]
    assert got["fd_intra"] == pytest.approx(np.mean(per_class))
    assert 0.6 < got["class_accuracy"] < 1.0
    perfect = image.class_scores(real, real_y, real, real_y)
    assert perfect["class_accuracy"] > 0.9 and perfect["fd_intra"] == pytest.approx(0.0, abs=1e-6)


# ---- every model.cond through run(): logged, gridded, resumed bit for bit -----------------------

# one set of techniques per cond, so the resume also covers the techniques' state with labels
CONDS = {
    "projection": ["loss=hinge", "model.d_spectral_norm=true", "ema.decay=0.9"],
    "concat": ["loss=wasserstein", "penalty=gp", "trainer.d_steps=2"],
    "acgan": ["penalty=r1", "model.class_loss_weight=0.5"],
}
RUN = [
    *TINY,
    "model.grid_cols=3",
    "log_every=2",
    "eval_every=4",
    "plot_every=8",
    "sample_every=4",
    "eval.n_fake=40",
    "tracking.log_model=false",
    "eval.classifier.train_steps=20",
    "eval.classifier.cache_dir={cache}",
    "checkpoint.every=4",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from test_resume import _pair

    cache = tmp_path_factory.mktemp("classifier")
    args = [a.format(cache=cache) for a in RUN]
    return {
        cond: _pair(tmp_path_factory, "cdcgan", [*args, f"model.cond={cond}", *extra], 4)
        for cond, extra in CONDS.items()
    }


@pytest.mark.parametrize("cond", list(CONDS))
def test_every_cond_trains_logs_class_metrics_and_resumes_bitwise(cond, trained, tmp_path):
    from mlflow.tracking import MlflowClient
    from PIL import Image
    from test_resume import _check_bitwise

    pair = trained[cond]
    _check_bitwise(pair)
    history = pair.history[pair.full]
    for key in ("eval/class_accuracy", "eval/class_xent", "eval/fd_intra", "eval/fd", "eval/mnist_score"):
        assert [s for s, _ in history[key]] == [4, 8], key
    assert all(0 <= v <= 1 for _, v in history["eval/class_accuracy"])
    assert ("train/d_class" in history) == (cond == "acgan") == ("train/g_class" in history)
    # the logged grid: one row per class (10), model.grid_cols columns, 28 + 2 pixels each
    client = MlflowClient(tracking_uri=pair.store)
    (png,) = [
        a.path
        for a in client.list_artifacts(pair.full, "images")
        if a.path.startswith("images/samples+step+8+") and a.path.endswith(".png")
    ]
    grid = np.asarray(Image.open(client.download_artifacts(pair.full, png, str(tmp_path))))
    assert grid.shape[:2] == (10 * 30 + 2, 3 * 30 + 2)


def test_sample_label_and_labels_rows_share_the_noise(trained, tmp_path, capsys):

    from test_resume import final_state

    from gan_runner import evaluate, labels, sample

    pair = trained["projection"]
    folder = final_state(pair.store, pair.full).path.parent
    sample.main([str(folder), "labels=0..9", "n=3", f"out={tmp_path / 'rows'}"])
    sample.main([str(folder), "label=3", "n=3", f"out={tmp_path / 'three'}"])
    rows, three = np.load(tmp_path / "rows" / "samples.npz"), np.load(tmp_path / "three" / "samples.npz")
    assert rows["x"].shape == (30, 28, 28, 1) and list(rows["y"]) == [c for c in range(10) for _ in range(3)]
    z = rows["z"][:, :8]
    np.testing.assert_array_equal(z, np.tile(z[:3], (10, 1)))  # the same noise down each column
    np.testing.assert_array_equal(three["x"], rows["x"][9:12])  # label=3 is row 3
    cfg = evaluate.config_from([], final_state(pair.store, pair.full).meta["config"])
    generator = evaluate.load_generator(cfg, final_state(pair.store, pair.full).arrays)
    keras_out = generator(labels.with_labels(z[:3], [7, 7, 7], 10), training=False).numpy()
    np.testing.assert_allclose(rows["x"][21:24], keras_out, rtol=1e-5, atol=1e-6)
    assert np.abs(rows["x"][0:3] - rows["x"][21:24]).max() > 1e-4  # class 0 and class 7 differ
    capsys.readouterr()
    for argv, words in [
        (["labels=0..10"], "labels=0..10: expected classes in 0..9"),
        (["label=x"], "label=x: expected classes in 0..9"),
        (["label=3", "labels=1,2"], "label= and labels="),
    ]:
        with pytest.raises(SystemExit) as exit_:
            sample.main([str(folder), *argv, f"out={tmp_path / 'bad'}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and words in err[0], err


def test_evaluate_reproduces_the_runs_class_scores(trained, tmp_path, capsys):
    """python -m gan_runner.evaluate <run id> scores a conditional run's final generator for the
    classes its evaluation asked for: the run's own last eval/class_* and fd_intra, recomputed."""
    from mlflow.tracking import MlflowClient

    from gan_runner import evaluate

    pair = trained["acgan"]  # no EMA: the run's weights are the generator it evaluated
    logged = MlflowClient(tracking_uri=pair.store).get_run(pair.full).data.metrics
    result = evaluate.main([pair.full, f"tracking.uri={pair.store}", "--json"])
    capsys.readouterr()
    assert result["n"] == 40
    for name in ("class_accuracy", "class_xent", "fd_intra", "fd"):
        assert result[name] == pytest.approx(logged[f"eval/{name}"], rel=1e-5, abs=1e-6), name
    np.save(tmp_path / "fakes.npy", np.zeros((40, 28, 28, 1), np.float32))  # images: no classes to obey
    images = evaluate.main([str(tmp_path / "fakes.npy"), *TINY[:3], "eval.n_fake=40", "--json"])
    capsys.readouterr()
    assert "fd" in images and "class_accuracy" not in images


def test_sample_refuses_label_for_an_unconditional_model(tmp_path, capsys):
    from gan_runner import registry, sample

    cfg = compose_cfg(["model=dcgan", *TINY_NETS])
    generator = registry.get_model("dcgan").build_generator(cfg.model)
    weights = tmp_path / "generator.weights.h5"
    generator.save_weights(weights)
    (tmp_path / "config.yaml").write_text("model:\n  name: dcgan\n  latent_dim: 8\n  g_filters: [16, 8, 8, 1]\n")
    with pytest.raises(SystemExit) as exit_:
        sample.main([str(weights), "--config", str(tmp_path / "config.yaml"), "label=3", f"out={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert "label=3: model 'dcgan' is not class-conditional" in err[0] and "model=cdcgan" in err[0]


def test_the_cli_sweeps_model_cond_like_any_key(tmp_path):
    """`python -m gan_runner -m model=cdcgan model.cond=projection,acgan ...` in a fresh process:
    exit 0, one parent run, a FINISHED child per cond with the class metrics."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [a.format(cache=tmp_path / "cache") for a in RUN] + [f"tracking.uri={store}", "train_steps=4"]
    sweep = ["-m", "model.cond=projection,acgan", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    proc = run_cli([*sweep, *args], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("cdcgan").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["model.cond"] for r in children) == ["acgan", "projection"]
    for run in children:
        assert run.info.status == "FINISHED", run.data.params["model.cond"]
        assert {"eval/class_accuracy", "eval/class_xent", "eval/fd_intra", "eval/fd"} <= set(run.data.metrics)
    assert "train/d_class" in next(r for r in children if r.data.params["model.cond"] == "acgan").data.metrics


@pytest.mark.slow
def test_a_short_acgan_run_draws_the_digits_it_is_asked_for(tmp_path, classifier_cache):
    """300 steps of a small acgan cdcgan: the default digit classifier (the session's) finds the
    asked-for class in well over chance (10%) of the fakes (0.74 measured at step 300; step 100:
    0.10). The benchmark (make bench ARGS=cond) has the full-size figures."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        *("model=cdcgan", "model.cond=acgan", f"data.path={MNIST}", "data.n=2048", "batch.size=32"),
        *("model.latent_dim=16", "model.g_filters=[32,16,8,1]", "model.d_filters=[8,16,16,16]"),
        *("train_steps=300", "eval_every=100", "log_every=100", "plot_every=300", "sample_every=300"),
        *("eval.n_fake=200", "tracking.log_model=false", f"tracking.uri={store}"),
    ]
    proc = run_cli(args, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("cdcgan").experiment_id])
    accuracy = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval/class_accuracy")}
    assert accuracy[300] >= 0.4, accuracy  # 4x chance


def test_mirrored_strategy_takes_the_labels_along():
    """trainer.strategy=mirrored (one CPU replica here): the labelled draws are split with the
    images (distribute._local), so the step's numbers equal the default strategy's."""
    from gan_runner import data, tracking, train

    tiny = [*TINY, "data.n=64", "batch.size=8", "model.g_filters=[4,1]", "model.g_strides=[2,2]"]
    tiny += ["model.d_filters=[4]", "model.d_strides=[2]", "tracking=none"]
    for cond, extra in [("acgan", ["penalty=gp"]), ("projection", ["trainer.update=simultaneous", "penalty=r1"])]:
        outs = []
        for strategy in ("default", "mirrored"):
            cfg = compose_cfg([*tiny, f"model.cond={cond}", f"trainer.strategy={strategy}", *extra])
            trainer = train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())
            outs.append({k: float(v) for k, v in trainer.gan.run_steps(2).items()})
        assert type(trainer.gan).__name__ == "MirroredGanStep"
        assert outs[0] == pytest.approx(outs[1], rel=1e-5), cond

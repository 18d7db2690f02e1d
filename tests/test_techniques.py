"""trainer.d_steps, the penalty's draws and the EMA generator, in the real compiled step; what a
run with the EMA on logs and saves (a real tiny run into a real SQLite MLflow store)."""

import numpy as np
import pytest

from conftest import compose_cfg


def _trainer(overrides):
    from gan_runner import data, tracking, train

    cfg = compose_cfg(["tracking=none", *overrides])
    return train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())


def test_d_steps_walk_the_data_per_d_update_and_train_steps_counts_g_updates():
    """The seed's sequential 333/333/334 blocks with 3 D updates per step: one block each; G
    reuses the last D update's noise (batch.reuse_noise); D's optimizer steps 3x as often."""
    trainer = _trainer(["trainer.d_steps=3", "penalty=gp"])
    gan, real = trainer.gan, trainer.real
    state = gan.rng.state.numpy().copy()
    draws = gan.draw()
    gan.rng.reset(state)
    assert [len(d["real"]) for d in draws["d"]] == [333, 333, 334]
    for d, (start, end) in zip(draws["d"], [(0, 333), (333, 666), (666, 1000)]):
        np.testing.assert_array_equal(d["real"].numpy(), real[start:end])
        alpha = d["alpha"].numpy()  # gp: one interpolation weight per sample, in [0, 1)
        assert alpha.shape == (end - start,) and 0 <= alpha.min() and alpha.max() < 1 and alpha.std() > 0.2
    assert draws["g_noise"] is draws["d"][-1]["noise"]
    out = gan.run_steps(2)
    assert int(gan.step.numpy()) == 2  # G updates
    assert int(gan.d_optimizer.iterations.numpy()) == 6 and int(gan.g_optimizer.iterations.numpy()) == 2
    assert set(out) == {"d_loss", "d_acc", "g_loss", "g_acc", "d_penalty"} and float(out["d_penalty"]) > 0


def test_ema_is_a_copy_before_start_step_then_the_average():
    """ema <- decay * ema + (1 - decay) * G after each G update from start_step on, a copy
    before; recomputed in numpy from G's weights after each step."""
    decay, start = 0.6, 2
    trainer = _trainer([f"ema.decay={decay}", f"ema.start_step={start}"])
    gan = trainer.gan
    expected = [w.astype(np.float64) for w in gan.generator.get_weights()]
    np.testing.assert_array_equal(gan.ema_generator.get_weights()[0], gan.generator.get_weights()[0])
    for t in range(5):
        gan.run_steps(1)
        d = decay if t >= start else 0.0
        expected = [d * e + (1 - d) * w for e, w in zip(expected, gan.generator.get_weights())]
        for got, want in zip(gan.ema_generator.get_weights(), expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(gan.ema_generator.get_weights()[0], gan.generator.get_weights()[0])
    # evaluation's fakes come from the EMA generator, eval_raw's from G
    fakes, raw = trainer.generate(4), trainer.generate_raw(4)
    z = trainer._eval_noise[4]
    np.testing.assert_allclose(fakes, gan.ema_generator(z, training=False).numpy(), rtol=1e-6)
    np.testing.assert_allclose(raw, gan.generator(z, training=False).numpy(), rtol=1e-6)


def test_spectral_norm_wraps_every_weight_layer_of_both_discriminators():
    from gan_runner import registry

    for overrides in (["model=gaussian1d"], ["model=dcgan", "model.d_filters=[4,4]", "model.d_strides=[2,2]"]):
        cfg = compose_cfg([*overrides, "model.d_spectral_norm=true", "tracking=none"])
        model = registry.get_model(cfg.model.name)
        shape = (1,) if cfg.model.name == "gaussian1d" else (28, 28, 1)
        d = model.build_discriminator(cfg.model, shape)
        kinds = [type(layer).__name__ for layer in d.layers]
        wrapped = [type(layer.layer).__name__ for layer in d.layers if hasattr(layer, "layer")]
        assert kinds.count("SpectralNormalization") == (2 if cfg.model.name == "gaussian1d" else 3), kinds
        assert "Dense" in wrapped and not any(k in ("Dense", "Conv2D") for k in kinds)


def test_a_run_with_the_ema_logs_eval_raw_and_saves_the_ema_generator_as_the_generator(tmp_path):
    """eval/* from the EMA generator, eval_raw/* from G; weights/generator.weights.h5 (what
    evaluate, sample and weights.load read) is the EMA generator, generator_raw the raw G, and
    the checkpoint holds both (evaluate.load_generator picks the EMA's arrays)."""
    from mlflow.tracking import MlflowClient

    from gan_runner import checkpoint, evaluate, registry, train
    from gan_runner.store import resolve

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [
        f"tracking.uri={store}",
        "train_steps=40",
        "eval_every=20",
        "log_every=20",
        "plot_every=40",
        "eval.n_fake=500",
        "ema.decay=0.9",
        "loss=lsgan",
        "penalty=r1",
        "model.d_spectral_norm=true",
    ]
    cfg = compose_cfg(overrides)
    train.run(cfg, overrides)
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    metrics = run.data.metrics
    assert run.data.tags["loss"] == "lsgan" and run.data.tags["penalty"] == "r1"
    assert {"eval/kl_target", "eval_raw/kl_target", "train/d_penalty"} <= set(metrics)
    assert metrics["eval/kl_target"] != metrics["eval_raw/kl_target"]
    names = {a.path for a in client.list_artifacts(run.info.run_id, "weights")}
    assert {
        "weights/generator.weights.h5",
        "weights/generator_raw.weights.h5",
        "weights/discriminator.weights.h5",
    } <= names
    ckpt = checkpoint.newest(resolve(cfg).checkpoints / run.info.run_id)
    folder = client.download_artifacts(run.info.run_id, "weights", str(tmp_path / "dl"))
    model = registry.get_model("gaussian1d")
    for file, group in (("generator.weights.h5", "generator_ema."), ("generator_raw.weights.h5", "generator.")):
        g = model.build_generator(cfg.model)
        g.load_weights(f"{folder}/{file}")
        for i, w in enumerate(g.get_weights()):
            np.testing.assert_array_equal(w, ckpt.arrays[f"{group}{i}"], err_msg=file)
    from_ckpt = evaluate.load_generator(cfg, ckpt.arrays)
    for i, w in enumerate(from_ckpt.get_weights()):
        np.testing.assert_array_equal(w, ckpt.arrays[f"generator_ema.{i}"])


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["trainer.d_steps=0"], ["trainer.d_steps", "positive"]),
        (["loss=wasserstein", "labels.fake=0.1"], ["labels.fake", "no effect with loss=wasserstein"]),
        (["penalty=r1", "penalty.gamma=-1"], ["penalty.gamma", "> 0"]),
        (["ema.decay=-0.1"], ["ema.decay", "[0, 1)"]),
    ],
)
def test_technique_values_that_cannot_work_are_refused_by_name(overrides, words):
    from gan_runner.config import ConfigError

    with pytest.raises(ConfigError) as err:
        compose_cfg(overrides)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message

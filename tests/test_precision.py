"""trainer.precision and trainer.jit_compile, on CPU: every choice trains tiny DCGAN and 1-D runs
through the real CLI (one multirun per model, a real SQLite MLflow store) to finite float32
metrics; float32 with XLA on and off agree to round-off; the mixed policies take effect (half
precision inside, float32 out, loss scaling for float16). Resume per precision: test_resume.py."""

import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import MNIST, TINY_DCGAN, all_runs, compose_cfg, metric_history, run_cli

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MODELS = {
    "gaussian1d": [
        "model=gaussian1d",
        "batch.order=random",
        "train_steps=10",
        "log_every=5",
        "eval_every=10",
        "plot_every=10",
        "eval.n_fake=200",
    ],
    "dcgan": [
        "model=dcgan",
        f"data.path={MNIST}",
        *TINY_DCGAN,
        "eval_every=4",
        "sample_every=4",
        "plot_every=4",
        "eval.metrics=[fd]",
        "checkpoint.every=0",
    ],
}
LOSSES = ("train/d_loss", "train/g_loss")


@pytest.mark.parametrize("model", list(MODELS))
def test_every_precision_and_jit_choice_trains_through_the_cli(model, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(
        [
            "-m",
            f"tracking.uri={store}",
            *MODELS[model],
            f"trainer.precision={','.join(PRECISIONS)}",
            "trainer.jit_compile=false,true",
        ],
        tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    runs = {
        (r.data.params["trainer.precision"], r.data.params["trainer.jit_compile"]): r
        for r in all_runs(client, model)
        if "trainer.precision" in r.data.params
    }
    assert set(runs) == {(p, j) for p in PRECISIONS for j in ("False", "True")}, sorted(runs)
    histories = {}
    for key, run in runs.items():
        assert run.info.status == "FINISHED", key
        histories[key] = {k: metric_history(client, run.info.run_id, k) for k in LOSSES}
        for name, history in histories[key].items():
            assert len(history) >= 2, (key, name)
            for _, value in history:  # finite, and a float32 value (logged from float32 tensors)
                assert math.isfinite(value) and float(np.float32(value)) == value, (key, name, value)
    # XLA draws the same noise and batches (GanStep.uniform) and computes the same step: round-off only.
    for name in LOSSES:
        plain, xla = histories[("float32", "False")][name], histories[("float32", "True")][name]
        assert [s for s, _ in plain] == [s for s, _ in xla]
        np.testing.assert_allclose([v for _, v in xla], [v for _, v in plain], rtol=1e-4, err_msg=name)
    # Half precision changes the numbers, but only a little over a few steps of a tiny model.
    for precision in PRECISIONS[1:]:
        for name in LOSSES:
            mixed, plain = histories[(precision, "False")][name], histories[("float32", "False")][name]
            assert [v for _, v in mixed] != [v for _, v in plain], (precision, name)
            np.testing.assert_allclose([v for _, v in mixed], [v for _, v in plain], rtol=0.05, err_msg=precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_policy_takes_effect_inside_and_float32_comes_out(precision):
    """Half precision in the hidden layers, float32 at both networks' outputs (also through
    spectral norm's wrapper), float32 metrics; float16's optimizers scale the loss."""
    import keras
    import tensorflow as tf

    from gan_runner import data, train

    cfg = compose_cfg(
        [
            "model=dcgan",
            f"data.path={MNIST}",
            *TINY_DCGAN,
            "model.d_spectral_norm=true",
            "ema.decay=0.9",
            f"trainer.precision={precision}",
        ]
    )
    gan = train.build_gan(cfg, data.load(cfg.data, 0))
    inner = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[precision]
    for net in (gan.generator, gan.discriminator, gan.ema_generator):
        assert net.layers[1].compute_dtype == inner, net.name  # a hidden layer
        assert all(v.dtype == "float32" for v in net.weights), net.name
    z = tf.zeros((2, cfg.model.latent_dim))
    fake = gan.generate(z)
    assert fake.dtype == tf.float32 and gan.discriminator(fake).dtype == tf.float32
    metrics = gan.run_steps(2)
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in metrics.values()), metrics
    scaled = isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    if scaled:  # its dynamic scale is state: a checkpoint carries it (state_variables)
        assert any(v is gan.d_optimizer.dynamic_scale for v in gan.state_variables().values())
        assert float(gan.d_optimizer.scale_loss(tf.constant(1.0))) == float(gan.d_optimizer.dynamic_scale.numpy()) > 1
    assert keras.config.dtype_policy().name == "float32"  # nothing built later (the classifier) is mixed


def test_a_float32_loss_scale_factor_now_scales_the_loss():
    """optimizer.params.loss_scale_factor: Keras divides the gradients by it, so the step must
    multiply the loss by it (scale_loss): the update equals the unscaled one (it was 1/factor of it)."""
    from gan_runner import data, train

    after = {}
    for extra in ([], ["+optimizer.params.loss_scale_factor=1024.0"]):
        cfg = compose_cfg(["tracking=none", "optimizer=sgd", "batch.order=random", "batch.size=32", *extra])
        gan = train.build_gan(cfg, data.load(cfg.data, 0))
        gan.run_steps(1)
        after[bool(extra)] = [w.numpy() for w in gan.discriminator.weights]
    for a, b in zip(after[False], after[True]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

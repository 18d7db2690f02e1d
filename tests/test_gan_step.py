"""The compiled step: each update touches only its own network; batching follows the seed."""

import numpy as np
import pytest

from conftest import MNIST, compose_cfg
from gan_runner.models.gan import sequential_bounds


def test_sequential_bounds_split_1000_into_333_333_334():
    bounds = sequential_bounds(1000, 333)
    assert (bounds[:, 1] - bounds[:, 0]).tolist() == [333, 333, 334]
    assert bounds[0, 0] == 0 and bounds[-1, 1] == 1000


def _trainer(overrides):
    from gan_runner import data, tracking, train

    cfg = compose_cfg(["tracking=none", *overrides])
    return train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())


def _trainable(model):
    return [np.array(w) for w in model.trainable_weights]


def _non_trainable(model):
    return [np.array(w) for w in model.non_trainable_weights]


def _moved(before, after):
    assert len(before) == len(after)
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


DCGAN_TINY = [
    "model=dcgan",
    f"data.path={MNIST}",
    "data.n=64",
    "batch.size=16",
    "eval.n_fake=64",
    "model.g_filters=[16,8,8,1]",
    "model.d_filters=[8,8,16,16]",
]


@pytest.mark.parametrize("model", ["gaussian1d", "dcgan"])
def test_d_update_changes_only_d_and_g_update_only_g(model):
    """Each update moves exactly its own network's trainable weights. The DCGAN's D update does
    move G's BatchNorm moving statistics (non-trainable: G runs in training mode to make D's
    fakes, models/gan.py), so for it the non-trainable weights are checked apart."""
    if model == "dcgan" and not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST in {MNIST}")
    gan = _trainer(DCGAN_TINY if model == "dcgan" else [f"model={model}"]).gan
    real = gan.real_batch()
    noise = gan.noise(real.shape[0])
    d0, g0 = _trainable(gan.discriminator), _trainable(gan.generator)
    g_stats0 = _non_trainable(gan.generator)
    gan.d_update(real, noise)
    assert _moved(d0, _trainable(gan.discriminator)), "D update did not train D (the Keras 3 trainable trap)"
    assert not _moved(g0, _trainable(gan.generator)), "D update changed G's trainable weights"
    # G's BatchNorm statistics follow the fakes made for D; gaussian1d has none
    assert _moved(g_stats0, _non_trainable(gan.generator)) == (model == "dcgan")
    assert _non_trainable(gan.discriminator) == []  # D has no BatchNorm: nothing else to move
    d1 = _trainable(gan.discriminator)
    gan.g_update(noise)
    assert _moved(g0, _trainable(gan.generator)), "G update did not train G"
    assert not _moved(d1, _trainable(gan.discriminator)), "G update changed D"


def test_optimizers_are_separate_instances_with_the_models_rates():
    gan = _trainer([]).gan
    assert gan.d_optimizer is not gan.g_optimizer
    rates = gan.learning_rates()
    assert rates["lr_d"] == pytest.approx(1e-3) and rates["lr_g"] == pytest.approx(5e-4)


def test_inverse_time_schedule_is_keras2_decay():
    gan = _trainer(["schedule=inverse_time", "schedule.decay_rate=0.01", "schedule.g.decay_rate=0.02"]).gan
    gan.run_steps(10)
    rates = gan.learning_rates()
    assert rates["lr_d"] == pytest.approx(1e-3 / (1 + 0.01 * 10), rel=1e-5)
    assert rates["lr_g"] == pytest.approx(5e-4 / (1 + 0.02 * 10), rel=1e-5)


def test_sequential_order_walks_the_data_in_order():
    gan = _trainer([]).gan
    seen = []
    for _ in range(3):
        seen.append(gan.real_batch().numpy())
        gan.step.assign_add(1)
    np.testing.assert_array_equal(np.concatenate(seen), gan.real.numpy())


# ---- the numbers of one step, recomputed in numpy (float64) -------------------------------------
# gaussian1d's nets are two Dense layers each: [kernel1, bias1, kernel2, bias2], relu in between.


def _mlp(x, w):
    pre = x @ w[0] + w[1]
    return np.maximum(pre, 0) @ w[2] + w[3]


def _mlp_grads(x, w, d_out):
    """Gradients of sum(d_out * mlp(x)) for the weights and for the input x."""
    pre = x @ w[0] + w[1]
    d_hidden = d_out @ w[2].T * (pre > 0)
    return [x.T @ d_hidden, d_hidden.sum(0), np.maximum(pre, 0).T @ d_out, d_out.sum(0)], d_hidden @ w[0].T


def _bce(logits, target):
    """Mean sigmoid cross-entropy and its gradient for the logits."""
    loss = np.mean(np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits))))
    return loss, (1 / (1 + np.exp(-logits)) - target) / logits.size


def _d_loss(name, logits, n_real, b, a):
    """D's loss (models/losses.py's formulas) and its gradient for the 2B logits (real rows first)."""
    r, f = logits[:n_real], logits[n_real:]
    if name in ("ns", "minimax"):
        return _bce(logits, np.concatenate([np.full(r.shape, b), np.full(f.shape, a)]))
    if name == "hinge":
        return (
            np.mean(np.maximum(1 - r, 0)) + np.mean(np.maximum(1 + f, 0)),
            np.concatenate([-1.0 * (1 - r > 0) / r.size, 1.0 * (1 + f > 0) / f.size]),
        )
    if name == "wasserstein":
        return np.mean(f) - np.mean(r), np.concatenate([np.full(r.shape, -1 / r.size), np.full(f.shape, 1 / f.size)])
    assert name == "lsgan"
    return (
        0.5 * np.mean((r - b) ** 2) + 0.5 * np.mean((f - a) ** 2),
        np.concatenate([(r - b) / r.size, (f - a) / f.size]),
    )


def _g_loss(name, f, b, a):
    """G's loss and its gradient for the B logits of the fakes."""
    if name == "ns":
        return _bce(f, b)
    if name == "minimax":
        loss, grad = _bce(f, a)
        return -loss, -grad
    if name in ("hinge", "wasserstein"):
        return -np.mean(f), np.full(f.shape, -1 / f.size)
    assert name == "lsgan"
    return 0.5 * np.mean((f - b) ** 2), (f - b) / f.size


def _r1(real, w, gamma):
    """R1 on the 1-D D = w2 . relu(w0 x + b0) + b2: its input gradient per sample is
    s = sum_j w0_j m_j w2_j (m: the relu mask, piecewise constant), so the penalty is
    gamma / 2 * mean(s^2) and its weight gradients are gamma * mean(s m w2) for w0 and
    gamma * mean(s m w0) for w2 (none for the biases). Returns (penalty, grads)."""
    mask = (real @ w[0] + w[1] > 0).astype(np.float64)  # (B, H)
    s = mask @ (w[0][0] * w[2][:, 0])  # (B,)
    d_w0 = gamma * np.mean(s[:, None] * mask * w[2][:, 0], axis=0)[None, :]  # (1, H)
    d_w2 = gamma * np.mean(s[:, None] * mask * w[0][0], axis=0)[:, None]  # (H, 1)
    return 0.5 * gamma * np.mean(s**2), [d_w0, np.zeros_like(w[1]), d_w2, np.zeros_like(w[3])]


def _first_update(weights, grads, cfg, net):
    """One step of the configured optimizer from fresh slots (Keras 3's update rules)."""
    lr, params = cfg.optimizer[net].learning_rate, cfg.optimizer.params
    if cfg.optimizer.name == "rmsprop":  # velocity = (1 - rho) g^2; w -= lr g / sqrt(velocity + eps)
        return [w - lr * g / np.sqrt((1 - params.rho) * g * g + params.epsilon) for w, g in zip(weights, grads)]
    assert cfg.optimizer.name == "sgd" and params.momentum == 0
    return [w - lr * g for w, g in zip(weights, grads)]


def _numpy_step(cfg, real, noise, g_noise, g_w, d_w):
    """One step as models/gan.py documents it: D on real + G(noise) against labels.real /
    labels.fake, then G through the updated D towards labels.real (simultaneous: both from the
    same G forward and the old D). Returns the four metrics and the new weights of D and G."""
    real_t, fake_t = cfg.labels.real, cfg.labels.fake
    fake = _mlp(noise, g_w)
    both = np.concatenate([real, fake])
    logits = _mlp(both, d_w)
    d_loss, d_dlogits = _d_loss(cfg.loss.name, logits, len(real), real_t, fake_t)
    d_acc = np.mean(np.concatenate([logits[: len(real)] > 0, logits[len(real) :] <= 0]))
    d_grads = _mlp_grads(both, d_w, d_dlogits)[0]
    metrics = {}
    if cfg.penalty.name == "r1":
        metrics["d_penalty"], r1_grads = _r1(real, d_w, cfg.penalty.gamma)
        d_grads = [g + p for g, p in zip(d_grads, r1_grads)]
    d_new = _first_update(d_w, d_grads, cfg, "d")
    judge = d_w if cfg.trainer["update"] == "simultaneous" else d_new  # .update is a dict method
    g_fake = _mlp(g_noise, g_w)
    g_logits = _mlp(g_fake, judge)
    g_loss, g_dlogits = _g_loss(cfg.loss.name, g_logits, real_t, fake_t)
    _, d_fake = _mlp_grads(g_fake, judge, g_dlogits)
    g_new = _first_update(g_w, _mlp_grads(g_noise, g_w, d_fake)[0], cfg, "g")
    metrics.update({"d_loss": d_loss, "d_acc": d_acc, "g_loss": g_loss, "g_acc": np.mean(g_logits > 0)})
    return metrics, d_new, g_new


STEP_CASES = {
    "seed": [],  # sequential batches of 333, G reuses D's noise, labels 0.9 / 0.1, RMSprop
    "random batches, fresh G noise, rho 0.5": [
        "batch.order=random",
        "batch.size=64",
        "batch.reuse_noise=false",
        "optimizer.params.rho=0.5",
    ],
    "simultaneous, sgd": ["trainer.update=simultaneous", "optimizer=sgd", "labels.real=0.8", "labels.fake=0.05"],
    # the loss group (models/losses.py); the 1-D model's labels 0.9 / 0.1 reach lsgan and minimax
    "minimax": ["loss=minimax"],
    "hinge": ["loss=hinge"],
    "wasserstein, simultaneous": ["loss=wasserstein", "trainer.update=simultaneous"],
    "lsgan, sgd": ["loss=lsgan", "optimizer=sgd"],
    # the penalty enters D's gradient (sgd: RMSprop's normalised step would hide its size)
    "r1, sgd": ["penalty=r1", "optimizer=sgd"],
}


@pytest.mark.parametrize("overrides", list(STEP_CASES.values()), ids=list(STEP_CASES))
def test_one_step_matches_a_numpy_recomputation(overrides):
    """d_loss, d_acc, g_loss, g_acc of run_steps(1), and the weights both updates leave, against
    numpy on the same batch and noise (drawn through the step's own API, then the RNG rewound)."""
    trainer = _trainer(overrides)
    cfg, gan = trainer.cfg, trainer.gan
    assert (gan.config.real_label, gan.config.fake_label) == (cfg.labels.real, cfg.labels.fake)
    if not overrides:
        assert (cfg.labels.real, cfg.labels.fake) == (0.9, 0.1)  # the seed's smoothing is in effect
    state = gan.rng.state.numpy().copy()
    real = gan.real_batch().numpy().astype(np.float64)  # the same draws, in the same order, as one_step
    noise = gan.noise(len(real)).numpy().astype(np.float64)
    g_noise = noise if cfg.batch.reuse_noise else gan.noise(len(real)).numpy().astype(np.float64)
    gan.rng.reset(state)
    g_w = [w.astype(np.float64) for w in gan.generator.get_weights()]
    d_w = [w.astype(np.float64) for w in gan.discriminator.get_weights()]

    out = {k: float(v) for k, v in gan.run_steps(1).items()}
    expected, d_new, g_new = _numpy_step(cfg, real, noise, g_noise, g_w, d_w)

    assert int(gan.step.numpy()) == 1
    assert ("d_penalty" in out) == ("d_penalty" in expected)
    for key in ("d_loss", "g_loss", "d_penalty")[: 3 if "d_penalty" in expected else 2]:
        assert out[key] == pytest.approx(expected[key], rel=1e-5), key
    for key in ("d_acc", "g_acc"):  # a fraction of 2B (D) or B (G) decisions
        assert out[key] == pytest.approx(expected[key], abs=1e-6), key
    for name, net, new, old in (("D", gan.discriminator, d_new, d_w), ("G", gan.generator, g_new, g_w)):
        for i, (got, want, before) in enumerate(zip(net.get_weights(), new, old)):
            # hinge / wasserstein: D's last bias gets -1/B per real row and +1/B per fake row
            # (hinge: while inside the margin, as all are at the start): no move, in numpy or TF
            still = (name, i) == ("D", 3) and cfg.loss.name in ("hinge", "wasserstein")
            assert np.array_equal(want, before) == still, f"{name} weight {i}: numpy moves it"
            np.testing.assert_allclose(got - before, want - before, rtol=1e-3, atol=1e-7, err_msg=f"{name} weight {i}")


# ---- optimizers and schedules from config, as Keras builds them ---------------------------------


@pytest.mark.parametrize(
    "name,overrides,keras_class",
    [
        ("adam", [], "Adam"),  # beta_1 0.5 from conf/optimizer/adam.yaml (Keras' default: 0.9)
        ("rmsprop", ["optimizer.params.rho=0.5", "optimizer.params.momentum=0.3"], "RMSprop"),
        ("sgd", ["optimizer.params.momentum=0.7", "optimizer.params.nesterov=true"], "SGD"),
    ],
)
def test_optimizer_params_reach_the_keras_optimizers(name, overrides, keras_class):
    trainer = _trainer([f"optimizer={name}", *overrides])
    params = trainer.cfg.optimizer.params
    if name == "adam":
        assert params.beta_1 == 0.5
    for optimizer in (trainer.gan.d_optimizer, trainer.gan.g_optimizer):
        assert type(optimizer).__name__ == keras_class
        for key, value in params.items():
            assert getattr(optimizer, key) == pytest.approx(value), key


def test_cosine_decays_over_the_whole_run_and_exponential_by_its_formula():
    import math

    steps = 40  # cosine without decay_steps decays over train_steps; schedule.g.* overrides G's
    gan = _trainer(["schedule=cosine", f"train_steps={steps}", "schedule.g.alpha=0.1"]).gan
    for t in (10, 20, 30, 40):
        gan.run_steps(t - int(gan.step.numpy()))
        cosine = 0.5 * (1 + math.cos(math.pi * t / steps))
        rates = gan.learning_rates()
        assert rates["lr_d"] == pytest.approx(1e-3 * cosine, rel=1e-5, abs=1e-12), t
        assert rates["lr_g"] == pytest.approx(5e-4 * (0.1 + 0.9 * cosine), rel=1e-5), t

    gan = _trainer(["schedule=exponential", "schedule.decay_steps=10", "schedule.g.decay_rate=0.25"]).gan
    for t in (10, 15):
        gan.run_steps(t - int(gan.step.numpy()))
        rates = gan.learning_rates()
        assert rates["lr_d"] == pytest.approx(1e-3 * 0.5 ** (t / 10), rel=1e-5), t
        assert rates["lr_g"] == pytest.approx(5e-4 * 0.25 ** (t / 10), rel=1e-5), t

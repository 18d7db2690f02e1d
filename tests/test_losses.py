"""models/losses.py: every loss and penalty against values worked out by hand (numpy, float64)."""

import numpy as np
import pytest

R = np.array([[2.0], [-1.0], [0.5]])  # D's logits on 3 real samples
F = np.array([[-3.0], [1.0], [0.0]])  # and on 3 fakes


def softplus(x):
    return np.log1p(np.exp(x))


def bce(x, t):
    """-t log sigma(x) - (1 - t) log(1 - sigma(x)) = t softplus(-x) + (1 - t) softplus(x)."""
    return t * softplus(-x) + (1 - t) * softplus(x)


# (name, function, args, value by hand)
CASES = [
    # hinge D: mean(relu(1 - r)) + mean(relu(1 + f)) = mean(0, 2, 0.5) + mean(0, 2, 1) = 5/6 + 1
    ("hinge_d", (R, F), 5 / 6 + 1),
    # wasserstein D: mean(f) - mean(r) = -2/3 - 1.5/3
    ("wasserstein_d", (R, F), -2 / 3 - 0.5),
    # G of hinge / wasserstein: -mean(f) = 2/3
    ("critic_g", (F,), 2 / 3),
    # lsgan D (a=0, b=1): 0.5 mean(1, 4, 0.25) + 0.5 mean(9, 1, 0)
    ("lsgan_d", (R, F), 0.5 * 1.75 + 0.5 * 10 / 3),
    # lsgan G (c=1): 0.5 mean(16, 0, 1)
    ("lsgan_g", (F,), 0.5 * 17 / 3),
    # lsgan with labels 0.9 / 0.1: 0.5 mean((r - 0.9)^2) + 0.5 mean((f - 0.1)^2)
    ("lsgan_d", (R, F, 0.9, 0.1), 0.5 * (1.21 + 3.61 + 0.16) / 3 + 0.5 * (9.61 + 0.81 + 0.01) / 3),
    # ns G (b=1): mean(softplus(-f)) = mean(log(1 + e^3), log(1 + e^-1), log 2)
    ("ns_g", (F,), np.mean([np.log1p(np.e**3), np.log1p(np.e**-1), np.log(2)])),
    # minimax G (a=0): -mean(softplus(f)) = mean(log(1 - sigma(f)))
    ("minimax_g", (F,), -np.mean([np.log1p(np.e**-3), np.log1p(np.e), np.log(2)])),
    # ns / minimax D with the seed's smoothing 0.9 / 0.1: one mean over the 6 rows
    ("bce_d", (R, F, 0.9, 0.1), np.mean(np.concatenate([bce(R, 0.9), bce(F, 0.1)]))),
]


@pytest.mark.parametrize("name,args,want", CASES, ids=[f"{c[0]}{len(c[1])}" for c in CASES])
def test_loss_equals_the_hand_computed_value(name, args, want):
    import tensorflow as tf

    from gan_runner.models import losses

    tensors = [tf.constant(a, tf.float32) if isinstance(a, np.ndarray) else a for a in args]
    got = float(getattr(losses, name)(*tensors))
    assert got == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_every_configured_loss_has_a_pair_and_a_group_file():
    from gan_runner import config
    from gan_runner.models import losses

    assert tuple(losses.PAIRS) == config.LOSSES
    assert sorted(config.group_options("loss")) == sorted(config.LOSSES)
    assert sorted(config.group_options("penalty")) == sorted(config.PENALTY_SCHEMAS)


def _linear_d(w, bias=0.3):
    """D(x) = x . w + bias: its input gradient is w for every sample."""
    import keras

    d = keras.Sequential([keras.Input((len(w),)), keras.layers.Dense(1)])
    d.set_weights([np.array(w, np.float32)[:, None], np.array([bias], np.float32)])
    return d


def test_gradient_penalty_and_r1_on_a_linear_d():
    import tensorflow as tf

    from gan_runner.models import losses

    w = [0.6, -0.8, 1.2]  # ||w|| = sqrt(0.36 + 0.64 + 1.44) = sqrt(2.44)
    d = _linear_d(w)
    real = tf.constant(np.random.default_rng(0).normal(size=(5, 3)), tf.float32)
    fake = tf.constant(np.random.default_rng(1).normal(size=(5, 3)), tf.float32)
    alpha = tf.constant([0.0, 0.25, 0.5, 0.75, 1.0])
    gp = float(losses.gradient_penalty(d, real, fake, alpha, 10.0))
    assert gp == pytest.approx(10 * (np.sqrt(2.44) - 1) ** 2, rel=1e-5)
    r1 = float(losses.r1_penalty(d, real, 4.0))
    assert r1 == pytest.approx(0.5 * 4.0 * 2.44, rel=1e-5)


def test_interpolation_uses_one_alpha_per_sample():
    import tensorflow as tf

    from gan_runner.models import losses

    real, fake = np.ones((3, 2, 2, 1), np.float32), np.zeros((3, 2, 2, 1), np.float32)
    x_hat = losses.interpolate(tf.constant(real), tf.constant(fake), tf.constant([0.1, 0.5, 0.9])).numpy()
    for i, alpha in enumerate((0.1, 0.5, 0.9)):  # every pixel of sample i is alpha_i
        np.testing.assert_allclose(x_hat[i], alpha, rtol=1e-6)


def test_gradient_penalty_has_a_finite_gradient_where_ds_input_gradient_is_zero():
    """D with a zero kernel: grad_x D = 0, where sqrt's derivative is infinite. The penalty's
    gradient for D's weights must stay finite (the plain tf.norm gives NaN: keras-io #143)."""
    import tensorflow as tf

    from gan_runner.models import losses

    d = _linear_d([0.0, 0.0, 0.0])
    real, fake = tf.ones((4, 3)), tf.zeros((4, 3))
    alpha = tf.constant([0.2, 0.4, 0.6, 0.8])

    def grads(norm):
        with tf.GradientTape() as tape:
            g = losses.input_gradients(d, losses.interpolate(real, fake, alpha))
            penalty = tf.reduce_mean(tf.square(norm(g) - 1.0))
        return penalty, tape.gradient(penalty, d.trainable_variables)

    penalty, safe = grads(losses.gradient_norm)
    assert float(penalty) == pytest.approx(1.0, abs=1e-5)  # (sqrt(1e-12) - 1)^2
    assert np.isfinite(safe[0].numpy()).all()  # the kernel's (the bias does not reach grad_x D)
    _, plain = grads(lambda g: tf.norm(g, axis=1))
    assert not np.isfinite(plain[0].numpy()).all()  # what the epsilon prevents
    # elsewhere the epsilon changes nothing measurable
    g = tf.constant([[3.0, 4.0]])
    assert float(losses.gradient_norm(g)[0]) == pytest.approx(5.0, rel=1e-9)

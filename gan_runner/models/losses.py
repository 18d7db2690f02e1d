"""The adversarial losses and D's gradient penalties: pure functions of D's outputs (logits).

Each loss is a pair (D's loss, G's loss), both means over the batch, named as in TF-GAN's
`losses_impl.py` / StudioGAN's `LOSS.adv_loss`. `r` = D(x) on real data, `f` = D(G(z)) on
fakes, raw (no sigmoid; sigma below is the logistic function), `a` / `b` = labels.fake /
labels.real (the BCE losses and lsgan use them; hinge and wasserstein have no labels).
config.py refuses labels.* set by the user for a loss that does not read them.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

NORM_EPS = 1e-12  # inside the gradient norm's sqrt: its derivative stays finite at a zero gradient


def _bce(logits, target):
    """mean(-t log sigma(x) - (1 - t) log(1 - sigma(x))), on logits (numerically safe)."""
    target = tf.broadcast_to(tf.cast(target, logits.dtype), tf.shape(logits))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits))


def bce_d(r, f, b: float = 1.0, a: float = 0.0):
    """D of ns and minimax: BCE of concat(r, f) against concat(b, a), one mean over the 2B rows
    (the seed's train_on_batch on real + fake): mean over 2B of -t log sigma(x) - (1-t) log(1 - sigma(x))."""
    logits = tf.concat([r, f], axis=0)
    targets = tf.concat([tf.fill(tf.shape(r), tf.cast(b, r.dtype)), tf.fill(tf.shape(f), tf.cast(a, f.dtype))], axis=0)
    return _bce(logits, targets)


def ns_g(f, b: float = 1.0, a: float = 0.0):
    """Non-saturating G (Goodfellow et al. 2014, sec. 3): mean(BCE(f, b)); b = 1: -mean(log sigma(f))."""
    return _bce(f, b)


def minimax_g(f, b: float = 1.0, a: float = 0.0):
    """Minimax (saturating) G: -mean(BCE(f, a)); a = 0: mean(log(1 - sigma(f))), the game's value."""
    return -_bce(f, a)


def hinge_d(r, f, b: float = 1.0, a: float = 0.0):
    """Hinge D (Lim & Ye 2017; Miyato et al. 2018): mean(relu(1 - r)) + mean(relu(1 + f))."""
    return tf.reduce_mean(tf.nn.relu(1.0 - r)) + tf.reduce_mean(tf.nn.relu(1.0 + f))


def critic_g(f, b: float = 1.0, a: float = 0.0):
    """G of hinge and wasserstein: -mean(f)."""
    return -tf.reduce_mean(f)


def wasserstein_d(r, f, b: float = 1.0, a: float = 0.0):
    """Wasserstein critic (Arjovsky et al. 2017): mean(f) - mean(r); needs a Lipschitz
    constraint (penalty=gp or model.d_spectral_norm=true) to be a distance."""
    return tf.reduce_mean(f) - tf.reduce_mean(r)


def lsgan_d(r, f, b: float = 1.0, a: float = 0.0):
    """Least squares D (Mao et al. 2017, eq. 2 with a = 0, b = 1): 0.5 mean((r - b)^2) + 0.5 mean((f - a)^2)."""
    return 0.5 * tf.reduce_mean(tf.square(r - b)) + 0.5 * tf.reduce_mean(tf.square(f - a))


def lsgan_g(f, b: float = 1.0, a: float = 0.0):
    """Least squares G (c = b = labels.real): 0.5 mean((f - b)^2)."""
    return 0.5 * tf.reduce_mean(tf.square(f - b))


# name -> (D's loss(r, f, b, a), G's loss(f, b, a)); the names are config.LOSSES (conf/loss/)
PAIRS: dict[str, tuple[Callable, Callable]] = {
    "ns": (bce_d, ns_g),
    "minimax": (bce_d, minimax_g),
    "hinge": (hinge_d, critic_g),
    "wasserstein": (wasserstein_d, critic_g),
    "lsgan": (lsgan_d, lsgan_g),
}


def gradient_norm(grads):
    """Per-sample L2 norm of grads (B, ...): sqrt(sum over all but the batch axis of g^2 + 1e-12).
    The epsilon keeps the norm's derivative finite where the gradient is 0 (sqrt'(0) = inf, which
    made keras-io's WGAN-GP example produce NaN); it moves the norm by at most 1e-6."""
    axes = list(range(1, len(grads.shape)))
    return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=axes) + NORM_EPS)  # (B,)


def input_gradients(discriminator, x):
    """dD(x)/dx for each sample (B, ...), D in training mode like the loss it is added to."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = discriminator(x, training=True)
    return tape.gradient(out, x)


def interpolate(real, fake, alpha):
    """x_hat = alpha * real + (1 - alpha) * fake, alpha (B,) ~ U(0, 1): one alpha per sample
    (keras-io's example drew one per batch)."""
    alpha = tf.reshape(alpha, [-1] + [1] * (len(real.shape) - 1))
    return alpha * real + (1.0 - alpha) * fake


def gradient_penalty(discriminator, real, fake, alpha, weight: float):
    """WGAN-GP (Gulrajani et al. 2017, alg. 1): weight * mean((||grad_x D(x_hat)||_2 - 1)^2)."""
    norm = gradient_norm(input_gradients(discriminator, interpolate(real, fake, alpha)))
    return weight * tf.reduce_mean(tf.square(norm - 1.0))


def r1_penalty(discriminator, real, gamma: float):
    """R1 (Mescheder et al. 2018, eq. 9): gamma / 2 * mean(||grad_x D(x)||_2^2) on real data."""
    grads = input_gradients(discriminator, real)
    axes = list(range(1, len(grads.shape)))
    return 0.5 * gamma * tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=axes))

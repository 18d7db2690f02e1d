"""The compiled step: each update touches only its own network; batching follows the seed."""

import numpy as np
import pytest

from conftest import compose_cfg
from gan_runner.models.gan import sequential_bounds


def test_sequential_bounds_split_1000_into_333_333_334():
    bounds = sequential_bounds(1000, 333)
    assert (bounds[:, 1] - bounds[:, 0]).tolist() == [333, 333, 334]
    assert bounds[0, 0] == 0 and bounds[-1, 1] == 1000


def _trainer(overrides):
    from gan_runner import data, tracking, train

    cfg = compose_cfg(["tracking=none", *overrides])
    return train.Trainer(cfg, data.load(cfg.data, cfg.seed), tracking.NullTracker())


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def _changed(before, model):
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("model", ["gaussian1d"])
def test_d_update_changes_only_d_and_g_update_only_g(model):
    gan = _trainer([f"model={model}"]).gan
    real = gan.real_batch()
    noise = gan.noise(real.shape[0])
    d0, g0 = _weights(gan.discriminator), _weights(gan.generator)
    gan.d_update(real, noise)
    assert _changed(d0, gan.discriminator), "D update did not train D (the Keras 3 trainable trap)"
    assert not _changed(g0, gan.generator), "D update changed G"
    d1 = _weights(gan.discriminator)
    gan.g_update(noise)
    assert _changed(g0, gan.generator), "G update did not train G"
    assert not _changed(d1, gan.discriminator), "G update changed D"


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

"""The composed config: defaults, group choices, validation without TensorFlow. The bad-input
table (one line, exit 2, no run) is tests/test_bad_input.py."""

import pytest

from conftest import ROOT, compose_cfg, run_cli
from gan_runner.config import ConfigError, group_options


def test_validation_never_imports_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from conftest import compose_cfg\n"
            "try:\n    compose_cfg(['train_steps=0'])\nexcept Exception as e: print(type(e).__name__)\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True)
    assert out.stdout.split() == ["ConfigError", "False"], out.stderr


def test_defaults_carry_the_seed_values():
    cfg = compose_cfg([])
    assert cfg.model.name == "gaussian1d" and cfg.model.noise_dim == 16 and cfg.model.hidden == 32
    assert cfg.optimizer.name == "rmsprop"
    assert (cfg.optimizer.d.learning_rate, cfg.optimizer.g.learning_rate) == (1e-3, 5e-4)
    assert (cfg.labels.real, cfg.labels.fake) == (0.9, 0.1)
    assert (cfg.batch.size, cfg.batch.order, cfg.batch.reuse_noise) == (333, "sequential", True)
    assert cfg.train_steps == 3000 and cfg.eval_every == 30 and cfg.data.n == 1000


def test_switching_optimizer_keeps_the_models_learning_rates():
    cfg = compose_cfg(["optimizer=adam", "schedule=cosine"])
    assert cfg.optimizer.name == "adam" and cfg.optimizer.params.beta_1 == 0.5
    assert (cfg.optimizer.d.learning_rate, cfg.optimizer.g.learning_rate) == (1e-3, 5e-4)


@pytest.mark.parametrize("group", ["optimizer", "schedule", "tracking", "data", "model"])
def test_every_choice_of_every_group_composes(group):
    for choice in group_options(group):
        try:
            compose_cfg([f"{group}={choice}"])
        except ConfigError as err:  # a model/data pair that does not fit says so clearly
            assert "needs" in str(err), str(err)


def test_experiment_is_selectable_from_any_directory(tmp_path):
    result = run_cli(["experiment=seed_gaussian1d", "--cfg", "job"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "run_name: seed_gaussian1d" in result.stdout and "train_steps: 3000" in result.stdout


def test_hydra_help_works(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0 and "model: " in result.stdout, result.stdout

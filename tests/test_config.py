"""The composed config: defaults, group choices, validation without TensorFlow. The bad-input
table (one line, exit 2, no run) is tests/test_bad_input.py."""

import pytest

from conftest import ROOT, compose_cfg, run_cli
from gan_runner.config import CONF_DIR, ConfigError, group_options


def test_validation_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from conftest import compose_cfg\n"
        "try:\n    compose_cfg(['train_steps=0'])\nexcept Exception as e: print(type(e).__name__)\n"
        "print('tensorflow' in sys.modules)"
    )
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


def test_each_default_is_written_once_in_conf_not_in_the_schema():
    """The schemas give types only: a default there beside conf/'s would be a second value
    (gaussian1d had 20 keys whose schema default differed from, or was missing in, its YAML)."""
    from omegaconf import OmegaConf

    from gan_runner.config import DATA_SCHEMAS, MODEL_SCHEMAS, PENALTY_SCHEMAS, RunConf, flatten

    def defaults(schema) -> dict[str, str]:
        node = OmegaConf.to_container(OmegaConf.structured(schema))
        return {
            k: v for k, v in flatten(node).items() if v != "???" and k not in ("model", "data", "schedule", "penalty")
        }

    found = {
        f"{s.__name__}.{k}": v
        for s in (RunConf, *MODEL_SCHEMAS.values(), *DATA_SCHEMAS.values(), *PENALTY_SCHEMAS.values())
        for k, v in defaults(s).items()
    }
    assert found == {}, f"defaults in gan_runner/config/schema.py, give them in conf/ instead: {found}"
    for model in group_options("model"):  # and conf/ gives every key a value for every model
        compose_cfg([f"model={model}"])


def test_a_stored_config_from_an_older_version_gets_todays_defaults_for_its_choices():
    """A key added since a run was stored: validate names it; config.with_defaults (resume=,
    evaluate --config) fills it from conf/ composed for the run's own choices."""
    from omegaconf import OmegaConf

    from gan_runner.config import validate, with_defaults

    overrides = ["model=dcgan", "optimizer=adam", "train_steps=7"]
    today = OmegaConf.to_container(compose_cfg(overrides), resolve=True)
    old = OmegaConf.to_container(compose_cfg(overrides), resolve=True)
    del old["eval"]["prdc_k"], old["trainer"]["onednn"], old["optimizer"]["params"]
    with pytest.raises(ConfigError, match=r"^eval\.prdc_k: no value"):
        validate(OmegaConf.create(old))
    filled = OmegaConf.to_container(validate(with_defaults(old)), resolve=True)
    assert filled == today  # dcgan's prdc_k and onednn, adam's params; train_steps stays the stored 7
    assert filled["optimizer"]["params"]["beta_1"] == 0.5 and filled["train_steps"] == 7


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


def test_help_says_what_it_does_then_examples_choices_and_companions_before_the_config(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path)
    out = result.stdout
    assert result.returncode == 0 and out.startswith("gan_runner: train GANs from config"), out[:500]
    examples = out[out.index("== Examples ==") : out.index("== Config groups")]
    assert examples.count("python -m gan_runner") == 3, examples
    config_dump = out.index("== Config (")
    groups = [p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"]
    for group in groups:  # every group in conf/ with every one of its choices
        assert f"{group}: {', '.join(group_options(group))}\n" in out[:config_dump], group
    launchers = sorted({*group_options("hydra/launcher"), "basic", "joblib", "submitit_local", "submitit_slurm"})
    assert f"hydra/launcher: {', '.join(launchers)}\n" in out[:config_dump]
    for command in ("gan_runner.compare", "gan_runner.evaluate", "gan_runner.ui"):
        assert 0 < out.index(f"python -m {command}") < config_dump, command
    assert "train_steps: 3000" in out[config_dump:]
    assert not (tmp_path / "outputs").exists()


def test_dcgan_schedule_values_apply_only_to_its_own_schedule():
    # The seed's Keras-2 decay (SEED.md section 2), from conf/model_schedule/dcgan_inverse_time.yaml
    for overrides in (["model=dcgan"], ["model=dcgan_mnist"], ["experiment=seed_dcgan"]):
        s = compose_cfg(overrides).schedule
        assert (s.name, s.decay_steps, s.d.decay_rate, s.g.decay_rate) == ("inverse_time", 1, 6e-8, 3e-8), overrides
    # Another schedule gets its own defaults, nothing of dcgan's (they used to leak into it).
    for name in ("constant", "cosine", "exponential"):
        assert compose_cfg(["model=dcgan", f"schedule={name}"]).schedule == compose_cfg([f"schedule={name}"]).schedule
    assert compose_cfg(["model=dcgan", "schedule=exponential"]).schedule.decay_rate == 0.5
    # A value the user sets takes effect, or is refused naming the keys that stop it.
    s = compose_cfg(["model=dcgan", "schedule.d.decay_rate=0.5"]).schedule
    assert (s.d.decay_rate, s.g.decay_rate) == (0.5, 3e-8)
    with pytest.raises(
        ConfigError,
        match=r"^schedule.decay_rate: has no effect, schedule.d.decay_rate=6e-08 and "
        r"schedule.g.decay_rate=3e-08 are both set",
    ):
        compose_cfg(["model=dcgan", "schedule.decay_rate=0.5"])
    s = compose_cfg(["model=dcgan", "schedule.decay_rate=0.5", "schedule.d.decay_rate=null"]).schedule
    assert (s.decay_rate, s.d.decay_rate, s.g.decay_rate) == (0.5, None, 3e-8)  # D takes the shared 0.5
    with pytest.raises(ConfigError, match=r"^schedule.decay_rate: schedule 'inverse_time' needs a value for D"):
        compose_cfg(["model=dcgan", "schedule.d.decay_rate=null"])
    # Per-network values on a plain schedule are not refused for the file's shared default.
    s = compose_cfg(["schedule=inverse_time", "schedule.d.decay_rate=1e-3", "schedule.g.decay_rate=2e-3"]).schedule
    assert (s.d.decay_rate, s.g.decay_rate) == (1e-3, 2e-3)


def test_integral_floats_are_integers_and_fractions_are_refused():
    cfg = compose_cfg(["train_steps=1e3", "batch.size=32.0", "schedule=exponential", "schedule.decay_steps=2e2"])
    assert (cfg.train_steps, cfg.batch.size, cfg.schedule.decay_steps) == (1000, 32, 200)
    assert type(cfg.train_steps) is int and type(cfg.schedule.decay_steps) is int
    assert list(compose_cfg(["model=dcgan", "model.g_filters=[64.0,32,16,1]"]).model.g_filters) == [64, 32, 16, 1]
    for overrides, message in (
        (["train_steps=1.5"], "train_steps: expected an integer, got '1.5'"),
        (["schedule=exponential", "schedule.decay_steps=2.5"], "schedule.decay_steps: expected an integer, got '2.5'"),
        (["model=dcgan", "model.g_filters=[64.5,32,16,1]"], "model.g_filters[0]: expected an integer, got '64.5'"),
    ):
        with pytest.raises(ConfigError) as err:
            compose_cfg(overrides)
        assert str(err.value) == message


def test_optimizer_params_belong_to_the_chosen_optimizer():
    assert compose_cfg(["optimizer=adam", "+optimizer.params.amsgrad=true"]).optimizer.params.amsgrad is True
    with pytest.raises(
        ConfigError, match=r"^optimizer.params.beta_1: not a parameter of optimizer 'sgd'.*optimizer=adam"
    ):
        compose_cfg(["optimizer=sgd", "+optimizer.params.beta_1=0.5"])
    with pytest.raises(
        ConfigError,
        match=r"^optimizer.params.learning_rate: .*did you mean "
        r"optimizer.d.learning_rate or optimizer.g.learning_rate\?$",
    ):
        compose_cfg(["+optimizer.params.learning_rate=0.1"])

"""The config group conf/model/ and the registry dict agree; unknown names list the known."""

import dataclasses

import pytest

from gan_runner import registry
from gan_runner.config import DATA_SCHEMAS, MODEL_SCHEMAS, group_options


def test_every_model_yaml_has_a_builder_and_vice_versa():
    assert set(group_options("model")) == set(registry.MODELS)
    for name in registry.MODELS:
        module = registry.get_model(name)
        for attr in ("build_generator", "build_discriminator", "latent_dim", "evaluate", "pictures"):
            assert callable(getattr(module, attr)), (name, attr)
        # a conditional model (G(z, y), D(x, y)) says how many classes its G input one-hots
        assert callable(getattr(module, "num_classes", None)) == registry.MODELS[name].conditional, name


def test_every_data_yaml_is_known():
    assert set(group_options("data")) == set(registry.DATA_KINDS) == set(DATA_SCHEMAS)
    assert {registry.MODELS[m].data_kind for m in registry.MODELS} <= set(registry.DATA_KINDS.values())
    assert set(MODEL_SCHEMAS) >= {m for m, entry in registry.MODELS.items() if entry.alias_of is None}


def test_one_table_per_group_and_the_checks_name_only_its_entries():
    from gan_runner.config.checks import DATA_CHECKS, MODEL_CHECKS

    assert set(MODEL_CHECKS) <= set(MODEL_SCHEMAS) and set(DATA_CHECKS) <= set(registry.DATA)
    for name, entry in registry.MODELS.items():
        if entry.alias_of:  # a file that names another model: the same code and schema
            assert registry.MODELS[entry.alias_of] == dataclasses.replace(entry, alias_of=None), name
        else:
            assert MODEL_SCHEMAS[name] is entry.schema


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: .*gaussian1d"):
        registry.get_model("nope")

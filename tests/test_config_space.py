"""The config space, generated from conf/ itself: the Cartesian product of every choice of
every config group that conf/config.yaml picks by default (model x optimizer x schedule x
data today; a group added later joins without editing this file) x every trainer.update.

Each combination is composed with Hydra's compose API and validated, then either
- trains 3 real steps (tiny data and networks, one process, no tracker) with finite losses and
  learning rates equal to its schedule's formula, computed here in numpy from the config, or
- is refused by validation (config.py, which never imports TensorFlow) in one line naming a
  key the combination set.
A group's node must not depend on the choices of other groups (no leaks), except through a
specialization file (conf/model_schedule/<model>_<schedule>.yaml and the like).

The GAN techniques (loss and penalty groups, trainer.d_steps, model.d_spectral_norm, ema.decay)
are not multiplied in: each (model, optimizer, schedule) gets one choice of them, picked greedily
so that the trained combinations cover every pair of values (all-pairs) of those axes, model and
trainer.update, which keeps the number of trainings that of the product without them. The pairs
d_steps > 1 with the simultaneous update, and trainer.jit_compile with gaussian1d (its sequential
blocks differ in size) are refused by name instead. trainer.precision and trainer.jit_compile are
technique axes too (the steps run eagerly here: XLA itself is trained in test_precision.py).

A model's own value axes (MODEL_VALUES: cdcgan's model.cond) join the technique axes of that
model's keys, which get as many technique choices as it takes for each of those values to meet
every technique value and update in some trained row (2 per cdcgan key; multiplying model.cond
in instead tripled cdcgan's trainings: 1121 s under load against ~120 s now).

Combinations whose validated config and data are identical (model=dcgan_mnist is another name
for dcgan; fashion_mnist read from the MNIST files when Debian's copy is not installed) are one
training: it runs once and every one of them is checked against it.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import time
import warnings

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import MNIST
from gan_runner import config, data, registry, sweep  # noqa: F401  (sweep registers the optuna_direction resolver)

STEPS = 3
# Not multiplied in, and why; every other defaulted group of conf/config.yaml is.
NOT_IN_PRODUCT = {"tracking": "where results go, not what trains (test_train and test_sweeps cover both)"}
# Choices that are values, not config groups.
VALUE_CHOICES = {"trainer.update": config.UPDATES}
# Covered pairwise, not multiplied in (module docstring): config groups, then values.
PAIRWISE = {
    "loss": config.group_options("loss"),
    "penalty": config.group_options("penalty"),
    "trainer.d_steps": ["1", "2"],
    "model.d_spectral_norm": ["false", "true"],
    "ema.decay": ["null", "0.9"],
    "trainer.precision": list(config.PRECISIONS),
    "trainer.jit_compile": ["false", "true"],
}
# Pairs refused by name, with the message's start: d_steps needs alternating; XLA needs fixed shapes
# (gaussian1d walks its data in blocks of 333, 333, 334).
REFUSED_PAIRS = {
    frozenset({("trainer.d_steps", "2"), ("trainer.update", "simultaneous")}): "trainer.d_steps: 2 needs "
    "trainer.update=alternating",
    frozenset({("model", "gaussian1d"), ("trainer.jit_compile", "true")}): "trainer.jit_compile: true needs "
    "batch.order=random",
}
# A model's own value axes (by its module): technique axes of that model's keys only.
MODEL_VALUES = {"gan_runner.models.cdcgan": {"model.cond": list(config.CONDS)}}
AXES = {*PAIRWISE, *(axis for values in MODEL_VALUES.values() for axis in values)}  # what pairs() counts


def refused_pair(row: dict[str, str]) -> frozenset | None:
    return next((pair for pair in REFUSED_PAIRS if pair <= set(row.items())), None)


TINY = [f"train_steps={STEPS}", "batch.size=8", "data.n=32"]
# Smaller networks per model module (the shapes still give 28x28 images); a module not listed
# trains at its configured size.
TINY_MODEL = {
    "gan_runner.models.dcgan": [
        "model.latent_dim=8",
        "model.g_filters=[4,1]",
        "model.g_strides=[2,2]",
        "model.d_filters=[4]",
        "model.d_strides=[2]",
    ],
    "gan_runner.models.gaussian1d": ["model.noise_dim=4", "model.hidden=8"],
    "gan_runner.models.cdcgan": [
        "model.latent_dim=8",
        "model.g_filters=[4,1]",
        "model.g_strides=[2,2]",
        "model.d_filters=[4]",
        "model.d_strides=[2]",
    ],
}


def model_values(model: str) -> dict[str, list[str]]:
    return MODEL_VALUES.get(registry.MODELS[model].module, {})


def product_groups() -> list[str]:
    """The groups conf/config.yaml picks a default for (not null, not interpolated)."""
    defaults = yaml.safe_load((config.CONF_DIR / "config.yaml").read_text())["defaults"]
    groups = []
    for entry in defaults:
        if isinstance(entry, dict):
            ((key, value),) = entry.items()
            key = key.removeprefix("optional ").strip()
            if (
                value is not None
                and "${" not in str(value)
                and "/" not in key
                and key not in NOT_IN_PRODUCT
                and key not in PAIRWISE
            ):
                groups.append(key)
    return sorted(groups)


def pairs(row: dict[str, str]) -> set[frozenset]:
    """The value pairs of a trained row that involve a technique axis."""
    items = sorted(row.items())
    return {frozenset((a, b)) for i, a in enumerate(items) for b in items[i + 1 :] if a[0] in AXES or b[0] in AXES}


def technique_plan(keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[dict[str, str]]]:
    """key (model, optimizer, schedule) -> its technique choices: one value per PAIRWISE axis (and
    the model's own axes), chosen greedily (first best, so the plan is the same every run) to
    cover the most pairs not covered yet (the model's own axes' pairs before the others) by the
    rows that train: the key's alternating row, and its simultaneous row unless refused. One
    choice per key, except for a model with its own axes: as many as its keys need to meet every
    value of those axes with every value of each technique axis (cdcgan: 3 conds x 5 losses over
    12 keys: 2 each)."""
    covered: set[frozenset] = set()
    plan: dict[tuple[str, ...], list[dict[str, str]]] = {}

    def rows(model, tech):
        return [
            {"model": model, "trainer.update": u, **tech}
            for u in config.UPDATES
            if refused_pair({"model": model, "trainer.update": u, **tech}) is None
        ]

    for key in keys:
        own_axes = model_values(key[0])
        axes = {**PAIRWISE, **own_axes}
        options = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        own = set(own_axes)  # the model's own axes have only its keys' rows: their pairs first
        model_keys = sum(k[0] == key[0] for k in keys)
        widest = max((len(a) * len(p) for a in own_axes.values() for p in PAIRWISE.values()), default=0)

        def gain(tech, own=own, model=key[0]):
            new = set().union(*(pairs(r) for r in rows(model, tech))) - covered
            return sum(any(axis in own for axis, _ in pair) for pair in new), len(new)

        plan[key] = []
        for _ in range(max(1, math.ceil(widest / model_keys))):
            best = max(options, key=gain)
            plan[key].append(best)
            covered |= set().union(*(pairs(r) for r in rows(key[0], best)))
    return plan


@functools.cache
def image_data_path(name: str) -> str | None:
    """Where the image set is on this machine (MNIST: $GAN_RUNNER_MNIST), None if nowhere."""
    found, _ = data.find_images(name, str(MNIST) if name == "mnist" else None)
    return str(found) if found is not None else None


def combination_overrides(choice: dict[str, str]) -> list[str]:
    out = [f"{key}={value}" for key, value in choice.items()]
    out += TINY + TINY_MODEL.get(registry.MODELS[choice["model"]].module, [])
    if registry.DATA_KINDS.get(choice.get("data")) == "image" and image_data_path(choice["data"]):
        out.append(f"data.path={image_data_path(choice['data'])}")
    return out


def specialization(group: str, choice: dict[str, str]) -> str | None:
    """conf/model_<group>/<model>_<choice>.yaml when it exists: the model's own values for it."""
    path = config.CONF_DIR / f"model_{group}" / f"{choice['model']}_{choice[group]}.yaml"
    return str(path) if path.is_file() else None


@functools.cache
def alias_of(group: str, name: str) -> str:
    """A choice whose file only includes another choice of its group (dcgan_mnist -> dcgan)."""
    text = yaml.safe_load((config.CONF_DIR / group / f"{name}.yaml").read_text()) or {}
    plain = [d for d in text.get("defaults", []) if isinstance(d, str) and d in config.group_options(group)]
    return alias_of(group, plain[0]) if plain and set(text) == {"defaults"} else name


@functools.cache
def own_keys(group: str, name: str) -> set[str]:
    """The keys a choice's file sets in its group's node (optimizer/adam.yaml: name, params; the
    learning rates in optimizer.d / .g are every optimizer's and come from the model)."""
    text = yaml.safe_load((config.CONF_DIR / group / f"{alias_of(group, name)}.yaml").read_text()) or {}
    if "@package _global_" in (config.CONF_DIR / group / f"{alias_of(group, name)}.yaml").read_text():
        text = text.get(group, {})
    return set(text) - {"defaults"}


def expected_lr(schedule, net: str, lr: float, t: int, total: int) -> float:
    """The schedule's formula at step t, with schedule.<net>.<p> over the shared schedule.<p>."""
    p = {k: v for k, v in schedule.items() if k not in ("name", "d", "g")}
    p.update({k: v for k, v in schedule[net].items() if v is not None})
    match schedule.name:
        case "constant":
            return lr
        case "inverse_time":
            return lr / (1 + p["decay_rate"] * t / p["decay_steps"])
        case "exponential":
            return lr * p["decay_rate"] ** (t / p["decay_steps"])
        case "cosine":
            n = p["decay_steps"] or total
            return lr * ((1 - p["alpha"]) * 0.5 * (1 + math.cos(math.pi * min(t, n) / n)) + p["alpha"])
    raise AssertionError(f"schedule '{schedule.name}' has no formula in this test: add it to expected_lr")


@functools.cache
def load_data(data_yaml: str, seed: int) -> np.ndarray:
    """data.load, once per distinct data config (reading and checksumming MNIST takes a while)."""
    return data.load(OmegaConf.create(data_yaml), seed)


TIMES = {"train": 0.0}


def train_3_steps(cfg, real) -> tuple[list[dict], list[dict]]:
    """(losses, learning rates and the updates each optimizer applied so far) after each of 3 real steps."""
    from gan_runner import tracking, train

    started = time.perf_counter()
    trainer = train.Trainer(cfg, real, tracking.NullTracker())
    losses, rates = [], []
    for _ in range(STEPS):
        losses.append({k: float(v) for k, v in trainer.gan.run_steps(1).items()})
        applied = {f"applied_{n}": int(getattr(trainer.gan, f"{n}_optimizer").iterations.numpy()) for n in "dg"}
        rates.append({**trainer.gan.learning_rates(), **applied})
    TIMES["train"] += time.perf_counter() - started
    return losses, rates


def check_combination(choice, raw, overrides, axes, trained, refused, missing) -> int:
    """1 if the combination validated and its 3 steps check out, 0 if refused or not trainable here."""
    try:
        cfg = config.validate(raw, overrides)
    except config.ConfigError as err:
        message = str(err)
        assert "\n" not in message and message.split(":")[0] in config.user_keys(overrides) | set(axes), (
            choice,
            message,
        )
        refused.append((choice, message))
        return 0
    if registry.DATA_KINDS[cfg.data.name] == "image" and image_data_path(cfg.data.name) is None:
        missing.add(choice["data"])  # validated; trains where the data set is installed
        return 0
    real = load_data(OmegaConf.to_yaml(cfg.data), cfg.seed)
    assert real.dtype == np.float32 and len(real) == cfg.data.n and np.isfinite(real).all(), choice
    # mnist and fashion_mnist run the same code on data of one shape: one training for both.
    key = (
        OmegaConf.to_yaml({**OmegaConf.to_container(cfg), "data": {**cfg.data, "name": "-", "path": "-"}}),
        real.shape,
    )
    if key not in trained:
        trained[key] = train_3_steps(cfg, real)
    losses, rates = trained[key]
    for t, (loss, rate) in enumerate(zip(losses, rates), start=1):
        assert all(math.isfinite(v) for v in loss.values()), (choice, t, loss)
        for net in ("d", "g"):
            # Schedules count applied updates. mixed_float16's LossScaleOptimizer skips an update whose
            # scaled gradients overflow (and halves the scale): its schedule then waits. Else none is skipped.
            per_step = cfg.trainer.d_steps if net == "d" else 1
            applied = rate[f"applied_{net}"]
            if cfg.trainer.precision != "mixed_float16":
                assert applied == t * per_step, (choice, net, t, applied)
            want = expected_lr(cfg.schedule, net, cfg.optimizer[net].learning_rate, applied / per_step, cfg.train_steps)
            assert rate[f"lr_{net}"] == pytest.approx(want, rel=2e-6, abs=1e-12), (choice, net, t)
    return 1


def test_every_combination_of_choices_trains_or_is_refused_by_name():
    import tensorflow as tf

    groups = product_groups()
    assert {"model", "optimizer", "schedule", "data"} <= set(groups), groups
    axes = {g: config.group_options(g) for g in groups} | {k: list(v) for k, v in VALUE_CHOICES.items()}
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    # one technique choice per distinct training (dcgan_mnist is dcgan); data does not matter
    keys = sorted({(alias_of("model", c["model"]), c["optimizer"], c["schedule"]) for c in combos})
    plan = technique_plan(keys)
    trained_pairs: set[frozenset] = set()
    started = time.perf_counter()
    trained: dict[tuple, tuple] = {}  # the same config and data shape -> one training
    refused, checked, nodes, missing = [], 0, {}, set()
    tf.config.run_functions_eagerly(True)  # the same step code, without tracing it 100 times
    try:
        with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
            for group_choice in itertools.product(*(axes[g] for g in groups)):
                choice = dict(zip(groups, group_choice))
                for tech in plan[(alias_of("model", choice["model"]), choice["optimizer"], choice["schedule"])]:
                    choice = dict(zip(groups, group_choice))
                    composed = compose(config_name="config", overrides=combination_overrides({**choice, **tech}))
                    for group in [*groups, "loss", "penalty"]:  # what a choice's file sets depends on that choice only
                        choice[group] = choice.get(group, tech.get(group))
                        key = (group, choice[group], specialization(group, choice))
                        node = {
                            k: v
                            for k, v in OmegaConf.to_container(composed[group], resolve=True).items()
                            if k in own_keys(group, choice[group]) and f"{group}.{k}" not in AXES
                        }
                        assert nodes.setdefault(key, node) == node, (choice, group, node, nodes[key])
                        if "name" in composed[group]:
                            assert composed[group].name == alias_of(group, choice[group]), (choice, group)
                    # Values (trainer.update) are plain overrides of one key: set on the composed config.
                    value_axes = VALUE_CHOICES
                    for values in itertools.product(*value_axes.values()):
                        choice = {**dict(zip(groups, group_choice)), **tech, **dict(zip(value_axes, values))}
                        overrides = combination_overrides(choice)
                        raw = composed.copy()
                        for key, value in zip(value_axes, values):
                            OmegaConf.update(raw, key, value)
                        ok = check_combination(choice, raw, overrides, axes, trained, refused, missing)
                        checked += ok
                        if ok:
                            trained_pairs |= pairs(
                                {
                                    "model": alias_of("model", choice["model"]),
                                    **tech,
                                    **{axis: choice[axis] for axis in value_axes},
                                }
                            )
    finally:
        tf.config.run_functions_eagerly(False)
    wall = time.perf_counter() - started
    print(
        f"\n{len(combos)} combinations ({' x '.join(f'{len(v)} {k}' for k, v in axes.items())}): "
        f"{checked} trained ({len(trained)} distinct trainings), {len(refused)} refused, {wall:.1f} s "
        f"({TIMES['train']:.1f} s of it training)"
    )
    # d_steps > 1 with the simultaneous update, jit_compile with gaussian1d's sequential blocks:
    # refused by name, wherever the data fits.
    other = [(c, m) for c, m in refused if not m.startswith("data: ")]
    assert other and all(
        any(p <= set(c.items()) and m.startswith(REFUSED_PAIRS[p]) for p in REFUSED_PAIRS) for c, m in other
    )
    # (the plan never gives gaussian1d jit_compile=true, neither of its rows would train: test_bad_input has it)
    refused = [(c, m) for c, m in refused if m.startswith("data: ")]
    # Every pair of technique values (and with model, trainer.update) trained at least once.
    if not missing:
        everything = {"model": sorted({k[0] for k in keys}), "trainer.update": list(config.UPDATES), **PAIRWISE}
        wanted = set().union(
            *(pairs(dict(zip(everything, values))) for values in itertools.product(*everything.values()))
        )
        for model in sorted({k[0] for k in keys}):  # a model's own values meet every other value
            own = {"model": [model], "trainer.update": list(config.UPDATES), **PAIRWISE, **model_values(model)}
            if model_values(model):
                wanted |= set().union(*(pairs(dict(zip(own, values))) for values in itertools.product(*own.values())))
        wanted -= set(REFUSED_PAIRS)
        assert wanted <= trained_pairs, sorted(map(sorted, wanted - trained_pairs))[:5]
        print(f"{len(wanted)} technique value pairs covered by {len(keys)} choices")
    # Refused exactly where the model needs another kind of data, and nowhere else.
    needs_other_data = {(c["model"], c["data"]) for c, _ in refused}
    assert needs_other_data == {
        (m, d) for m in axes["model"] for d in axes["data"] if registry.MODELS[m].data_kind != registry.DATA_KINDS[d]
    }
    assert {("gaussian1d", "mnist"), ("dcgan", "normal1d")} <= needs_other_data
    assert all(message.startswith("data: ") for _, message in refused)
    if missing:  # e.g. Fashion-MNIST: apt-get install dataset-fashion-mnist
        warnings.warn(f"not trained, data not on this machine: data={', data='.join(sorted(missing))}")
    rows = sum(
        len(plan[alias_of("model", c["model"]), c["optimizer"], c["schedule"]])
        for c in combos
        if c["data"] not in missing
    )
    assert checked > 0 and checked == rows - len(refused) - len(other)


def test_optimizer_params_match_the_keras_constructors():
    import keras

    for name, keras_name in {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD"}.items():
        accepted = set(inspect.signature(getattr(keras.optimizers, keras_name).__init__).parameters)
        ours = {*config.OPTIMIZER_PARAMS[name], *config.OPTIMIZER_COMMON_PARAMS}
        assert ours == accepted - {"self", "learning_rate", "name", "kwargs"}, name

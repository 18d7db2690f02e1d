"""Config schemas and validation. Imports neither TensorFlow nor MLflow, so a bad value costs
well under a second: `validate(cfg)` raises ConfigError with one line naming the key and
what is allowed.

Types come from dataclass schemas merged with OmegaConf (unknown keys and wrong types are
caught there); ranges and names are checked by the rules below.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import typing
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_runner import registry
from gan_runner.config.schema import (
    OPTIMIZER_COMMON_PARAMS,
    OPTIMIZER_PARAMS,
    PENALTY_SCHEMAS,
    SCHEDULE_NULLABLE,
    SCHEDULE_PARAMS,
    RunConf,
)
from gan_runner.data.images import IMAGE_HW
from gan_runner.errors import ConfigError
from gan_runner.store import RUN_ID

IMAGE_CHANNELS = 1  # MNIST and Fashion-MNIST are grayscale

# The sections whose keys depend on the choice: their schemas (from the registry's tables), by
# model.name / data.name.
MODEL_SCHEMAS: dict[str, type] = {n: e.schema for n, e in registry.MODELS.items() if e.alias_of is None}
DATA_SCHEMAS: dict[str, type] = {n: e.schema for n, e in registry.DATA.items()}
# An installed wheel carries the configs as gan_runner/conf/; a checkout has them at the top (conf/).
_PACKAGED = Path(__file__).resolve().parents[1] / "conf"
CONF_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "conf"
SCHEDULES = ("constant", "inverse_time", "exponential", "cosine")
TRACKERS = ("mlflow", "none")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
BATCH_ORDERS = ("random", "sequential")
UPDATES = ("alternating", "simultaneous")
DIVERGENCE_POLICIES = ("raise", "penalty")
# MLflow's tracking stores (postgresql+psycopg2:// etc. are matched on the part before '+').
URI_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
STRATEGIES = ("default", "mirrored")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies (models/precision.py)
# The GAN techniques (gan_runner/models/losses.py): the loss group's choices.
LOSSES = ("ns", "minimax", "hinge", "wasserstein", "lsgan")
LABELLED_LOSSES = ("ns", "minimax", "lsgan")  # the losses that read labels.real / labels.fake
# How a conditional D sees the class (gan_runner/models/cdcgan.py).
CONDS = ("projection", "concat", "acgan")
N_CLASSES = 10  # of the image data sets (gan_runner/data/datasets.py)


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """{'optimizer': {'d': {'learning_rate': 1e-3}}} -> {'optimizer.d.learning_rate': '0.001'}."""
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: "{}"}
    return {prefix[:-1]: str(node)}


# ---- command-line group choices (checked before Hydra composes) ---------------------------


def compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    """What conf/ composes for these overrides, as `python -m gan_runner <overrides>` sees it
    (not validated; with the `hydra` node if asked). Hydra's errors pass through."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside `python -m gan_runner` (resume=): its conf/
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def group_options(group: str) -> list[str]:
    """The choices of a config group: the YAML files in conf/<group>/."""
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_group_overrides(args: list[str]) -> None:
    """Fail fast on `model=nope`-style overrides, listing the known choices.

    Hydra would also refuse, but with a multi-line message and exit status 1."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key not in groups or value in ("", "null") or "(" in value:
            continue  # sweeps like choice(...) / range(...) are Hydra's to expand
        known = group_options(key)
        for choice in value.split(","):
            if choice not in known:
                raise ConfigError(f"{key}: unknown choice '{choice}'; known: {', '.join(known)}")


# ---- validation of a composed config -------------------------------------------------------


@functools.cache
def _structured(schema: type) -> DictConfig:
    """The schema as a config, built once (OmegaConf.merge copies it, never changes it)."""
    return OmegaConf.structured(schema)


def _merge(schema: type, node: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(_structured(schema), _integral_floats(schema, node))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        full = f"{where}.{key}" if where and key else (where or key)
        reason = str(getattr(err, "msg", err)).splitlines()[0]
        if "could not be converted" in reason or "Value '" in reason:
            value = reason.split("'")[1] if "'" in reason else "?"
            kind = _type_name(reason)
            raise ConfigError(f"{full}: expected {kind}, got '{value}'") from None
        if "Key '" in reason and "not in" in reason:
            # object_type: the (nested) schema that lacks the key, e.g. OptimizerConf for optimizer.nope
            owner = getattr(err, "object_type", None)
            owner = owner if hasattr(owner, "__dataclass_fields__") else schema
            allowed = ", ".join(f.name for f in owner.__dataclass_fields__.values())
            raise ConfigError(f"{full}: unknown key; allowed: {allowed}{did_you_mean(full)}") from None
        raise ConfigError(f"{full}: {reason}") from None


def _integral_floats(schema: type, node: Any) -> Any:
    """Hydra reads `train_steps=1e3` as the float 1000.0: where the schema wants an integer, an
    integral float becomes that integer (1.5 stays a float, and the merge refuses it by name)."""
    if not isinstance(node, dict) or not dataclasses.is_dataclass(schema):
        return node
    hints = typing.get_type_hints(schema)
    out = dict(node)
    for f in dataclasses.fields(schema):
        if f.name not in out:
            continue
        kind = _strip_optional(hints[f.name])
        value = out[f.name]
        if kind is int:
            out[f.name] = _as_int(value)
        elif typing.get_origin(kind) is list and typing.get_args(kind) == (int,) and isinstance(value, list):
            out[f.name] = [_as_int(v) for v in value]
        elif dataclasses.is_dataclass(kind):
            out[f.name] = _integral_floats(kind, value)
    return out


def _strip_optional(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if typing.get_origin(kind) is typing.Union and len(args) == 1 else kind


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def known_keys() -> list[str]:
    """Every dotted key the schemas know (model and data keys of every choice, schedule
    parameters): the candidates for a did-you-mean hint."""

    def walk(schema: type, prefix: str) -> list[str]:
        out = []
        for name, kind in typing.get_type_hints(schema).items():
            kind = _strip_optional(kind)
            out += walk(kind, f"{prefix}{name}.") if dataclasses.is_dataclass(kind) else [prefix + name]
        return out

    keys = walk(RunConf, "")
    for schemas, group in ((MODEL_SCHEMAS, "model"), (DATA_SCHEMAS, "data"), (PENALTY_SCHEMAS, "penalty")):
        keys += [k for schema in schemas.values() for k in walk(schema, f"{group}.")]
    params = {p for ps in SCHEDULE_PARAMS.values() for p in ps}
    keys += [f"schedule.{part}{p}" for p in params for part in ("", "d.", "g.")]
    keys += [f"optimizer.params.{p}" for ps in OPTIMIZER_PARAMS.values() for p in ps]
    return sorted(set(keys))


def did_you_mean(key: str) -> str:
    """'; did you mean a or b?' for an unknown key, or ''. A candidate's last part must match
    the unknown one's: equal, nearly equal (train_step), or its initials (lr: learning_rate);
    candidates in the same top-level group come first, the 3 closest are named."""
    last, root = key.split(".")[-1], key.split(".")[0]

    def initials(name: str) -> str:
        return "".join(word[0] for word in name.split("_") if word)

    def close(name: str) -> bool:
        return (
            name == last
            or initials(name) == last
            or (len(last) >= 3 and name.startswith(last))
            or difflib.SequenceMatcher(None, name, last).ratio() >= 0.8
        )

    found = [k for k in known_keys() if k != key and close(k.split(".")[-1])]
    same_group = [k for k in found if k.split(".")[0] == root and "." in key]
    found = same_group or found
    found.sort(key=lambda k: -difflib.SequenceMatcher(None, k, key).ratio())
    return f"; did you mean {' or '.join(found[:3])}?" if found else ""


def _type_name(reason: str) -> str:
    for word, kind in (
        ("Integer", "an integer"),
        ("Float", "a number"),
        ("Boolean", "true/false"),
        ("bool", "true/false"),
    ):
        if word in reason:
            return kind
    return "another type"


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _refuse_foreign(where: str, key: str, group: str, chosen: str, allowed, params_of: dict) -> None:
    """`key` must be a parameter of the chosen `group` choice; else one line naming the choices
    it does belong to (or the nearest known key)."""
    if key in allowed:
        return
    owners = [other for other, params in params_of.items() if key in params]
    hint = f"; it belongs to {group}={', '.join(owners)}" if owners else did_you_mean(where)
    raise ConfigError(f"{where}: not a parameter of {group} '{chosen}'; allowed: {', '.join(allowed) or 'none'}{hint}")


def _choice(key: str, value: str, allowed: tuple[str, ...] | list[str]) -> None:
    _need(value in allowed, f"{key}: unknown choice '{value}'; known: {', '.join(allowed)}")


def _positive_int(key: str, value: int) -> None:
    _need(value > 0, f"{key}: must be a positive integer, got {value}")


def _positive_float(key: str, value: float) -> None:
    _need(math.isfinite(value) and value > 0, f"{key}: must be > 0, got {value}")


# The groups whose choice a config records as <group>.name (conf/<group>/<name>.yaml).
NAMED_GROUPS = ("model", "data", "optimizer", "schedule", "tracking", "loss", "penalty")


def with_defaults(stored: Any) -> DictConfig:
    """A config stored by an older run (or a partial one) with the keys it lacks taken from
    today's conf/: the config composed for its own choices of the NAMED_GROUPS, the stored
    values winning. Unknown keys stay, for validate to refuse."""
    stored = stored if isinstance(stored, DictConfig) else OmegaConf.create(stored)
    choices = [
        f"{group}={name}"
        for group in NAMED_GROUPS
        if (name := OmegaConf.select(stored, f"{group}.name", default=None)) in group_options(group)
    ]
    composed = OmegaConf.to_container(compose(choices))  # a plain dict: no struct flag, ${...} kept
    for key in ("experiment", "hparams_search"):
        composed.pop(key, None)
    return OmegaConf.merge(OmegaConf.create(composed), stored)


def user_keys(overrides: list[str] | None) -> set[str]:
    """The keys a command line sets (`+a.b=1`, `++a.b=1` and `a.b=1` all set a.b)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides or [] if "=" in o}


def validate(cfg: DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """Check types, names and ranges (every key must have a value: the schema has no defaults).
    `overrides` (the command line) lets a check tell a value the user set from a default.

    Raises ConfigError with one line. Never imports TensorFlow."""
    raw = OmegaConf.to_container(cfg, resolve=True)
    model, data, schedule = raw.pop("model", None) or {}, raw.pop("data", None) or {}, raw.pop("schedule", None) or {}
    raw.pop("experiment", None)
    penalty = raw.pop("penalty", None) or {"name": "none"}
    out = _merge(RunConf, raw, "")
    _choice("penalty", penalty.get("name", "?"), list(PENALTY_SCHEMAS))
    out.penalty = _merge(PENALTY_SCHEMAS[penalty["name"]], penalty, "penalty")

    _choice("model", model.get("name", "?"), sorted(MODEL_SCHEMAS))
    _choice("data", data.get("name", "?"), sorted(DATA_SCHEMAS))
    out.model = _merge(MODEL_SCHEMAS[model["name"]], model, "model")
    out.data = _merge(DATA_SCHEMAS[data["name"]], data, "data")
    out.schedule = _check_schedule(schedule, user_keys(overrides))
    missing = sorted(OmegaConf.missing_keys(out))  # the schema has no defaults: conf/ gives them all
    _need(
        not missing,
        f"{missing[0] if missing else ''}: no value; conf/ gives every key one "
        "(a stored config from an older version: fill it with config.with_defaults)",
    )
    model_kind, data_kind = registry.MODELS[out.model.name].data_kind, registry.DATA_KINDS[out.data.name]
    _need(
        model_kind == data_kind,
        f"data: model '{out.model.name}' needs {model_kind} data, "
        f"'{out.data.name}' is {data_kind}; choose data={' or data='.join(registry.data_for(model_kind))}",
    )
    _check_ranges(out)
    _check_techniques(out, user_keys(overrides))
    MODEL_CHECKS.get(out.model.name, lambda c: None)(out)
    if registry.MODELS[out.model.name].conditional:
        _check_conditional(out, user_keys(overrides))
    DATA_CHECKS.get(out.data.name, lambda c: None)(out)
    _check_weights_load(out.weights.load)
    return out


def _check_schedule(schedule: dict, set_by_user: set[str]) -> DictConfig:
    """Each parameter of the chosen schedule must have a value for D and for G (schedule.<net>.<p>,
    else the shared schedule.<p>); a shared value the user set while both networks have their
    own is refused, since it could not take effect."""
    name = schedule.get("name", "?")
    _choice("schedule", name, SCHEDULES)
    allowed = SCHEDULE_PARAMS[name]
    out = {
        "name": name,
        **{k: v for k, v in schedule.items() if k not in ("name", "d", "g")},
        "d": dict(schedule.get("d") or {}),
        "g": dict(schedule.get("g") or {}),
    }
    for part, values in (("", out), ("d.", out["d"]), ("g.", out["g"])):
        for key, value in values.items():
            if part == "" and key in ("name", "d", "g"):
                continue
            where = f"schedule.{part}{key}"
            _refuse_foreign(where, key, "schedule", name, allowed, SCHEDULE_PARAMS)
            if value is None:
                continue
            values[key] = value = _number(where, value, allowed[key])
            if key == "alpha":
                _need(0 <= value <= 1, f"{where}: must be in [0, 1], got {value}")
            else:
                _need(value > 0, f"{where}: must be > 0, got {value}")
    for key in allowed:
        own = [net for net in ("d", "g") if out[net].get(key) is not None]
        if out.get(key) is None and len(own) < 2 and (name, key) not in SCHEDULE_NULLABLE:
            net = "d" if "d" not in own else "g"
            raise ConfigError(
                f"schedule.{key}: schedule '{name}' needs a value for {net.upper()}; "
                f"schedule.{key} and schedule.{net}.{key} are both null"
            )
        if out.get(key) is not None and len(own) == 2 and f"schedule.{key}" in set_by_user:
            raise ConfigError(
                f"schedule.{key}: has no effect, schedule.d.{key}={out['d'][key]} and "
                f"schedule.g.{key}={out['g'][key]} are both set; set those instead"
            )
    return OmegaConf.create(out)


def _number(where: str, value: Any, kind: type) -> int | float:
    """`value` as `kind` (int or float); an integral float is an integer (Hydra reads 1e3 as 1000.0)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if kind is int:
        _need(ok and float(value).is_integer(), f"{where}: expected an integer, got '{value}'")
        return int(value)
    _need(ok, f"{where}: expected a number, got '{value}'")
    return float(value)


def _check_ranges(cfg: DictConfig) -> None:
    _positive_int("train_steps", cfg.train_steps)
    for key in ("log_every", "eval_every", "sample_every", "plot_every"):
        _positive_int(key, cfg[key])
    _need(cfg.seed >= 0, f"seed: must be >= 0, got {cfg.seed}")
    _choice("objective_mode", cfg.objective_mode, ("min", "max"))
    _positive_int("batch.size", cfg.batch.size)
    _choice("batch.order", cfg.batch.order, BATCH_ORDERS)
    for key in ("real", "fake"):
        value = cfg.labels[key]
        _need(0.0 <= value <= 1.0, f"labels.{key}: label smoothing target must be in [0, 1], got {value}")
    _positive_int("eval.n_fake", cfg.eval.n_fake)
    _positive_int("eval.bins", cfg.eval.bins)
    _check_eval_classifier(cfg.eval)
    _check_eval_metrics(cfg)
    _choice("trainer.update", cfg.trainer["update"], UPDATES)
    _choice("trainer.strategy", cfg.trainer.strategy, STRATEGIES)
    _choice("trainer.precision", cfg.trainer.precision, PRECISIONS)
    _need(
        not (cfg.trainer.jit_compile and cfg.batch.order == "sequential"),
        "trainer.jit_compile: true needs batch.order=random (XLA compiles fixed shapes; the blocks of "
        "batch.order=sequential differ in size, e.g. 333, 333, 334)",
    )
    _need(
        not (cfg.trainer.precision == "mixed_float16" and "loss_scale_factor" in cfg.optimizer.params),
        "optimizer.params.loss_scale_factor: has no effect with trainer.precision=mixed_float16 (its "
        "LossScaleOptimizer scales the loss dynamically); drop it or use trainer.precision=float32|mixed_bfloat16",
    )
    _positive_float("sweep.penalty", cfg.sweep.penalty)
    for key in ("intra_op_threads", "inter_op_threads"):
        _need(cfg.trainer[key] >= 0, f"trainer.{key}: must be >= 0 (0 = TensorFlow's default), got {cfg.trainer[key]}")
    _choice("optimizer", cfg.optimizer.name, OPTIMIZERS)
    allowed = (*OPTIMIZER_PARAMS[cfg.optimizer.name], *OPTIMIZER_COMMON_PARAMS)
    for key in cfg.optimizer.params:
        _refuse_foreign(f"optimizer.params.{key}", key, "optimizer", cfg.optimizer.name, allowed, OPTIMIZER_PARAMS)
    for net in ("d", "g"):
        _positive_float(f"optimizer.{net}.learning_rate", cfg.optimizer[net].learning_rate)
    _choice("tracking", cfg.tracking.name, TRACKERS)
    _positive_float("tracking.flush_every_s", cfg.tracking.flush_every_s)
    _check_uri(cfg.tracking.uri)
    _check_register(cfg.tracking)
    _need(
        cfg.checkpoint.every >= 0, f"checkpoint.every: must be >= 0 (0 = only at the end), got {cfg.checkpoint.every}"
    )
    _positive_int("checkpoint.keep", cfg.checkpoint.keep)
    _need(cfg.resume != "", "resume: empty; give a run id, a checkpoint folder or 'last'")
    _choice("on_divergence", cfg.on_divergence, DIVERGENCE_POLICIES)
    _need(cfg.early_stop.patience >= 0, f"early_stop.patience: must be >= 0 (0 = off), got {cfg.early_stop.patience}")


def _check_techniques(cfg: DictConfig, set_by_user: set[str]) -> None:
    """loss, penalty, trainer.d_steps, ema: ranges, and the combinations that cannot take effect."""
    _choice("loss", cfg.loss.name, LOSSES)
    _positive_int("trainer.d_steps", cfg.trainer.d_steps)
    _need(
        cfg.trainer.d_steps == 1 or cfg.trainer["update"] == "alternating",
        f"trainer.d_steps: {cfg.trainer.d_steps} needs trainer.update=alternating (the simultaneous update "
        "makes one D and one G update from one G forward)",
    )
    if cfg.loss.name not in LABELLED_LOSSES:
        for key in ("labels.real", "labels.fake"):
            _need(
                key not in set_by_user,
                f"{key}: has no effect with loss={cfg.loss.name} (no targets); "
                f"labels apply to loss={', '.join(LABELLED_LOSSES)}",
            )
    for key in ("weight", "gamma"):
        if key in cfg.penalty:
            _positive_float(f"penalty.{key}", cfg.penalty[key])
    decay = cfg.ema.decay
    if decay is None:
        _need(
            "ema.start_step" not in set_by_user,
            "ema.start_step: has no effect while ema.decay is null (EMA off); set ema.decay too, e.g. ema.decay=0.999",
        )
    else:
        _need(math.isfinite(decay) and 0 <= decay < 1, f"ema.decay: must be in [0, 1) or null (off), got {decay}")
    _need(cfg.ema.start_step >= 0, f"ema.start_step: must be >= 0, got {cfg.ema.start_step}")


def _check_eval_metrics(cfg: DictConfig) -> None:
    """eval.metrics / eval.prdc_k: image models only, known names, and the objective among them."""
    from gan_runner.metrics.image import IMAGE_METRICS

    ev = cfg.eval
    if registry.MODELS[cfg.model.name].data_kind != "image":
        for key in ("metrics", "prdc_k"):
            _need(
                ev[key] is None,
                f"eval.{key}: only image models (model=dcgan) choose their metrics; "
                f"model '{cfg.model.name}' logs a fixed set (set eval.{key}=null)",
            )
        return
    if ev.metrics is not None:
        unknown = [m for m in ev.metrics if m not in IMAGE_METRICS]
        _need(
            not unknown,
            f"eval.metrics: unknown metric '{unknown[0] if unknown else ''}'; allowed: {', '.join(IMAGE_METRICS)}",
        )
        name = str(cfg.objective).removeprefix("eval/")
        chosen = {*ev.metrics, *(["kid_std"] if "kid" in ev.metrics else [])}
        _need(
            not (cfg.objective.startswith("eval/") and name in {*IMAGE_METRICS, "kid_std"} and name not in chosen),
            f"objective: {cfg.objective} is not computed; add '{name.removesuffix('_std')}' to eval.metrics={list(ev.metrics)}",
        )
    if ev.prdc_k is not None:
        _need(
            ev.prdc_k >= 1 and ev.prdc_k < cfg.eval.n_fake,
            f"eval.prdc_k: must be in 1..eval.n_fake-1 ({cfg.eval.n_fake - 1}), got {ev.prdc_k}",
        )


def _check_eval_classifier(ev: DictConfig) -> None:
    _need(
        math.isfinite(ev.coverage_threshold) and 0 < ev.coverage_threshold <= 1,
        f"eval.coverage_threshold: must be in (0, 1], got {ev.coverage_threshold}",
    )
    c = ev.classifier
    filters = list(c.filters)
    # each conv halves the 28x28 image (28 -> 14 -> 7 -> 3 -> 1): at most 4
    _need(
        1 <= len(filters) <= 4 and all(f > 0 for f in filters),
        f"eval.classifier.filters: 1 to 4 positive integers, got {filters}",
    )
    for key in ("dense", "train_steps", "batch_size"):
        _positive_int(f"eval.classifier.{key}", c[key])
    _need(
        math.isfinite(c.dropout) and 0 <= c.dropout < 1, f"eval.classifier.dropout: must be in [0, 1), got {c.dropout}"
    )
    _positive_float("eval.classifier.learning_rate", c.learning_rate)
    _need(c.seed >= 0, f"eval.classifier.seed: must be >= 0, got {c.seed}")


def _check_register(tracking: DictConfig) -> None:
    """tracking.register=<name>: registers the generator the run logs, so it needs an MLflow
    store and tracking.log_model=true; the name as MLflow's registry takes it."""
    name = tracking.register
    if name is None:
        return
    _need(
        bool(re.fullmatch(r"[A-Za-z0-9][\w.\- ]*", str(name))),
        f"tracking.register: '{name}' is not a model name (letters, digits, _ - . and spaces, "
        f"starting with a letter or digit)",
    )
    _need(
        tracking.name == "mlflow",
        f"tracking.register={name}: needs tracking=mlflow (tracking={tracking.name} keeps no registry)",
    )
    _need(
        bool(tracking.log_model),
        f"tracking.register={name}: registers the generator the run logs as its model; add tracking.log_model=true",
    )


def _check_uri(uri: Optional[str]) -> None:
    """Only the scheme: a server that does not answer is found by tracking.preflight."""
    if uri and "://" in uri:
        scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
        _need(
            scheme in URI_SCHEMES,
            f"tracking.uri: unknown scheme '{scheme}://' in {uri}; known: " + ", ".join(f"{s}://" for s in URI_SCHEMES),
        )


def _check_gaussian1d(cfg: DictConfig) -> None:
    _positive_int("model.noise_dim", cfg.model.noise_dim)
    _positive_int("model.hidden", cfg.model.hidden)


def _check_normal1d(cfg: DictConfig) -> None:
    _need(math.isfinite(cfg.data.std) and cfg.data.std > 0, f"data.std: must be > 0, got {cfg.data.std}")
    _positive_int("data.n", cfg.data.n)
    _need(cfg.batch.size <= cfg.data.n, f"batch.size: {cfg.batch.size} is larger than the data (data.n={cfg.data.n})")


def _check_dcgan(cfg: DictConfig) -> None:
    m = cfg.model
    for key in ("latent_dim", "kernel_size", "g_start", "grid_rows", "grid_cols"):
        if key in m:  # cdcgan has no grid_rows (one row per class)
            _positive_int(f"model.{key}", m[key])
    for net in ("g", "d"):
        filters, strides = list(m[f"{net}_filters"]), list(m[f"{net}_strides"])
        _need(
            len(filters) > 0 and len(filters) == len(strides),
            f"model.{net}_filters / model.{net}_strides: need the same non-zero length, got {len(filters)} and {len(strides)}",
        )
        for key, values in ((f"{net}_filters", filters), (f"{net}_strides", strides)):
            _need(all(v > 0 for v in values), f"model.{key}: must be positive integers, got {values}")
    _need(
        m.g_filters[-1] == IMAGE_CHANNELS,
        f"model.g_filters: the last entry is the image's channels and must be {IMAGE_CHANNELS}, got {m.g_filters[-1]}",
    )
    size = m.g_start * math.prod(m.g_strides)
    _need(
        size == IMAGE_HW[0],
        f"model.g_strides: model.g_start={m.g_start} x {' x '.join(map(str, m.g_strides))} "
        f"gives {size}x{size} images; the data's are {IMAGE_HW[0]}x{IMAGE_HW[1]}",
    )
    _need(
        math.isfinite(m.leaky_slope) and 0 <= m.leaky_slope < 1,
        f"model.leaky_slope: must be in [0, 1), got {m.leaky_slope}",
    )


def _check_conditional(cfg: DictConfig, set_by_user: set[str]) -> None:
    """model.cond, model.class_loss_weight (acgan's only: set for another cond it is refused),
    and eval.n_fake: eval/fd_intra needs 2 fakes per class."""
    m = cfg.model
    _need(m.cond in CONDS, f"model.cond: unknown choice '{m.cond}'; allowed: {', '.join(CONDS)}")
    if m.cond == "acgan":
        _positive_float("model.class_loss_weight", m.class_loss_weight)
    else:
        _need(
            "model.class_loss_weight" not in set_by_user,
            f"model.class_loss_weight: has no effect with model.cond={m.cond} (no class head); "
            "it weights the class loss of model.cond=acgan",
        )
    _need(
        cfg.eval.n_fake >= 2 * N_CLASSES,
        f"eval.n_fake: {cfg.eval.n_fake} is too few for eval/fd_intra (2 fakes per class of {N_CLASSES}); "
        f"use eval.n_fake>={2 * N_CLASSES}",
    )


def _check_image_data(cfg: DictConfig) -> None:
    if cfg.data.n is not None:
        _positive_int("data.n", cfg.data.n)
    if cfg.data.path:
        _need(Path(cfg.data.path).expanduser().exists(), f"data.path: {cfg.data.path} does not exist")


def _check_weights_load(source: str | None) -> None:
    """A folder of .weights.h5 files, or an MLflow run id (32 hex characters) in the tracking store."""
    if source and not Path(source).expanduser().is_dir():
        _need(
            RUN_ID.fullmatch(source) is not None,
            f"weights.load: '{source}' is neither a folder of .weights.h5 files nor an MLflow run id (32 hex characters)",
        )


# Extra range checks per model / data choice (name -> check).
MODEL_CHECKS = {"gaussian1d": _check_gaussian1d, "dcgan": _check_dcgan, "cdcgan": _check_dcgan}
DATA_CHECKS = {"normal1d": _check_normal1d, "mnist": _check_image_data, "fashion_mnist": _check_image_data}

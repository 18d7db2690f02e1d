"""Config schemas and validation. Imports neither TensorFlow nor MLflow, so a bad value costs
well under a second: `validate(cfg)` raises ConfigError with one line naming the key and
what is allowed.

Types come from dataclass schemas merged with OmegaConf (unknown keys and wrong types are
caught there); ranges and names are checked by the rules below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_runner import registry

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
SCHEDULES = ("constant", "inverse_time", "exponential", "cosine")
TRACKERS = ("mlflow", "none")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
BATCH_ORDERS = ("random", "sequential")
UPDATES = ("alternating", "simultaneous")


class ConfigError(ValueError):
    """A config value is wrong; the message is one line meant for the user."""


# ---- schemas (types only; ranges are checked in _check_ranges) ----------------------------


@dataclass
class NetOptim:
    learning_rate: float = 1e-3


@dataclass
class OptimizerConf:
    name: str = "rmsprop"
    d: NetOptim = field(default_factory=NetOptim)
    g: NetOptim = field(default_factory=NetOptim)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchConf:
    size: int = 64
    order: str = "random"
    reuse_noise: bool = False


@dataclass
class LabelsConf:
    real: float = 1.0
    fake: float = 0.0


@dataclass
class EvalConf:
    n_fake: int = 20000
    bins: int = 100


@dataclass
class TrainerConf:
    update: str = "alternating"
    intra_op_threads: int = 0
    inter_op_threads: int = 0


@dataclass
class TrackingConf:
    name: str = "mlflow"
    uri: Optional[str] = None
    experiment: str = "gan_runner"
    run_name: Optional[str] = None
    flush_every_s: float = 10.0


@dataclass
class WeightsConf:
    load: Optional[str] = None


@dataclass
class Gaussian1dModel:
    name: str = "gaussian1d"
    noise_dim: int = 16
    hidden: int = 32


@dataclass
class Normal1dData:
    name: str = "normal1d"
    mean: float = 0.0
    std: float = 1.0
    n: int = 1000


@dataclass
class RunConf:
    seed: int = 0
    train_steps: int = 3000
    log_every: int = 30
    eval_every: int = 30
    plot_every: int = 1000
    objective: str = "eval/kl_target"
    objective_mode: str = "min"
    batch: BatchConf = field(default_factory=BatchConf)
    labels: LabelsConf = field(default_factory=LabelsConf)
    eval: EvalConf = field(default_factory=EvalConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    weights: WeightsConf = field(default_factory=WeightsConf)
    optimizer: OptimizerConf = field(default_factory=OptimizerConf)
    schedule: dict[str, Any] = field(default_factory=dict)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    model: Any = None
    data: Any = None


# Per-name schemas for the groups whose keys depend on the choice.
MODEL_SCHEMAS: dict[str, type] = {"gaussian1d": Gaussian1dModel}
DATA_SCHEMAS: dict[str, type] = {"normal1d": Normal1dData}
SCHEDULE_PARAMS: dict[str, dict[str, type]] = {
    "constant": {},
    "inverse_time": {"decay_rate": float, "decay_steps": int},
    "exponential": {"decay_rate": float, "decay_steps": int},
    "cosine": {"decay_steps": int, "alpha": float},
}


# ---- command-line group choices (checked before Hydra composes) ---------------------------


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


def _merge(schema: type, node: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        full = f"{where}.{key}" if where and key else (where or key)
        reason = str(getattr(err, "msg", err)).splitlines()[0]
        if "could not be converted" in reason or "Value '" in reason:
            value = reason.split("'")[1] if "'" in reason else "?"
            kind = _type_name(reason)
            raise ConfigError(f"{full}: expected {kind}, got '{value}'") from None
        if "Key '" in reason and "not in" in reason:
            bad = reason.split("'")[1]
            allowed = ", ".join(f.name for f in schema.__dataclass_fields__.values())
            raise ConfigError(f"{where + '.' if where else ''}{bad}: unknown key; allowed: {allowed}") from None
        raise ConfigError(f"{full}: {reason}") from None


def _type_name(reason: str) -> str:
    for word, kind in (("Integer", "an integer"), ("Float", "a number"), ("Boolean", "true/false")):
        if word in reason:
            return kind
    return "another type"


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _choice(key: str, value: str, allowed: tuple[str, ...] | list[str]) -> None:
    _need(value in allowed, f"{key}: unknown choice '{value}'; known: {', '.join(allowed)}")


def _positive_int(key: str, value: int) -> None:
    _need(value > 0, f"{key}: must be a positive integer, got {value}")


def _positive_float(key: str, value: float) -> None:
    _need(math.isfinite(value) and value > 0, f"{key}: must be > 0, got {value}")


def validate(cfg: DictConfig) -> DictConfig:
    """Check types, names and ranges; return the config with schema defaults filled in.

    Raises ConfigError with one line. Never imports TensorFlow."""
    raw = OmegaConf.to_container(cfg, resolve=True)
    model, data, schedule = raw.pop("model", None) or {}, raw.pop("data", None) or {}, raw.pop("schedule", None) or {}
    raw.pop("experiment", None)
    out = _merge(RunConf, raw, "")

    _choice("model", model.get("name", "?"), sorted(MODEL_SCHEMAS))
    _choice("data", data.get("name", "?"), sorted(DATA_SCHEMAS))
    out.model = _merge(MODEL_SCHEMAS[model["name"]], model, "model")
    out.data = _merge(DATA_SCHEMAS[data["name"]], data, "data")
    out.schedule = _check_schedule(schedule)
    model_kind, data_kind = registry.MODELS[out.model.name].data_kind, registry.DATA_KINDS[out.data.name]
    _need(model_kind == data_kind, f"data: model '{out.model.name}' needs {model_kind} data, "
          f"'{out.data.name}' is {data_kind}; choose data={' or data='.join(registry.data_for(model_kind))}")
    _check_ranges(out)
    MODEL_CHECKS.get(out.model.name, lambda c: None)(out)
    DATA_CHECKS.get(out.data.name, lambda c: None)(out)
    return out


def _check_schedule(schedule: dict) -> DictConfig:
    name = schedule.get("name", "?")
    _choice("schedule", name, SCHEDULES)
    allowed = SCHEDULE_PARAMS[name]
    shared = {k: v for k, v in schedule.items() if k not in ("name", "d", "g")}
    for part, values in (("", shared), ("d.", schedule.get("d") or {}), ("g.", schedule.get("g") or {})):
        for key, value in values.items():
            where = f"schedule.{part}{key}"
            _need(key in allowed, f"{where}: not a parameter of schedule '{name}'; allowed: {', '.join(allowed) or 'none'}")
            if value is None:
                continue
            try:
                value = allowed[key](value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: expected a number, got '{value}'") from None
            if key == "alpha":
                _need(0 <= value <= 1, f"{where}: must be in [0, 1], got {value}")
            else:
                _need(value > 0, f"{where}: must be > 0, got {value}")
    return OmegaConf.create(schedule)


def _check_ranges(cfg: DictConfig) -> None:
    _positive_int("train_steps", cfg.train_steps)
    for key in ("log_every", "eval_every", "plot_every"):
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
    _choice("trainer.update", cfg.trainer["update"], UPDATES)
    for key in ("intra_op_threads", "inter_op_threads"):
        _need(cfg.trainer[key] >= 0, f"trainer.{key}: must be >= 0 (0 = TensorFlow's default), got {cfg.trainer[key]}")
    _choice("optimizer", cfg.optimizer.name, OPTIMIZERS)
    for net in ("d", "g"):
        _positive_float(f"optimizer.{net}.learning_rate", cfg.optimizer[net].learning_rate)
    _choice("tracking", cfg.tracking.name, TRACKERS)
    _positive_float("tracking.flush_every_s", cfg.tracking.flush_every_s)


def _check_gaussian1d(cfg: DictConfig) -> None:
    _positive_int("model.noise_dim", cfg.model.noise_dim)
    _positive_int("model.hidden", cfg.model.hidden)


def _check_normal1d(cfg: DictConfig) -> None:
    _need(math.isfinite(cfg.data.std) and cfg.data.std > 0, f"data.std: must be > 0, got {cfg.data.std}")
    _positive_int("data.n", cfg.data.n)
    _need(cfg.batch.size <= cfg.data.n, f"batch.size: {cfg.batch.size} is larger than the data (data.n={cfg.data.n})")


# Extra range checks per model / data choice (name -> check).
MODEL_CHECKS = {"gaussian1d": _check_gaussian1d}
DATA_CHECKS = {"normal1d": _check_normal1d}

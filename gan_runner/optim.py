"""Optimizers and learning-rate schedules from config, through Keras' own registry and
schedule classes. Every call returns a fresh optimizer: D and G never share one."""

from __future__ import annotations

import keras
from omegaconf import DictConfig

KERAS_NAMES = {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD"}


def build_schedule(sched_cfg: DictConfig, net: str, learning_rate: float, total_steps: int, per_step: int = 1):
    """A float (constant) or a keras LearningRateSchedule. `schedule.<net>` overrides the
    shared parameters for that network (the DCGAN seed decays D and G at different rates).
    Schedules are in training steps (G updates): a network updated `per_step` times a step
    (D with trainer.d_steps) has its decay_steps and total scaled so, since Keras schedules
    count the optimizer's own iterations."""
    params = {k: v for k, v in sched_cfg.items() if k not in ("name", "d", "g")}
    params.update({k: v for k, v in (sched_cfg.get(net) or {}).items() if v is not None})
    if params.get("decay_steps"):
        params["decay_steps"] *= per_step
    total_steps *= per_step
    schedules = keras.optimizers.schedules
    match sched_cfg.name:
        case "constant":
            return learning_rate
        case "inverse_time":  # Keras 2 `decay`: lr / (1 + decay_rate * t / decay_steps)
            return schedules.InverseTimeDecay(learning_rate, params["decay_steps"], params["decay_rate"])
        case "exponential":
            return schedules.ExponentialDecay(learning_rate, params["decay_steps"], params["decay_rate"])
        case "cosine":
            return schedules.CosineDecay(
                learning_rate, params.get("decay_steps") or total_steps, params.get("alpha", 0.0)
            )
    raise ValueError(f"schedule: unknown choice '{sched_cfg.name}'")


def build_optimizer(
    opt_cfg: DictConfig, sched_cfg: DictConfig, net: str, total_steps: int, per_step: int = 1
) -> keras.optimizers.Optimizer:
    """Optimizer for network `net` ('d' or 'g'): optimizer.<net>.learning_rate under the schedule,
    updated `per_step` times per training step."""
    lr = build_schedule(sched_cfg, net, float(opt_cfg[net].learning_rate), total_steps, per_step)
    optimizer = keras.optimizers.get({"class_name": KERAS_NAMES[opt_cfg.name], "config": dict(opt_cfg.params)})
    optimizer.learning_rate = lr  # set after: get() deserialises config dicts, not schedule objects
    return optimizer

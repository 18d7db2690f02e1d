"""One training run: validated config -> data + models from the registry -> compiled step ->
periodic evaluation and pictures -> tracker. `run(cfg)` returns the objective for sweepers.

TensorFlow is imported inside `run`, after the config has been validated.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gan_runner import config as config_mod
from gan_runner import data, registry, tracking
from gan_runner.progress import Progress

log = logging.getLogger(__name__)


def run(cfg: DictConfig, overrides: list[str] | None = None) -> float:
    """Train one GAN as configured; return the final value of `cfg.objective`."""
    cfg = config_mod.validate(cfg)
    overrides = list(overrides or [])
    real = data.load(cfg.data, cfg.seed)  # before any MLflow run: a data error leaves no run behind
    with tracking.open_run(cfg.tracking, run_name(cfg, overrides), run_tags(cfg, overrides)) as tracker:
        tracker.log_params(tracking.flatten(OmegaConf.to_container(cfg, resolve=True)))
        tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        return Trainer(cfg, real, tracker).fit()


def run_name(cfg: DictConfig, overrides: list[str]) -> str:
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    rest = [o for o in overrides if not o.startswith(("model=", "tracking", "hydra"))]
    return f"{cfg.model.name} " + (" ".join(rest) if rest else "defaults")


def run_tags(cfg: DictConfig, overrides: list[str]) -> dict[str, str]:
    return {"model": cfg.model.name, "data": cfg.data.name, "seed": str(cfg.seed),
            "optimizer": cfg.optimizer.name, "schedule": cfg.schedule.name,
            "overrides": " ".join(overrides) or "(none)", "objective": cfg.objective}


def configure_threads(trainer_cfg: DictConfig) -> None:
    """Thread pools must be set before TensorFlow starts its runtime; 0 keeps TF's default."""
    import tensorflow as tf

    try:
        if trainer_cfg.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(trainer_cfg.intra_op_threads)
        if trainer_cfg.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(trainer_cfg.inter_op_threads)
    except RuntimeError:
        log.warning("TensorFlow already started in this process; thread settings unchanged")


class Trainer:
    """The single training loop for every model."""

    def __init__(self, cfg: DictConfig, real: np.ndarray, tracker: tracking.NullTracker):
        configure_threads(cfg.trainer)
        import keras

        from gan_runner.models.gan import GanStep, StepConfig
        from gan_runner.optim import build_optimizer

        # A clean slate per job: Hydra's basic launcher runs every job in one process.
        keras.backend.clear_session()
        keras.utils.set_random_seed(cfg.seed)
        self.cfg, self.real, self.tracker = cfg, real, tracker
        self.model = registry.get_model(cfg.model.name)
        generator = self.model.build_generator(cfg.model)
        discriminator = self.model.build_discriminator(cfg.model, real.shape[1:])
        if cfg.weights.load:
            self._load_weights(generator, discriminator, cfg.weights.load)
        self.gan = GanStep(
            generator, discriminator,
            build_optimizer(cfg.optimizer, cfg.schedule, "d", cfg.train_steps),
            build_optimizer(cfg.optimizer, cfg.schedule, "g", cfg.train_steps),
            real,
            StepConfig(latent_dim=self.model.latent_dim(cfg.model), batch_size=cfg.batch.size,
                       order=cfg.batch.order, reuse_noise=cfg.batch.reuse_noise,
                       real_label=cfg.labels.real, fake_label=cfg.labels.fake, update=cfg.trainer["update"]),
            seed=cfg.seed,
        )
        self.history: dict[str, float] = {}
        self._eval_noise: dict[int, np.ndarray] = {}

    def generate(self, n: int) -> np.ndarray:
        """n fakes from evaluation noise fixed for the whole run (the same z at every eval, so
        a change between evals is the generator's), drawn apart from the training RNG so the
        eval cadence never changes training."""
        if n not in self._eval_noise:
            rng = np.random.default_rng([self.cfg.seed, n])
            self._eval_noise[n] = rng.uniform(-1, 1, (n, self.gan.config.latent_dim)).astype(np.float32)
        return self.gan.generate(self._eval_noise[n]).numpy()

    def fit(self) -> float:
        cfg = self.cfg
        if hasattr(self.model, "reference_metrics"):
            ref = self.model.reference_metrics(self.real, cfg, np.random.default_rng([cfg.seed, 2**31]))
            self._log(ref, 0)
        cadences = [cfg.log_every, cfg.eval_every, cfg.plot_every]
        step = start = int(self.gan.step.numpy())
        started = time.perf_counter()
        with Progress(cfg.train_steps, start=step) as progress:
            while step < cfg.train_steps:
                stop = min([cfg.train_steps] + [(step // c + 1) * c for c in cadences])
                out = self.gan.run_steps(stop - step)
                step = stop
                final = step == cfg.train_steps
                if step % cfg.log_every == 0 or final:
                    values = {f"train/{k}": float(v) for k, v in out.items()}
                    values.update({f"train/{k}": v for k, v in self.gan.learning_rates().items()})
                    self._log(values, step)
                if step % cfg.eval_every == 0 or final:
                    self._log(self.model.evaluate(self.generate, self.real, cfg, step), step)
                if step % cfg.plot_every == 0 or final:
                    self._pictures(step)
                progress.update(step, self.history)
        loop_s = time.perf_counter() - started  # includes tracing, evaluation and pictures
        self._log({"perf/loop_s": loop_s, "perf/steps_per_s": (step - start) / loop_s}, step)
        self.tracker.flush()
        self._save_weights()
        return self.objective()

    def _log(self, values: dict[str, float], step: int) -> None:
        self.history.update(values)
        self.tracker.log_metrics(values, step)

    def _pictures(self, step: int) -> None:
        from gan_runner import plots

        for name, picture in self.model.pictures(self.generate, self.real, self.cfg, step).items():
            if isinstance(picture, np.ndarray):  # uint8 image: per-step image in the UI
                self.tracker.log_image(picture, key=name, step=step)
            else:
                self.tracker.log_figure(picture, f"plots/{name}_step{step:07d}.png")
                plots.close(picture)

    def _save_weights(self) -> None:
        if self.tracker.run_id is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            for net in (self.gan.generator, self.gan.discriminator):
                path = Path(tmp) / f"{net.name}.weights.h5"
                net.save_weights(path)
                self.tracker.log_artifact(path, "weights")

    def _load_weights(self, generator, discriminator, source: str) -> None:
        folder = Path(source)
        for net in (generator, discriminator):
            path = folder / f"{net.name}.weights.h5"
            if not path.is_file():
                raise config_mod.ConfigError(f"weights.load: no {path.name} in {folder}")
            net.load_weights(path)
        self.tracker.set_tags({"weights.load": source})

    def objective(self) -> float:
        name = self.cfg.objective
        if name not in self.history:
            raise config_mod.ConfigError(
                f"objective: '{name}' was never logged; logged: {', '.join(sorted(self.history))}")
        value = self.history[name]
        return value if math.isfinite(value) else float("nan")

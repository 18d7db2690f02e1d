"""One training run: validated config -> data + models from the registry -> compiled step ->
periodic evaluation and pictures -> tracker. `run(cfg)` returns the objective for sweepers.

TensorFlow is imported inside `run`, after the config has been validated.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gan_runner import checkpoint, data, faults, host_work, labels, registry, startup, stopping, store, sweep, tracking
from gan_runner import config as config_mod
from gan_runner.progress import Progress
from gan_runner.stopping import Diverged, Interrupted  # noqa: F401  (what callers catch)

log = logging.getLogger(__name__)
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"  # TensorFlow's own switch; when set, it wins over trainer.onednn
# Output values per generator call when generating for evaluation: all 20,000 1-D samples at
# once, DCGAN fakes 334 at a time (2000 at once hold ~1 GB of activations, the run's peak RSS).
GENERATE_VALUES = 2**18
MAX_CHUNK_S = 1.0  # compiled steps run in chunks of about this long: a signal is seen between chunks


def run(cfg: DictConfig, overrides: list[str] | None = None) -> float:
    """Train one GAN as configured; return the final value of `cfg.objective`."""
    cfg = config_mod.validate(cfg)
    overrides = list(overrides or [])
    # Everything that can be found wrong without training fails here, before TensorFlow loads
    # and before an MLflow run exists: the store, the checkpoint folder, resume=, the data.
    tracking.preflight(cfg.tracking)
    where = store.resolve(cfg)
    root = where.checkpoints
    checkpoint.check_writable(root)
    resumed, changes = None, []
    if cfg.sweep.resume and not cfg.resume:  # a job of a resumed sweep: its earlier run, if any
        cfg.resume = sweep.resume_job(cfg, root)
    if cfg.resume:
        try:
            resumed, cfg, changes = _resume(cfg, where, overrides)
        except AlreadyFinished as done:  # said so in one line; the store is left as it was
            return done.objective
    if cfg.weights.load and resumed is None and not Path(cfg.weights.load).expanduser().is_dir():
        try:  # a run id (config.py lets only folders and run ids through)
            tracking.check_weights_run(cfg.tracking, cfg.weights.load)
        except LookupError as err:
            raise config_mod.ConfigError(f"weights.load: {err}") from None
    stopping.phase("data")
    real = data.load(cfg.data, cfg.seed)
    if cfg.batch.size > len(real):  # image data: its size is known only once read
        raise config_mod.ConfigError(
            f"batch.size: {cfg.batch.size} is larger than the data ({len(real)} {cfg.data.name} samples; see data.n)"
        )
    real_labels = real_labels_for(cfg, real)  # a conditional model: unlabelled data fails here, in one line
    stopping.phase("tensorflow")
    configure_threads(cfg.trainer)  # before the model's module loads TensorFlow
    prepare = getattr(registry.get_model(cfg.model.name), "prepare", None)
    if prepare is not None:  # the model's own set-up (dcgan: its digit classifier), before the run exists
        prepare(cfg)
    stopping.phase("classifier")  # a signal swallowed inside TensorFlow stops here at the latest
    run_id = resumed.meta["run_id"] if resumed else None
    # tracking=none: checkpoints, weights and pictures in one local folder
    local = resumed.path.parent if resumed else root / time.strftime("local-%Y%m%d-%H%M%S")
    folder = None
    try:
        with (
            stopping.SignalStop() as stop,
            tracking.open_run(
                cfg.tracking,
                sweep.run_name(cfg, overrides),
                sweep.run_tags(cfg, overrides),
                run_id,
                resumed.step if resumed else -1,
                local,
                tracking.experiment_about(cfg),
            ) as tracker,
        ):
            folder = root / tracker.run_id if tracker.run_id and not resumed else local
            _start_logging(cfg, tracker, folder, resumed, changes)
            stopping.phase("run")
            ckpt = checkpoint.Checkpointer(
                folder,
                cfg.checkpoint.keep,
                tracker.run_id,
                store.resolve_uri(cfg.tracking.uri) if tracker.run_id else None,  # the run's own
                OmegaConf.to_container(cfg, resolve=True),
                resumed.meta.get("overrides", []) if resumed else overrides,
            )
            faults.point("startup")
            startup.resume_collector()  # TensorFlow and MLflow imported: frozen, then collected as usual
            value = Trainer(cfg, real, tracker, ckpt, stop, resumed, real_labels).fit()
            faults.point("finish")
        print(summary(cfg, overrides, tracker.run_id, folder, value), flush=True)
        if cfg.tracking.register and tracker.run_id and not sweep.in_multirun():  # a sweep: its best job
            tracking.register_run(tracking.resolve_uri(cfg.tracking.uri), tracker.run_id, cfg)
        return value
    except Interrupted as err:  # the run is KILLED by now and the checkpoint written
        token = tracker.run_id if tracker.run_id and folder == root / tracker.run_id else str(folder)
        args = [*(shlex.quote(o) for o in overrides if not o.startswith("resume=")), f"resume={shlex.quote(token)}"]
        print(
            f"gan_runner: {err}; checkpoint in {folder}, run marked KILLED\n"
            f"  resume with: python -m gan_runner {' '.join(args)}",
            file=sys.stderr,
        )
        raise
    except Diverged as err:  # the run is FAILED with tag divergence=step N
        if cfg.on_divergence == "penalty":
            log.warning("%s; returning the penalty %s", err, sweep.penalty(cfg))
            sweep.mark_failed()
            return sweep.penalty(cfg)
        raise


class AlreadyFinished(Exception):
    """resume= of a FINISHED run that asks for no more steps: nothing to do."""

    def __init__(self, objective: float):
        self.objective = objective


def _resume(cfg: DictConfig, where: store.Store, overrides: list[str]):
    """resume=: (checkpoint, the run's stored config changed by this command line's keys, the
    changes); AlreadyFinished (with the stored objective) when the run is FINISHED and no more
    steps are asked for.
    A run id with no checkpoint (killed before its first one) is ended KILLED, in one line."""
    uri, root = where.uri, where.checkpoints
    token = str(cfg.resume)
    if uri and store.RUN_ID.fullmatch(token) and not Path(token).exists() and not checkpoint.checkpoints(root / token):
        status = tracking.end_orphan(cfg.tracking, token)
        if status == "FINISHED":  # checkpoints deleted since: its numbers are in the store
            print(f"gan_runner: nothing to resume: run {token} is FINISHED", file=sys.stderr)
            raise AlreadyFinished(tracking.run_state(cfg.tracking, token)[1].get(cfg.objective, math.nan))
        if status is not None:
            raise config_mod.ConfigError(
                f"resume={token}: nothing to resume: the run has no checkpoint in {root / token} (it stopped before "
                f"its first one; the run is {status}); start it again without resume="
            )
    resumed, new_cfg, changes = checkpoint.load_for_resume(cfg, root, overrides, uri)
    run_id, planned = resumed.meta["run_id"], int(resumed.meta["config"]["train_steps"])
    saved = resumed.meta.get("trainer") or {}
    status, metrics = tracking.run_state(new_cfg.tracking, run_id) if uri and run_id else (None, {})
    finished = status == "FINISHED" if status else bool(saved.get("finished"))
    if finished and new_cfg.train_steps <= planned:
        print(
            f"gan_runner: nothing to resume: run {run_id or resumed.path.parent} finished at step {resumed.step} "
            f"(train_steps={planned}); give a larger train_steps= to extend it",
            file=sys.stderr,
        )
        value = saved.get("history", {}).get(new_cfg.objective, metrics.get(new_cfg.objective, math.nan))
        raise AlreadyFinished(value if math.isfinite(value) else float("nan"))
    return resumed, new_cfg, changes


def summary(cfg: DictConfig, overrides: list[str], run_id: str | None, folder: Path, value: float) -> str:
    """What a finished run prints last: where everything is and how to look at it."""
    head = f"gan_runner: finished '{sweep.run_name(cfg, overrides)}'"
    objective = f"{cfg.objective}={value:.6g}"
    if run_id is None:
        return f"{head} (tracking=none): {objective}\n  checkpoints, weights and pictures: {folder}"
    uri = store.resolve_uri(cfg.tracking.uri)
    if uri.startswith(("http://", "https://")):
        opener = f"open {uri} in a browser"
    elif (
        uri == f"sqlite:///{Path.cwd() / 'mlflow.db'}" and (Path.cwd() / "gan_runner" / "ui.py").is_file()
    ):  # make ui serves it
        opener = "make ui"
    else:
        opener = f"python -m gan_runner.ui --tracking-uri {shlex.quote(uri)}"
    runs, page = tracking.run_links(uri, run_id, cfg.objective)
    if not uri.startswith(("http://", "https://")):
        opener += ", then open"
    return (
        f"{head} (run id {run_id}): {objective}\n"
        f"  store:       {uri}\n"
        f"  checkpoints: {folder}\n"
        f"  open it:     {opener}\n"
        f"  runs by {cfg.objective}: {runs}\n"
        f"  this run:    {page}"
    )


def _start_logging(cfg: DictConfig, tracker: tracking.NullTracker, folder: Path, resumed, changes=()) -> None:
    """Params and config for a new run; for a resumed one (params are immutable in MLflow and
    train_steps may have changed) the new config as its own artifact and tags: where it resumed
    from and what this command line changed."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    if resumed is None:
        tracker.log_params(config_mod.flatten(OmegaConf.to_container(cfg, resolve=True)))
        tracker.log_text(text, "config.yaml")
    else:
        tracker.log_text(text, f"config_resume_step{resumed.step:07d}.yaml")
        tracker.set_tags(
            {
                "resumed": f"from step {resumed.step} ({resumed.path.name})",
                "resume.changes": "; ".join(changes) or "(none)",
            }
        )
        if changes:
            log.info("resume changes the stored config: %s", "; ".join(changes))
    tracker.set_tags({"checkpoint.dir": str(folder)})


def set_onednn(wanted: bool | None) -> None:
    """trainer.onednn: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads, and by
    default leaves oneDNN off on CPUs without AVX-512 (e.g. AMD EPYC); on, the DCGAN's step costs
    0.6x (EPYC) to 0.5x (Xeon) the CPU time. Same numbers up to float round-off, so runs compared
    bit for bit must load TensorFlow alike. None, or the variable already set, leaves it alone."""
    if wanted is None:
        return
    if "tensorflow" in sys.modules:
        if onednn_in_use() != ("on" if wanted else "off"):
            log.warning(
                "trainer.onednn=%s: TensorFlow was already loaded in this process with oneDNN %s; unchanged",
                wanted,
                onednn_in_use(),
            )
    elif not os.environ.get(ONEDNN_ENV):
        os.environ[ONEDNN_ENV] = "1" if wanted else "0"


def onednn_in_use() -> str:
    """'on' / 'off' as TensorFlow loaded ('unknown' if it cannot say): logged as tag tf.onednn."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # private: the only way to ask
    except ImportError:
        return "unknown"
    return "on" if _pywrap_util_port.IsMklEnabled() else "off"


def configure_threads(trainer_cfg: DictConfig) -> str:
    """Thread pools must be set before TensorFlow starts its runtime. 0 = TF's default (all
    cores), except in a parallel multirun: cores // jobs at once (sweep.threads_per_job).
    Returns the pools in effect, "intra/inter" (0 = TF's default)."""
    set_onednn(trainer_cfg.onednn)
    import tensorflow as tf

    threading = tf.config.threading
    intra = trainer_cfg.intra_op_threads or sweep.threads_per_job()
    inter = trainer_cfg.inter_op_threads or sweep.threads_per_job()
    try:
        if intra and intra != threading.get_intra_op_parallelism_threads():
            threading.set_intra_op_parallelism_threads(intra)
        if inter and inter != threading.get_inter_op_parallelism_threads():
            threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # e.g. the second job of a reused worker asking for other values
        log.warning("TensorFlow already started in this process; thread settings unchanged")
    return f"{threading.get_intra_op_parallelism_threads()}/{threading.get_inter_op_parallelism_threads()}"


def real_labels_for(cfg: DictConfig, real: np.ndarray) -> np.ndarray | None:
    """The class of each real sample for a conditional model (data.image_labels), else None."""
    if not registry.MODELS[cfg.model.name].conditional:
        return None
    found = data.image_labels(cfg.data)
    if len(found) != len(real):
        raise data.DataError(f"data: {len(found)} labels for {len(real)} {cfg.data.name} images")
    return found


def build_gan(cfg: DictConfig, real: np.ndarray, load_weights=None, real_labels: np.ndarray | None = None):
    """The GAN step of a config, built from scratch in a clean, seeded Keras session: G and D
    from the registry, a fresh optimizer for each, the data, the step settings. Every variable is
    created in the strategy's scope (mirrored over the devices for trainer.strategy=mirrored).
    `load_weights(generator, discriminator)`, if given, runs on the new networks before the step
    wraps them. A conditional model trains on `real_labels` (read with the data when not
    given). Tests, benches and evaluate use this rather than a Trainer."""
    configure_threads(cfg.trainer)  # before TensorFlow starts its runtime
    import keras

    from gan_runner import distribute  # imports TensorFlow: only from here
    from gan_runner.models import precision
    from gan_runner.models.gan import StepConfig
    from gan_runner.optim import build_optimizer

    # A clean slate per job: Hydra's basic launcher runs every job in one process.
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    model = registry.get_model(cfg.model.name)
    conditional = registry.MODELS[cfg.model.name].conditional
    if conditional and real_labels is None:
        real_labels = real_labels_for(cfg, real)
    mixed = cfg.trainer.precision
    with distribute.scope(cfg.trainer.strategy), precision.policy(mixed):
        generator = precision.float32_output(model.build_generator(cfg.model))
        discriminator = precision.float32_output(model.build_discriminator(cfg.model, real.shape[1:]))
        if load_weights is not None:
            load_weights(generator, discriminator)
        return distribute.step_class()(
            generator,
            discriminator,
            precision.optimizer(
                build_optimizer(cfg.optimizer, cfg.schedule, "d", cfg.train_steps, cfg.trainer.d_steps), mixed
            ),
            precision.optimizer(build_optimizer(cfg.optimizer, cfg.schedule, "g", cfg.train_steps), mixed),
            real,
            StepConfig(
                latent_dim=model.latent_dim(cfg.model),
                batch_size=cfg.batch.size,
                order=cfg.batch.order,
                reuse_noise=cfg.batch.reuse_noise,
                real_label=cfg.labels.real,
                fake_label=cfg.labels.fake,
                update=cfg.trainer["update"],
                loss=cfg.loss.name,
                penalty=cfg.penalty.name,
                penalty_weight=float(cfg.penalty.get("weight", cfg.penalty.get("gamma", 0.0))),
                d_steps=cfg.trainer.d_steps,
                ema_decay=cfg.ema.decay,
                ema_start=cfg.ema.start_step,
                num_classes=model.num_classes(cfg.model) if conditional else 0,
                class_loss_weight=float(cfg.model.get("class_loss_weight", 0.0)),
                jit_compile=cfg.trainer.jit_compile,
            ),
            seed=cfg.seed,
            # the EMA generator: G's architecture, its weights set from G by the step
            ema_generator=precision.float32_output(model.build_generator(cfg.model))
            if cfg.ema.decay is not None
            else None,
            real_labels=real_labels,
        )


def eval_noise(seed: int, n: int, latent_dim: int, num_classes: int = 0) -> np.ndarray:
    """A run's evaluation noise for n fakes: U(-1, 1) from default_rng([seed, n]), drawn apart
    from the training RNG so the eval cadence never changes training. (n, latent) float32; a
    conditional model's G input [z | one_hot(i % K)] (n, latent + K) (gan_runner/labels.py)."""
    z = np.random.default_rng([seed, n]).uniform(-1, 1, (n, latent_dim)).astype(np.float32)
    return labels.with_labels(z, labels.eval_labels(n, num_classes), num_classes) if num_classes else z


def generate_chunked(call, z: np.ndarray, sample_shape) -> np.ndarray:
    """call(z) in chunks of GENERATE_VALUES output values (bounds the activations' memory)."""
    rows = max(1, GENERATE_VALUES // int(np.prod(sample_shape)))
    return np.concatenate([call(z[i : i + rows]).numpy() for i in range(0, len(z), rows)])


class Trainer:
    """The single training loop for every model."""

    def __init__(
        self,
        cfg: DictConfig,
        real: np.ndarray,
        tracker: tracking.NullTracker,
        checkpointer: checkpoint.Checkpointer | None = None,
        stop: stopping.SignalStop | None = None,
        resumed: checkpoint.Checkpoint | None = None,
        real_labels: np.ndarray | None = None,
    ):
        # how TensorFlow runs: thread pools "intra/inter" and oneDNN, both fixed when it loads
        tracker.set_tags({"tf.threads": configure_threads(cfg.trainer), "tf.onednn": onednn_in_use()})
        self.cfg, self.real, self.tracker = cfg, real, tracker
        self.model = registry.get_model(cfg.model.name)
        load = None
        if cfg.weights.load and resumed is None:  # a resume restores everything below anyway

            def load(generator, discriminator):
                self._load_weights(generator, discriminator, cfg.weights.load)

        self.gan = build_gan(cfg, real, load, real_labels)
        self.history: dict[str, float] = {}
        self._eval_noise: dict[int, np.ndarray] = {}
        self.checkpointer, self.stop = checkpointer, stop or stopping.SignalStop()
        self._step = int(self.gan.step.numpy())
        self._chunk = 1  # steps in the next chunk; the first one mostly traces the graph
        self._pinned = 0  # consecutive logged values that meet the early-stop rule
        self._best: tuple[int, float, list] | None = None  # (step, objective, G's weights) of the best eval
        self._done = False  # the loop ended already (early stop, or the last step): only the end is left
        self.host = host_work.HostWork()  # during fit: every write to the tracker and checkpoints goes through it
        self._writing = None  # the future of the checkpoint the host thread is writing
        if resumed is not None:  # after building: the optimizers' slots must exist to be assigned
            checkpoint.restore(resumed, self.gan.state_variables())
            self._step = int(self.gan.step.numpy())
            self._restore_loop_state(resumed)

    def _loop_state(self, finished: bool) -> tuple[dict, dict[str, np.ndarray]]:
        """What the loop keeps besides the variables, for the checkpoint: the last value of each
        metric (the objective of a run resumed at its end), the early-stop count and the best
        evaluation (its G weights as arrays): without them a resume would log best/* again."""
        state = {
            "history": dict(self.history),  # a copy: the host thread writes it while training goes on
            "pinned": self._pinned,
            "finished": finished,
            "best": list(self._best[:2]) if self._best else None,
        }
        arrays = {f"best.{i:03d}": w for i, w in enumerate(self._best[2])} if self._best else {}
        return state, arrays

    def _restore_loop_state(self, resumed: checkpoint.Checkpoint) -> None:
        state = resumed.meta.get("trainer") or {}  # absent in checkpoints of older versions
        self.history.update(state.get("history", {}))
        self._pinned = int(state.get("pinned", 0))
        # killed after the loop's last checkpoint (e.g. an early stop): finish, do not train on,
        # unless this resume asks for more steps than that run planned
        self._done = bool(state.get("finished")) and self.cfg.train_steps <= int(resumed.meta["config"]["train_steps"])
        if state.get("best"):
            weights = [resumed.arrays[k] for k in sorted(resumed.arrays) if k.startswith("host.trainer.best.")]
            self._best = (int(state["best"][0]), float(state["best"][1]), weights)

    def generate(self, n: int, classes=None) -> np.ndarray:
        """n fakes from evaluation noise fixed for the whole run (the same z at every eval, so
        a change between evals is the generator's), drawn apart from the training RNG so the
        eval cadence never changes training. The EMA generator when ema.decay is set. A
        conditional model: of the classes i % K, or of `classes` (n,) with the same z."""
        return self._generate(n, self.gan.generate, classes)

    def generate_raw(self, n: int, classes=None) -> np.ndarray:
        """generate(n) from the raw G (what eval_raw/* scores when the EMA is on)."""
        return self._generate(n, self.gan.generate_raw, classes)

    def _generate(self, n: int, call, classes=None) -> np.ndarray:
        k = self.gan.config.num_classes
        if n not in self._eval_noise:
            self._eval_noise[n] = eval_noise(self.cfg.seed, n, self.gan.config.latent_dim, k)
        inputs = self._eval_noise[n] if classes is None else labels.relabel(self._eval_noise[n], classes, k)
        fakes = generate_chunked(call, inputs, self.gan.generator.output_shape[1:])
        if not np.isfinite(fakes).all():
            self._diverged("the generated samples")
        return fakes

    def fit(self) -> float:
        """Train, evaluate, log and checkpoint to the end; return the objective. The writes go
        through the host thread (host_work.py), which is drained before this returns or raises."""
        try:
            step = self._loop()
        except BaseException as err:
            try:
                self.host.close()  # what was handed over is written (a divergence's tag, the last checkpoint)
            except Exception as writing:  # the training thread's error is the one raised; another one is logged
                if writing is not err:
                    log.exception("writing the run's last metrics, pictures or checkpoint failed")
            raise
        self.host.close()
        self.tracker.flush()
        stopping.phase("upload")
        self._save_weights(step)
        self.stop.check(step)  # the checkpoint of the last step is written: a signal ends the run KILLED
        return self.objective()

    def _loop(self) -> int:
        cfg = self.cfg
        step = start = self._step
        if start == 0 and hasattr(self.model, "reference_metrics"):  # once per run, not again on resume
            ref = self.model.reference_metrics(self.real, cfg, np.random.default_rng([cfg.seed, 2**31]))
            self._log(ref, 0)
        every = cfg.checkpoint.every
        cadences = [cfg.log_every, cfg.eval_every, cfg.sample_every, cfg.plot_every] + ([every] if every else [])
        started = time.perf_counter()
        spent = {"eval": 0.0, "pictures": 0.0}  # seconds of the loop outside the compiled steps

        @contextmanager
        def timed(part: str):
            part_started = time.perf_counter()
            yield
            spent[part] += time.perf_counter() - part_started

        final = False
        with Progress(cfg.train_steps, start=step) as progress:
            while step < cfg.train_steps and self.stop.signum is None and not self._done:
                until = min([cfg.train_steps, step + self._chunk] + [(step // c + 1) * c for c in cadences])
                faults.point("trace" if step == start else "chunk")
                if step == start:
                    stopping.phase("tracing")  # the first chunk traces the compiled step
                out = self._run_chunk(until - step)
                self.host.raise_failed()  # a write that failed stops the run here
                step = self._step = int(self.gan.step.numpy())
                if not (math.isfinite(out["d_loss"]) and math.isfinite(out["g_loss"])):
                    self._diverged("a loss")
                final = step == cfg.train_steps
                if step % cfg.log_every == 0 or final:
                    values = {f"train/{k}": v for k, v in out.items()}
                    values.update({f"train/{k}": v for k, v in self.gan.learning_rates().items()})
                    self._log(values, step)
                    final = final or self._early_stop(step)
                if step % cfg.eval_every == 0 or final:
                    stopping.phase("eval")
                    with timed("eval"):
                        raw = {}
                        if self.gan.ema_generator is not None:  # raw G first: pictures reuse the last eval
                            raw = {
                                k.replace("eval/", "eval_raw/", 1): v
                                for k, v in self.model.evaluate(self.generate_raw, self.real, cfg, step).items()
                            }
                        values = self.model.evaluate(self.generate, self.real, cfg, step)
                    faults.point("eval")
                    self._log({**raw, **values}, step)
                    self._keep_best(values, step)
                grids, figures = step % cfg.sample_every == 0 or final, step % cfg.plot_every == 0 or final
                if grids or figures:
                    with timed("pictures"):
                        self._pictures(step, grids, figures)
                if (every and step % every == 0) or final:
                    self._checkpoint(step, finished=final)
                progress.update(step, self.history)
                if final:
                    break
        if not final and self.stop.signum is not None:
            self._checkpoint(step)
            self.host.drain()
            raise Interrupted(self.stop.signum, step)
        self.host.drain()  # the last pictures and checkpoint are part of the loop's time
        loop_s = time.perf_counter() - started  # tracing, evaluation, and the wait for the last writes
        if step > start:  # eval_s is part of loop_s; pictures_s, mostly spent beside the steps, need not be
            self._log(
                {
                    "perf/loop_s": loop_s,
                    "perf/steps_per_s": (step - start) / loop_s,
                    "perf/eval_s": spent["eval"],
                    "perf/pictures_s": spent["pictures"] + self.host.seconds["pictures"],
                },
                step,
            )
        return step

    def _run_chunk(self, n: int) -> dict[str, float]:
        started = time.perf_counter()
        out = {k: float(v) for k, v in self.gan.run_steps(n).items()}  # float() waits for the steps
        elapsed = max(time.perf_counter() - started, 1e-6)
        self._chunk = max(1, int(n / elapsed * MAX_CHUNK_S))  # chunk length never changes the numbers
        return out

    def _diverged(self, what: str) -> None:
        self.host.submit(self.tracker.set_tags, {"divergence": f"step {self._step}"})
        raise Diverged(self._step, what)

    def _early_stop(self, step: int) -> bool:
        """Off unless early_stop.patience > 0: stop once the metric met the threshold that many
        logged times in a row (default: D accuracy pinned at 1.0, i.e. G gets no signal)."""
        rule = self.cfg.early_stop
        if not rule.patience or rule.metric not in self.history:
            return False
        self._pinned = self._pinned + 1 if self.history[rule.metric] >= rule.threshold else 0
        if self._pinned < rule.patience:
            return False
        self.host.submit(
            self.tracker.set_tags,
            {"early_stop": f"step {step}: {rule.metric} >= {rule.threshold} for {rule.patience} logged values"},
        )
        return True

    def _checkpoint(self, step: int, finished: bool = False) -> None:
        """A checkpoint is never ahead of the store: the state at `step` is copied here, and the
        host thread writes it after everything handed over before it (metrics, pictures), with
        every buffered metric written (and waited for) before the checkpoint file is renamed
        into place. A kill -9 at any instant thus leaves the store holding at least everything
        up to the newest checkpoint, and the resume skips what it holds beyond
        (MlflowTracker.skip_logged). Chosen over keeping unsent metrics in the checkpoint and
        replaying them: the store stays the one record, with no second copy to reconcile, for
        one log_batch (~6 ms) per checkpoint."""
        if self.checkpointer is not None:
            # at most one checkpoint in the writing: a kill loses no more than one interval
            if self._writing is not None:
                self.host.wait(self._writing)
            variables = {k: np.array(v.numpy()) for k, v in self.gan.state_variables().items()}
            state, arrays = self._loop_state(finished)
            host_random = checkpoint.host_random_state()
            self._writing = self.host.submit(
                self._write_checkpoint, step, variables, state, arrays, host_random, part="checkpoint"
            )

    def _write_checkpoint(self, step: int, variables: dict, state: dict, arrays: dict, host_random: tuple) -> None:
        """On the host thread."""
        started = time.perf_counter()
        self.tracker.flush()
        path = self.checkpointer.save(step, variables, state, arrays, host_random)
        log.info("checkpoint %s (%.1f ms)", path, 1000 * (time.perf_counter() - started))

    def _log(self, values: dict[str, float], step: int) -> None:
        self.history.update(values)
        self.host.submit(self.tracker.log_metrics, dict(values), step)

    def _pictures(self, step: int, grids: bool, figures: bool) -> None:
        """Sample grids (uint8 arrays, every sample_every) and figures (every plot_every): the
        fakes are generated here, at `step`; figures are drawn and both uploaded by the host thread."""
        for name, picture in self.model.pictures(self.generate, self.real, self.cfg, step).items():
            if isinstance(picture, np.ndarray):
                if grids:  # one image per step under a stable key: the UI's per-step image view
                    self.host.submit(self._log_image, picture, name, step, part="pictures")
            elif figures:  # a figure comes as a function that draws it (registry.py)
                self.host.submit(self._log_figure, picture, f"plots/{name}_step{step:07d}.png", part="pictures")

    def _log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """On the host thread."""
        self.tracker.log_image(image, key=key, step=step)
        faults.point("picture")

    def _log_figure(self, draw, artifact_file: str) -> None:
        """On the host thread: draw the figure, upload it, free it."""
        from gan_runner import plots

        figure = draw()
        try:
            self.tracker.log_figure(figure, artifact_file)
        finally:
            plots.close(figure)
        faults.point("picture")

    def _keep_best(self, values: dict[str, float], step: int) -> None:
        """The best evaluation by the objective (objective_mode) so far: metric best/<name> at
        its step, G's weights kept in memory (weights/best/ and tag best_step at the end)."""
        value = values.get(self.cfg.objective)
        if value is None or not math.isfinite(value):
            return
        sign = 1.0 if self.cfg.objective_mode == "min" else -1.0
        if self._best is None or sign * value < sign * self._best[1]:
            self._best = (step, value, [w.copy() for w in self.gan.eval_generator.get_weights()])
            self._log({f"best/{self.cfg.objective.rsplit('/', 1)[-1]}": value}, step)

    def _save_weights(self, last_step: int) -> None:
        if type(self.tracker) is tracking.NullTracker:  # nowhere to keep them
            return
        # With the EMA on, generator.weights.h5 (what evaluate, sample and weights.load read) is
        # the EMA generator and generator_raw.weights.h5 the raw G.
        nets = {"generator": self.gan.eval_generator, "discriminator": self.gan.discriminator}
        if self.gan.ema_generator is not None:
            nets["generator_raw"] = self.gan.generator
        with tempfile.TemporaryDirectory() as tmp:
            for name, net in nets.items():
                self.stop.check(last_step)  # between uploads: a signal is not held up by the rest
                path = Path(tmp) / f"{name}.weights.h5"
                net.save_weights(path)
                self.tracker.log_artifact(path, "weights")
                faults.point("weights")
            if self._best is not None:  # G at the best step: swapped in, saved, swapped back
                step, value, weights = self._best
                best = Path(tmp) / "best" / "generator.weights.h5"
                best.parent.mkdir()
                generator = self.gan.eval_generator
                current = generator.get_weights()
                generator.set_weights(weights)
                generator.save_weights(best)
                generator.set_weights(current)
                self.tracker.log_artifact(best, "weights/best")
                self.tracker.set_tags({"best_step": str(step), "best_value": f"{self.cfg.objective}={value:.6g}"})
        self.stop.check(last_step)
        if self.cfg.tracking.log_model:  # signature from 2 fakes of the run's fixed eval noise
            fakes = self.generate(2)
            self.tracker.log_keras_model(self.gan.eval_generator, "generator", self._eval_noise[2], fakes)

    def _load_weights(self, generator, discriminator, source: str) -> None:
        """From a folder of .weights.h5 files, or the weights/ artifacts of an MLflow run id."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(source).expanduser()
            if not folder.is_dir():  # config.py lets only folders and run ids through
                try:
                    folder = tracking.download_artifacts(self.cfg.tracking, source, "weights", tmp)
                except LookupError as err:
                    raise config_mod.ConfigError(f"weights.load: {err}") from None
            for net in (generator, discriminator):
                # a run with the EMA on saved its raw G apart: training continues from that one
                raw = folder / "generator_raw.weights.h5"
                path = raw if net is generator and raw.is_file() else folder / f"{net.name}.weights.h5"
                if not path.is_file():
                    raise config_mod.ConfigError(f"weights.load: no {path.name} in {source}")
                try:
                    net.load_weights(path)
                except ValueError as err:  # another architecture
                    reason = str(err).splitlines()[0][:200]
                    raise config_mod.ConfigError(
                        f"weights.load: {path.name} from {source} does not fit this model ({reason})"
                    ) from None
        self.tracker.set_tags({"weights.load": source})

    def objective(self) -> float:
        name = self.cfg.objective
        if name not in self.history:
            raise config_mod.ConfigError(
                f"objective: '{name}' was never logged; logged: {', '.join(sorted(self.history))}"
            )
        value = self.history[name]
        return value if math.isfinite(value) else float("nan")

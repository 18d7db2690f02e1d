"""Hydra multirun glue: one MLflow parent run per sweep with the jobs nested under it, sweep
tags on every job, and the failure policy of a job inside a sweep.

`MlflowSweepCallback` is registered in conf/config.yaml (hydra.callbacks). It runs in the
launching process: `on_multirun_start` creates the store, the experiment and the parent run
once, before any job starts (parallel jobs creating a fresh SQLite store race in MLflow's
migrations and in set_experiment: mlflow #979, #10334), and hands the parent's id to the jobs
through environment variables set around every job by Hydra (hydra.job.env_set overrides that
every job's config is composed with: hand_to_jobs), in whichever process runs it: joblib's
workers (started before the parent run exists: warm_workers), Ray's, submitit's. `on_multirun_end` writes the
sweep's summary on the parent and ends it; a sweep that aborts ends it FAILED at exit. With
tracking=none there is no store to count the jobs in: each job writes its outcome (status,
objective) into its own Hydra folder (`on_job_end`, in whichever process ran it) and the
summary is made from those files, so the sweep prints the same lines and exit status.

A job that fails inside a multirun (bad value, missing data, divergence) is recorded as a FAILED
run and returns `sweep.penalty` (worse than any real objective), so the other jobs run and
Optuna never sees NaN (hydra #2237); `sweep.fail_fast=true` re-raises instead.

Imports neither TensorFlow nor MLflow (tracking.py holds the MLflow calls).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_runner import startup, tracking

log = logging.getLogger(__name__)

ENV_PARENT = "GAN_RUNNER_SWEEP_PARENT"  # the parent run id, for jobs in other processes
ENV_DIR = "GAN_RUNNER_SWEEP_DIR"  # the absolute sweep directory (the tag that names a sweep)
OUTCOME_FILE = "outcome.yaml"  # tracking=none: a job's status and objective, in its Hydra folder
MAX_CHECKED_JOBS = 64  # a basic sweep's grid up to this size is validated job by job before it starts

# hparams_search files set Optuna's direction from objective_mode: ${optuna_direction:${objective_mode}}
OmegaConf.register_new_resolver(
    "optuna_direction", lambda mode: {"min": "minimize", "max": "maximize"}[mode], replace=True
)


class MlflowSweepCallback(Callback):
    """One parent run per multirun; its jobs become nested child runs."""

    def __init__(self) -> None:
        self.parent: tuple[str, str] | None = None  # (tracking uri, parent run id)
        self.local_dir: Path | None = None  # tracking=none: the sweep folder holding the jobs' outcomes
        self.started = 0.0  # tracking=none: job folders older than this belong to an earlier sweep

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        register_launchers()
        warm_workers(config)
        if config.tracking.name != "mlflow":
            self.local_dir, self.started = Path(config.hydra.sweep.dir).resolve(), time.time()
            return
        resume = OmegaConf.select(config, "sweep.resume")
        if resume:  # the same parent, and the jobs' sweep.dir tag as before: they find their runs
            try:
                uri, run_id, sweep_dir = tracking.reopen_parent_run(config.tracking, str(resume))
            except tracking.ConfigError as err:
                print(f"gan_runner: error: {err}", file=sys.stderr)
                sys.exit(2)
            self.parent = (uri, run_id)
            hand_to_jobs(config, run_id, sweep_dir)
            atexit.register(self._end, config.objective, config.objective_mode, "FAILED")
            log.info("sweep.resume: continuing sweep %s (parent run %s)", sweep_dir, run_id)
            return
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        tags = {
            "sweep.dir": str(sweep_dir),
            "sweep.role": "parent",
            "overrides": " ".join(config.hydra.overrides.task) or "(none)",
            "sweep.sweeper": str(config.hydra.sweeper._target_).rsplit(".", 1)[-1],
            "sweep.launcher": str(config.hydra.launcher._target_).rsplit(".", 1)[-1],
        }
        name = config.tracking.run_name or f"sweep {sweep_dir.name}"
        about = tracking.experiment_about(config)  # the experiment's description and runs view
        self.parent = tracking.start_parent_run(config.tracking, name, tags, about)
        hand_to_jobs(config, self.parent[1], str(sweep_dir))
        # on_multirun_end is skipped when the sweep raises (fail_fast, a crash): end it then too.
        atexit.register(self._end, config.objective, config.objective_mode, "FAILED")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        _JOB["failed"] = False

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.tracking.name == "mlflow":  # the job's run holds its status and objective
            return
        from hydra.core.utils import JobStatus

        failed = _JOB["failed"] or job_return.status != JobStatus.COMPLETED
        value = job_return.return_value if isinstance(job_return.return_value, (int, float)) else None
        overrides = list(config.hydra.overrides.task)
        outcome = {
            "job": int(config.hydra.job.num),
            "status": "FAILED" if failed else "FINISHED",
            "objective": None if failed or value is None else float(value),
            "run_name": run_name(config, overrides),
        }
        Path(config.hydra.runtime.output_dir, OUTCOME_FILE).write_text(OmegaConf.to_yaml(outcome))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.local_dir is not None:
            summary = local_summary(self.local_dir, config.objective, config.objective_mode, self.started)
            OUTCOME.update(summary)
            print(
                summary_text(summary, f"job folders in {self.local_dir} (tracking=none: no MLflow store)"), flush=True
            )
            return
        uri, parent = self.parent or ("", "")
        summary = self._end(config.objective, config.objective_mode, "FINISHED")
        if summary:
            # seeds as a dimension: mean/std per group of jobs that differ only in seed
            tracking.log_seed_aggregate(uri, parent)
            log.info("sweep summary: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
            OUTCOME.update(summary)
            links = (
                tracking.sweep_view(uri, parent, config.objective, config.objective_mode),
                tracking.run_links(uri, parent, config.objective)[1],
            )
            print(summary_text(summary, f"parent run {parent} in {uri}", links), flush=True)
            if config.tracking.register and "sweep.best_run_id" in summary:
                tracking.register_run(uri, summary["sweep.best_run_id"], config)

    def _end(self, objective: str, mode: str, status: str) -> dict[str, str]:
        if self.parent is None:
            return {}
        (uri, run_id), self.parent = self.parent, None
        os.environ.pop(ENV_PARENT, None)
        os.environ.pop(ENV_DIR, None)
        return tracking.finish_parent_run(uri, run_id, objective, mode, status)


def hand_to_jobs(config: DictConfig, parent: str, sweep_dir: str) -> None:
    """The parent run id and sweep directory for the jobs: in this process's environment (the
    basic launcher's jobs) and as hydra.job.env_set overrides of the sweep's config, which Hydra
    composes again for every job and whose env_set it applies around the job, in whatever process
    runs it: joblib's workers, started before the parent run exists (warm_workers), Ray's,
    started by the cluster, submitit's on other nodes."""
    os.environ[ENV_PARENT], os.environ[ENV_DIR] = parent, sweep_dir
    with open_dict(config):
        for key, value in ((ENV_PARENT, parent), (ENV_DIR, sweep_dir)):
            quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{key}={quoted}")


def register_launchers() -> None:
    """Our launcher plugins (hydra/launcher=ray_cluster) live in hydra_plugins/gan_runner_launchers:
    Hydra instantiates launchers only from there. Hydra's plugin scan lists the folders of that
    namespace, which an editable install (`pip install -e`) does not add to, so register them
    here; Hydra builds the launcher after this callback's on_multirun_start."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.gan_runner_launchers.ray_launcher import RayLauncher

    Plugins.instance().register(RayLauncher)


def warm_workers(config: DictConfig) -> None:
    """hydra/launcher=parallel: start joblib's worker processes now and have each import what
    a job needs (TensorFlow, Keras, MLflow and its SQLAlchemy store, matplotlib: ~7 s of CPU), while this process sets up
    the store and the parent run. joblib reuses the same workers for the sweep's jobs (its loky
    executor is reused when asked for with the same arguments: those of Hydra's joblib launcher,
    which this copies), so the first job of each worker starts warm; the jobs queue behind the
    warm-up where it has not ended yet."""
    launcher = config.hydra.launcher
    if not str(launcher._target_).endswith("JoblibLauncher"):
        return
    import threading

    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed, effective_n_jobs

    options = {k: v for k, v in OmegaConf.to_container(launcher, resolve=True).items() if k != "_target_"}
    options["backend"] = "loky"  # as Hydra's joblib launcher forces it
    process_joblib_cfg(options)
    parallel = Parallel(**options)
    onednn = OmegaConf.select(config, "trainer.onednn")
    scheme = tracking.resolve_uri(config.tracking.uri).split(":")[0].split("+")[0]  # postgresql+psycopg
    database = config.tracking.name == "mlflow" and scheme in ("sqlite", "postgresql", "mysql", "mssql")
    warm_ups = [delayed(warm_worker)(onednn, database) for _ in range(effective_n_jobs(options["n_jobs"]))]
    thread = threading.Thread(target=parallel, args=(warm_ups,), daemon=True)
    thread.start()


def warm_worker(onednn: bool | None, database: bool) -> None:
    """In a joblib worker: the imports of a job. MLflow's SQLAlchemy store (`database`: the
    tracking URI is a database) is imported at a job's first MLflow call, and costs more than
    `import mlflow`. TensorFlow's runtime and thread pools are not started, so each job still
    sets its threads. With trainer.onednn set, TensorFlow is left for the job to load: it reads
    TF_ENABLE_ONEDNN_OPTS, which the job sets, when it loads."""
    _WARMED["worker"] = True
    startup.pause_collector()  # as the command does (startup.py): until its first job opens its run
    import mlflow.tracking  # noqa: F401

    from gan_runner import plots  # noqa: F401  (matplotlib)

    if database:
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    if onednn is None:
        import keras  # noqa: F401  (and TensorFlow)


_WARMED = {"worker": False}  # this process is a joblib worker that warm_worker ran in (tag sweep.warm_worker)
OUTCOME: dict[str, str] = {}  # the last sweep's summary in this process (cli's exit status reads it)
_JOB = {"failed": False}  # the fate of the job running in this process (on_job_start resets it)


def mark_failed() -> None:
    """The current job failed (an error, or a divergence answered with the penalty): a
    tracking=none sweep counts it as failed, as MLflow counts the job's FAILED run."""
    _JOB["failed"] = True


def local_summary(sweep_dir: Path, objective: str, mode: str, since: float = 0.0) -> dict[str, str]:
    """tracking=none: the summary finish_parent_run makes from the store, made from the jobs'
    outcome files. A job folder without one (Hydra made it, the job never returned) failed;
    folders Hydra wrote before `since` are an earlier sweep's in the same hydra.sweep.dir."""
    jobs = [
        folder.parent
        for folder in sweep_dir.rglob(".hydra")
        if (folder / "overrides.yaml").is_file() and (folder / "overrides.yaml").stat().st_mtime >= since - 1
    ]
    outcomes = [OmegaConf.load(job / OUTCOME_FILE) for job in jobs if (job / OUTCOME_FILE).is_file()]
    finished = [o for o in outcomes if o.status == "FINISHED"]
    scored = [o for o in finished if o.objective is not None and math.isfinite(o.objective)]
    summary = {
        "sweep.n_jobs": str(len(jobs)),
        "sweep.n_finished": str(len(finished)),
        "sweep.n_failed": str(len(jobs) - len(finished)),
        "sweep.objective": f"{objective} ({mode})",
    }
    if scored:
        best = (min if mode == "min" else max)(scored, key=lambda o: o.objective)
        summary.update(
            {
                "sweep.best_run_name": best.run_name,
                "sweep.best_job": str(best.job),
                "sweep.best_value": f"{best.objective:.6g}",
            }
        )
    return summary


def summary_text(summary: dict[str, str], where: str, links: tuple[str, str] | None = None) -> str:
    """What a sweep prints at its end: jobs finished / failed, the best job, where it all is
    (`links`: the UI's URLs of the jobs sorted by the objective and of the parent run)."""
    best = (
        (
            f"best: job #{summary['sweep.best_job']} ({summary['sweep.best_run_name']}) "
            f"{summary['sweep.objective']} = {summary['sweep.best_value']}"
        )
        if "sweep.best_job" in summary
        else "best: none (no job finished with a finite objective)"
    )
    return (
        f"sweep: {summary['sweep.n_jobs']} jobs, {summary['sweep.n_finished']} finished, "
        f"{summary['sweep.n_failed']} failed; {best}\n  {where}"
        + (f"\n  its jobs by {summary['sweep.objective']}: {links[0]}\n  the parent run: {links[1]}" if links else "")
    )


def failed_jobs() -> int:
    """Jobs of the last sweep that did not finish (0 when no sweep summary was made)."""
    return int(OUTCOME.get("sweep.n_jobs", 0)) - int(OUTCOME.get("sweep.n_finished", 0))


# ---- before the sweep starts: every job's overrides -----------------------------------------


def planned_jobs(args: list[str], params: dict[str, str], grid: bool) -> list[list[str]]:
    """The override lists of a multirun's jobs, to validate them all before the first starts.

    `args` are the command line's overrides, `params` the config's hydra.sweeper.params (the
    command line wins for a key, as in Hydra's sweepers). Lists, choice(), range() and glob()
    are expanded to their values, an Optuna interval() to its two ends. With `grid` (Hydra's
    basic sweeper) and at most MAX_CHECKED_JOBS jobs, these are exactly the jobs that will run;
    otherwise (a search draws its trials later, or a huge grid) every value of every swept key
    appears in one job, the other keys at their first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    from gan_runner.config import group_options

    lines = [f"{key}={value}" for key, value in params.items()] + list(args)
    by_key: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        by_key[override.key_or_group] = override  # a later one (the command line) wins
    choices: list[list[str]] = []
    for override in by_key.values():
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices.append([override.input_line])
        elif isinstance(override.value(), Glob):
            choices.append([f"{key}={v}" for v in override.value().filter(group_options(override.key_or_group))])
        elif override.is_interval_sweep():
            choices.append([f"{key}={override.value().start}", f"{key}={override.value().end}"])
        else:
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
    if grid and math.prod(len(c) for c in choices) <= MAX_CHECKED_JOBS:
        return [list(job) for job in itertools.product(*choices)]
    first = [c[0] for c in choices]
    return [first] + [first[:i] + [value] + first[i + 1 :] for i, c in enumerate(choices) for value in c[1:]]


# ---- the job side --------------------------------------------------------------------------


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_tags() -> dict[str, str]:
    """Tags that place a job in its sweep ({} outside a multirun)."""
    if not in_multirun():
        return {}
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    tags = {"hydra.job.num": str(hc.job.num), "sweep.dir": os.environ.get(ENV_DIR) or str(Path(hc.sweep.dir).resolve())}
    if os.environ.get(ENV_PARENT):
        tags[tracking.PARENT_TAG] = os.environ[ENV_PARENT]
    if _WARMED["worker"]:  # the job ran in a joblib worker that warm_workers warmed
        tags["sweep.warm_worker"] = "true"
    return tags


def threads_per_job() -> int:
    """TensorFlow threads for a job of a multirun whose jobs share cores: joblib's n_jobs jobs at
    once on this machine get cores // n_jobs each (2 jobs on 2 cores: 1 thread each, not 2 x 2
    fighting over the cores); a submitit job its cpus_per_task, a Ray job its num_cpus (TF would
    see the whole node). 0 (TF's default) elsewhere; trainer.*_op_threads > 0 overrides this."""
    if not in_multirun():
        return 0
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    cpus = OmegaConf.select(launcher, "cpus_per_task", default=None)  # submitit
    cpus = cpus or OmegaConf.select(launcher, "ray_remote_args.num_cpus", default=None)  # hydra/launcher=ray_cluster
    if isinstance(cpus, int) and cpus > 0:
        return cpus
    n_jobs = OmegaConf.select(launcher, "n_jobs", default=None)
    if not isinstance(n_jobs, int) or n_jobs in (0, 1):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // n_jobs) if n_jobs > 1 else 1  # joblib's n_jobs=-1: one job per core


def penalty(cfg: DictConfig) -> float:
    """The objective reported for a failed or diverged job: worse than any real value."""
    value = float(OmegaConf.select(cfg, "sweep.penalty", default=1.0e6))
    return -value if OmegaConf.select(cfg, "objective_mode") == "max" else value


def finite_objective(value: float, cfg: DictConfig) -> float:
    """In a multirun, a non-finite objective becomes the penalty (Optuna crashes on NaN)."""
    if math.isfinite(value) or not in_multirun():
        return value
    log.warning("objective %s is %s (diverged?); reporting the penalty %s", cfg.objective, value, penalty(cfg))
    return penalty(cfg)


class SweepStopped(SystemExit):
    """sweep.fail_fast=true and a job failed. A SystemExit, not an Exception: Hydra's launchers
    catch a job's Exception and launch the remaining jobs of the batch before re-raising it."""


def job_failed(cfg: DictConfig, overrides: list[str], err: Exception) -> float:
    """A job's error inside a multirun: record it as a FAILED run, then return the penalty
    (the sweep goes on) or stop the whole sweep when sweep.fail_fast is set."""
    log.error("job failed: %s: %s", type(err).__name__, err)
    mark_failed()
    record_failure(cfg, overrides, err)
    if OmegaConf.select(cfg, "sweep.fail_fast", default=False):
        from hydra.core.hydra_config import HydraConfig

        print(
            f"gan_runner: error: job #{HydraConfig.get().job.num} failed ({type(err).__name__}: {err}); "
            "sweep.fail_fast=true stops the sweep",
            file=sys.stderr,
        )
        raise SweepStopped(1) from err
    return penalty(cfg)


def run_name(cfg: DictConfig, overrides: list[str]) -> str:
    """The tracker's name for a run (train.run and a failed job's record use the same)."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    rest = [o for o in overrides if not o.startswith(("model=", "tracking", "hydra"))]
    return f"{cfg.model.name} " + (" ".join(rest) if rest else "defaults")


def run_tags(cfg: DictConfig, overrides: list[str]) -> dict[str, str]:
    return {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": str(cfg.seed),
        "optimizer": cfg.optimizer.name,
        "schedule": cfg.schedule.name,
        "loss": cfg.loss.name,
        "penalty": cfg.penalty.name,
        "overrides": " ".join(overrides) or "(none)",
        "objective": cfg.objective,
        **job_tags(),
    }  # parent run, sweep dir, job number inside a multirun


def record_failure(cfg: DictConfig, overrides: list[str], err: Exception) -> None:
    """A FAILED run with the error as a tag, unless the job's run already ended FAILED (errors
    after the run opened); errors before it (a bad value, missing data) would leave no trace."""
    if OmegaConf.select(cfg, "tracking.name") != "mlflow":
        return
    try:
        tags = run_tags(cfg, overrides)
        uri = tracking.resolve_uri(cfg.tracking.uri)
        mine = f"tags.`sweep.dir` = '{tags['sweep.dir']}' and tags.`hydra.job.num` = '{tags['hydra.job.num']}'"
        if tracking.find_runs(uri, mine):
            return
        with tracking.open_run(cfg.tracking, run_name(cfg, overrides), tags):
            raise err
    except Exception as other:  # recording must never take the sweep down
        if other is not err:
            log.warning("could not record the failed job in MLflow: %s", other)


def resume_job(cfg: DictConfig, root: Path) -> str | None:
    """sweep.resume, in a job: the run this job (same parent, same hydra.job.num) logged before
    the sweep was killed, to resume from its checkpoints (a FINISHED one is then skipped by
    train.run with its stored objective). None: run the job afresh; a run that died before its
    first checkpoint is ended and deleted, so the parent keeps one run per job."""
    parent = os.environ.get(ENV_PARENT)
    if not in_multirun():
        raise tracking.ConfigError(
            "sweep.resume: continues a multirun (-m ...); for one run use resume=<run id | last>"
        )
    if not (OmegaConf.select(cfg, "sweep.resume") and parent):  # tracking=none: no runs to find
        return None
    from hydra.core.hydra_config import HydraConfig

    from gan_runner import checkpoint

    uri = tracking.resolve_uri(cfg.tracking.uri)
    mine = f"tags.`{tracking.PARENT_TAG}` = '{parent}' and tags.`hydra.job.num` = '{HydraConfig.get().job.num}'"
    found = None
    for run in sorted(tracking.find_runs(uri, mine), key=lambda r: r.info.start_time):
        if checkpoint.checkpoints(root / run.info.run_id) or run.info.status == "FINISHED":
            found = run.info.run_id
        else:
            tracking.end_orphan(cfg.tracking, run.info.run_id)
            tracking.delete_run(uri, run.info.run_id)
    return found

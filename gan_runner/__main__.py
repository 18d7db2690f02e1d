"""`python -m gan_runner [overrides]`: Hydra composes conf/, then train.run(cfg).

Group names and the composed config are checked before TensorFlow is imported; a bad value
prints one line and exits with status 2."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_runner import startup, stopping, sweep
from gan_runner.config import CONF_DIR, check_group_overrides, compose, did_you_mean, validate
from gan_runner.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_JOBS_FAILED, ConfigError, DataError
from gan_runner.stopping import Diverged, Interrupted, SignalStop


def fail(message: str) -> None:
    print(f"gan_runner: error: {message}", file=sys.stderr)
    discard_run_dir()
    sys.exit(EXIT_BAD_INPUT)


def discard_run_dir() -> None:
    """Bad input found once the job runs (the store, resume=, the data) leaves no
    outputs/<date>/<time>/ behind: Hydra made it for the job, and it holds only Hydra's own
    files (.hydra/, the job's log). Its parents go too while empty, up to the working dir."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or sweep.in_multirun():
        return
    hc = HydraConfig.get()
    folder, cwd = Path(hc.runtime.output_dir).resolve(), Path.cwd().resolve()
    own = {".hydra", f"{hc.job.name}.log"}
    if cwd not in folder.parents or any(p.name not in own for p in folder.iterdir()):
        return  # hydra.run.dir=. or a folder holding anything else: not ours to remove
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:
        if parent == cwd:
            break
        try:
            parent.rmdir()
        except OSError:  # not empty: other runs' folders
            break


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    try:
        validate(cfg, overrides)
        from gan_runner import train  # imports TensorFlow lazily, inside run()

        return sweep.finite_objective(train.run(cfg, overrides), cfg)
    except Exception as err:
        startup.resume_collector()  # a job that failed before its run opened: the next one collects
        if sweep.in_multirun():  # exiting here would end the whole sweep: record it, go on
            return sweep.job_failed(cfg, overrides, err)
        if isinstance(err, (ConfigError, DataError)):
            fail(str(err))
        if isinstance(err, Diverged):  # the run is FAILED with tag divergence=step N by now
            print(
                f"gan_runner: error: {err} (on_divergence=raise; an MLflow run ends FAILED "
                f"with tag divergence=step {err.step})",
                file=sys.stderr,
            )
            sys.exit(EXIT_DIVERGED)
        raise


def precompose(args: list[str]) -> None:
    """Compose and validate the command line with Hydra's compose API before Hydra runs it, so
    that bad input, Hydra's own errors included, comes out as one line with status 2 before
    TensorFlow loads and before Hydra makes an outputs/ folder. A multirun has every job's
    config checked before the first job starts (and before its MLflow parent run exists)."""
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    if any(f not in ("-m", "--multirun") for f in flags):  # --cfg, --help, -cn, ...: Hydra's business
        return
    if not flags:
        cfg = compose_or_fail(overrides)
        search = cfg.hydra.runtime.choices.get("hparams_search")
        if search:
            fail(
                f"hparams_search={search}: a search runs its trials as a multirun; add -m "
                f"(python -m gan_runner -m {' '.join(overrides)})"
            )
        validate_or_fail(cfg, overrides)
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed = [o.input_line for o in OverridesParser.create().parse_overrides(overrides) if not o.is_sweep_override()]
    cfg = compose_or_fail(fixed)
    grid = str(cfg.hydra.sweeper._target_).endswith("BasicSweeper")
    params = cfg.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params) if params is not None else {}
    for job in sweep.planned_jobs(overrides, params, grid):
        swept = [o for o in job if o not in fixed]
        validate_or_fail(compose_or_fail(job, swept), job, swept)


def compose_or_fail(overrides: list[str], job: list[str] | None = None) -> DictConfig:
    """The composed config (with its hydra node); Hydra's errors as one line naming the key."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose(overrides, hydra=True)
    except (HydraException, OmegaConfBaseException) as err:
        fail(hydra_message(f"{err}\n{err.__cause__ or ''}") + in_job(job))


def hydra_message(text: str) -> str:
    """Hydra's multi-line error as one line; an override of a key that does not exist names the
    keys it may have meant (optimizer.lr -> optimizer.d.learning_rate / optimizer.g.learning_rate)."""
    text = text.split("Config search path")[0]
    missing = re.search(r"Could not override '([^']+)'", text)
    if missing and "not in struct" in text:
        key = missing.group(1)
        hint = did_you_mean(key)
        if hint:
            return f"{key}: unknown key{hint}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:2]) + (" " + ", ".join(lines[2:]) if lines[1:2] and lines[1].endswith(":") else "")


def validate_or_fail(cfg: DictConfig, overrides: list[str], job: list[str] | None = None) -> None:
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        validate(cfg, overrides)
    except ConfigError as err:
        fail(str(err) + in_job(job))


def in_job(job: list[str] | None) -> str:
    return f" (sweep job with {' '.join(job)}; no job was started)" if job is not None else ""


def cli() -> None:
    # Ctrl-C / SIGTERM from here on: before a run exists they stop at once (stopping.py), then
    # train.run checkpoints and ends the run KILLED. Exit status 128 + the signal either way.
    with SignalStop(deferred=False) as guard:
        try:
            stopping.phase("startup")
            args = sys.argv[1:]
            try:
                check_group_overrides(args)
            except ConfigError as err:
                fail(str(err))
            precompose(args)
            main()
            if sweep.failed_jobs():  # the summary above says which; a sweep with failed jobs is no success
                sys.exit(EXIT_JOBS_FAILED)
        except KeyboardInterrupt as err:  # train.Interrupted: checkpoint written, run KILLED, resume command printed
            if not isinstance(err, Interrupted) or err.step is None:
                print(f"gan_runner: {err or 'stopped by SIGINT'}", file=sys.stderr)
            sys.exit(getattr(err, "exit_code", 130))
        if guard.signum is not None:  # came after the run's last check: the run itself is complete
            print(f"gan_runner: stopped by {signal.Signals(guard.signum).name} after the run ended", file=sys.stderr)
            sys.exit(128 + guard.signum)


def program() -> None:
    """The command (`python -m gan_runner`, `gan-runner`): cli() with the garbage collector
    paused through the imports (startup.py), then an exit that skips the
    interpreter's teardown once everything is written. Tearing down the thousands of modules
    TensorFlow, Keras and MLflow loaded cost a default run ~2 CPU s (shared 2-core Xeon) after its last
    line; atexit handlers (logging's flush among them) still run, and the files are closed or
    synced by then (SQLite commits, checkpoints fsynced). An error's traceback exits normally."""
    startup.pause_collector()  # until the first run opens (startup.py says why)
    try:
        cli()
        code = 0
    except SystemExit as stop:
        if stop.code is not None and not isinstance(stop.code, int):  # sys.exit("message")
            print(stop.code, file=sys.stderr)
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    # What the interpreter's own exit does first, in its order (Py_FinalizeEx): join the non-daemon
    # threads and run threading's exit hooks (concurrent.futures / loky stop their pools there: a
    # joblib or Ray sweep hung in atexit without it), then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader that went away
            pass
    os._exit(code)


if __name__ == "__main__":
    program()

"""`python -m gan_runner [overrides]`: Hydra composes conf/, then train.run(cfg).

Group names and the composed config are checked before TensorFlow is imported; a bad value
prints one line and exits with status 2."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from gan_runner import sweep
from gan_runner.config import CONF_DIR, ConfigError, check_group_overrides, validate
from gan_runner.data import DataError
from gan_runner.stopping import Diverged

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  # a loss or the samples became NaN/inf


def fail(message: str) -> None:
    print(f"gan_runner: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    try:
        validate(cfg)
        from gan_runner import train  # imports TensorFlow lazily, inside run()

        return sweep.finite_objective(train.run(cfg, overrides), cfg)
    except Exception as err:
        if sweep.in_multirun():  # exiting here would end the whole sweep: record it, go on
            return sweep.job_failed(cfg, overrides, err)
        if isinstance(err, (ConfigError, DataError)):
            fail(str(err))
        if isinstance(err, Diverged):  # the run is FAILED with tag divergence=step N by now
            print(f"gan_runner: error: {err} (on_divergence=raise; an MLflow run ends FAILED "
                  f"with tag divergence=step {err.step})", file=sys.stderr)
            sys.exit(EXIT_DIVERGED)
        raise


def precompose(args: list[str]) -> None:
    """Compose a single-run command line once with Hydra's compose API so that Hydra's own
    errors (an unknown key, a malformed override) come out as one line with status 2."""
    if any(a.startswith("-") for a in args):  # -m, --cfg, --help, ...: Hydra's business
        return
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name="config", overrides=args)
    except (HydraException, OmegaConfBaseException) as err:
        text = str(err).split("Config search path")[0]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        fail(" ".join(lines[:2]) + (" " + ", ".join(lines[2:]) if lines[1:2] and lines[1].endswith(":") else ""))


def cli() -> None:
    args = sys.argv[1:]
    try:
        check_group_overrides(args)
    except ConfigError as err:
        fail(str(err))
    precompose(args)
    try:
        main()
    except KeyboardInterrupt as err:  # train.Interrupted: checkpoint written, run KILLED, resume command printed
        sys.exit(getattr(err, "exit_code", 130))


if __name__ == "__main__":
    cli()

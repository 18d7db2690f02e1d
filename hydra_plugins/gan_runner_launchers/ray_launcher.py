"""hydra/launcher=ray_cluster (conf/hydra/launcher/ray_cluster.yaml): the jobs of a multirun on a Ray cluster, through Ray's own joblib
backend (`ray.util.joblib`) behind Hydra's joblib launcher.

Why not hydra-ray-launcher: its last release (1.2.2) pins cloudpickle<3, which the rest of the
stack has outgrown, so it could only live in a venv of its own. Why not Hydra's joblib launcher
with `backend: ray`: hydra-joblib-launcher 1.2 overwrites the backend with loky. So this is the
joblib launcher with that one line changed: the same job function (`execute_job`, Hydra's own),
run by `joblib.Parallel` under `parallel_config(backend="ray")`, whose pool workers are Ray
actors (reused from job to job, like loky's workers).

Ray's workers are started by the cluster's raylet, not by this process: they do not inherit its
environment. The sweep's parent run id and directory reach the jobs as hydra.job.env_set
overrides of the config every job composes (gan_runner.sweep.hand_to_jobs).

Hydra imports every module of hydra_plugins when it starts: Ray is imported only when a sweep
launches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class RayLauncher(JoblibLauncher):
    """`address`: the cluster to join (None: $RAY_ADDRESS, else a local Ray started for the sweep);
    `ray_remote_args`: each pool worker's resources (num_cpus, num_gpus); the rest are
    joblib.Parallel's arguments, as for hydra/launcher=parallel."""

    def __init__(self, address: str | None = None, ray_remote_args: dict | None = None, **joblib: Any) -> None:
        super().__init__(**joblib)
        self.address = address
        # Hydra hands nested options over as DictConfig; Ray wants plain dicts
        args = ray_remote_args or {}
        self.ray_remote_args = dict(OmegaConf.to_container(args) if OmegaConf.is_config(args) else args)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import joblib
        import ray
        from hydra_plugins.hydra_joblib_launcher._core import execute_job, process_joblib_cfg
        from ray.util.joblib import register_ray

        setup_globals()
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False)
        register_ray()
        options = {k: v for k, v in self.joblib.items() if k != "backend"}
        process_joblib_cfg(options)
        log.info("Ray %s: %d jobs, joblib.Parallel(%s)", ray.__version__, len(job_overrides), options)
        for idx, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        with joblib.parallel_config(backend="ray", ray_remote_args=self.ray_remote_args):
            runs = joblib.Parallel(**options)(
                joblib.delayed(execute_job)(
                    initial_job_idx + idx, overrides, self.hydra_context, self.config, self.task_function, state
                )
                for idx, overrides in enumerate(job_overrides)
            )
        return runs

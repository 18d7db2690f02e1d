"""Real multiruns (`python -m gan_runner -m ...` in a subprocess) of tiny gaussian1d jobs on a
temp SQLite store, read back with MlflowClient: one parent run per sweep with the jobs nested
under it, sweep tags, the parent's summary, the failure policy, and no run left RUNNING.

Every subprocess pays a TensorFlow import (~8 s), joblib's and submitit's workers one each:
the sweeps are as few and as small as they can be.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import compose_cfg, metric_history, run_cli
from gan_runner import sweep, tracking  # noqa: F401  (sweep registers the optuna_direction resolver, as the CLI does)
from gan_runner.config import CONF_DIR, compose

TINY = ["train_steps=30", "eval_every=30", "log_every=10", "plot_every=30", "eval.n_fake=1000", "checkpoint.every=0"]
OBJECTIVE = "eval/kl_target"


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    """An empty SQLite store with MLflow's schema: copied into a test's folder, it spares each
    sweep the migrations (seconds). The joblib test starts from no store at all instead."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def multirun(tmp_path: Path, *args: str, db: Path | None = None, env: dict | None = None):
    """Run a sweep on tmp_path/mlflow.db (a copy of `db`, else created by the sweep); return
    (process, client, sweep dir)."""
    if db is not None:
        shutil.copyfile(db, tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "multirun"
    proc = run_cli(["-m", f"tracking.uri={store}", f"hydra.sweep.dir={sweep_dir}", *TINY, *args], cwd=tmp_path, env=env)
    return proc, MlflowClient(tracking_uri=store), sweep_dir


def sweep_runs(client, sweep_dir: Path):
    """The one parent run and its children by job number; checks the links and tags that hold
    for every sweep, and that no run was left RUNNING."""
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert runs, "no runs logged"
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r is not parent]
    assert {r.data.tags.get(tracking.PARENT_TAG) for r in children} == {parent.info.run_id}
    assert {r.data.tags["sweep.dir"] for r in runs} == {str(sweep_dir.resolve())}
    children.sort(key=lambda r: int(r.data.tags["hydra.job.num"]))
    assert [r.data.tags["hydra.job.num"] for r in children] == [str(i) for i in range(len(children))]
    assert parent.data.tags["sweep.n_jobs"] == str(len(children))
    assert parent.data.tags["sweep.n_failed"] == str(sum(r.info.status == "FAILED" for r in children))
    return parent, children


def check_best(parent, children) -> None:
    """The parent's summary names the best finished child and its objective (objective_mode=min)."""
    finished = [r for r in children if r.info.status == "FINISHED"]
    best = min(finished, key=lambda r: r.data.metrics[OBJECTIVE])
    assert parent.data.tags["sweep.best_run_id"] == best.info.run_id
    assert parent.data.metrics["sweep/best_objective"] == best.data.metrics[OBJECTIVE]
    assert parent.data.tags["sweep.objective"] == f"{OBJECTIVE} (min)"


def test_joblib_grid_2x2_in_parallel_workers(tmp_path):
    proc, client, sweep_dir = multirun(
        tmp_path, "hydra/launcher=parallel", "seed=0,1", "optimizer.d.learning_rate=1e-3,5e-4"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = sweep_runs(client, sweep_dir)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.launcher"] == "JoblibLauncher"
    assert [r.info.status for r in children] == ["FINISHED"] * 4
    grid = {(r.data.params["seed"], r.data.params["optimizer.d.learning_rate"]) for r in children}
    per_job = max(1, len(os.sched_getaffinity(0)) // 2)  # cores // n_jobs
    assert grid == {("0", "0.001"), ("0", "0.0005"), ("1", "0.001"), ("1", "0.0005")}
    for r in children:
        assert f"seed={r.data.params['seed']}" in r.data.tags["overrides"]
        # intra-op: the cores shared by 2 workers; inter-op: gaussian1d's own 1 (an explicit value wins)
        assert r.data.tags["tf.threads"] == f"{per_job}/1"  # the warm-up's imports left the thread pools unset
        assert len(metric_history(client, r.info.run_id, "train/d_loss")) == 3
    # The workers warmed as the sweep started (sweep.warm_workers) ran the jobs: joblib reused them.
    assert any(r.data.tags.get("sweep.warm_worker") == "true" for r in children)
    # The two workers trained at the same time: some jobs' [start, end] overlap.
    spans = sorted((r.info.start_time, r.info.end_time) for r in children)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    check_best(parent, children)


def test_optuna_trial_that_diverges_reports_the_penalty_and_the_study_completes(tmp_path, migrated_db):
    # The grid sampler visits each learning rate once: the 1e30 trial diverges at its first step.
    proc, client, sweep_dir = multirun(
        tmp_path,
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        "optimizer.d.learning_rate=choice(1e30,1e-3,5e-4)",
        db=migrated_db,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # the study completed, but one of its trials failed
    assert "sweep: 3 jobs, 2 finished, 1 failed; best: job #" in proc.stdout, proc.stdout[-2000:]
    parent, children = sweep_runs(client, sweep_dir)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.sweeper"] == "OptunaSweeper"
    by_lr = {r.data.params["optimizer.d.learning_rate"]: r for r in children}
    assert set(by_lr) == {"1e+30", "0.001", "0.0005"}
    diverged = by_lr.pop("1e+30")
    assert diverged.info.status == "FAILED" and diverged.data.tags["divergence"] == "step 1"
    assert "Diverged" in diverged.data.tags["error"]
    assert all(r.info.status == "FINISHED" for r in by_lr.values())
    check_best(parent, children)
    # Optuna got finite values (the penalty for the diverged trial) and picked the same best.
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert math.isfinite(result["best_value"]) and result["best_value"] < 1e6
    assert result["best_value"] == pytest.approx(parent.data.metrics["sweep/best_objective"])


def test_submitit_local_launcher_runs_two_jobs(tmp_path, migrated_db):
    proc, client, sweep_dir = multirun(
        tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0,1", db=migrated_db
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = sweep_runs(client, sweep_dir)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.launcher"] == "LocalLauncher"
    assert [r.info.status for r in children] == ["FINISHED"] * 2
    assert [r.data.params["seed"] for r in children] == ["0", "1"]
    assert list((sweep_dir / ".submitit").iterdir())  # submitit's own job folders
    check_best(parent, children)


@pytest.fixture
def ray_head():
    """A Ray cluster of the test's own on 127.0.0.1: `ray start --head --block` in a process group
    of its own (its GCS, raylet and workers), stopped by that group's id afterwards. Yields the
    address for RAY_ADDRESS. Its temp dir is short: Ray's unix sockets allow ~107 characters."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    log_path = temp / "ray-start.log"
    # 2 CPUs: two jobs at once, 1 TensorFlow thread each; a small object store (the jobs pass none)
    args = ["--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--object-store-memory=100000000"]
    args += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    with open(log_path, "w") as log_file:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log_path.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        # SIGKILL to the whole group: ray start's own stop on SIGTERM takes ~33 s; the group is every
        # process of this cluster, so none outlives the test (checked, by the temp dir they all name)
        running = live_processes_naming(temp)  # the check below can see them: GCS, raylet, workers
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=60)
        deadline = time.monotonic() + 10
        while (left := live_processes_naming(temp)) and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
        assert len(running) >= 2 and not left, f"Ray processes outlived the test: {left} (of {running})"


def live_processes_naming(text: Path) -> list[str]:
    """Command lines of the live (not zombie) processes whose arguments contain `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if str(text) in cmdline:
            found.append(cmdline)
    return found


def test_ray_cluster_launcher_runs_two_jobs_on_a_local_ray_cluster(tmp_path, migrated_db, ray_head):
    proc, client, sweep_dir = multirun(
        tmp_path, "hydra/launcher=ray_cluster", "seed=0,1", db=migrated_db, env={"RAY_ADDRESS": ray_head}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the sweep joined the test's cluster (no local Ray of its own)
    assert f"Using address {ray_head} set in the environment variable RAY_ADDRESS" in proc.stderr, proc.stderr
    assert "Connected to Ray cluster" in proc.stderr and "Started a local Ray instance" not in proc.stderr
    # the workers (started by the cluster's raylet, not by the CLI) got the parent run id through
    # Ray's runtime_env: sweep_runs checks every job is nested under the sweep's parent
    parent, children = sweep_runs(client, sweep_dir)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.launcher"] == "RayLauncher"
    assert [r.info.status for r in children] == ["FINISHED"] * 2
    assert [r.data.params["seed"] for r in children] == ["0", "1"]
    for r in children:
        assert r.data.tags["tf.threads"] == "1/1"  # ray_remote_args.num_cpus
        assert len(metric_history(client, r.info.run_id, "train/d_loss")) == 3
    (first, second) = sorted((r.info.start_time, r.info.end_time) for r in children)
    assert second[0] < first[1]  # two Ray workers trained at the same time
    check_best(parent, children)


def test_slurm_launcher_renders_the_sbatch_script_it_would_submit(tmp_path):
    """No cluster here: the real CLI, Hydra config and submitit executor run up to `sbatch`, which
    is a stand-in on PATH that records its argument and refuses (so nothing is ever submitted,
    even where SLURM exists; `srun` too). The script it was handed is what a cluster would run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch-calls"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "no cluster here" >&2\nexit 1\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit checks it is on PATH; never run here
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    sweep_dir = tmp_path / "multirun"
    proc = run_cli(
        [
            "-m",
            "tracking=none",
            f"hydra.sweep.dir={sweep_dir}",
            *TINY,
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=30",
            "hydra.launcher.cpus_per_task=3",
            "hydra.launcher.gpus_per_node=1",
            "hydra.launcher.mem_gb=8",
            "hydra.launcher.setup=[source /opt/gan/.venv/bin/activate]",
            "seed=0,1",
        ],
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert proc.returncode == 1 and "no cluster here" in proc.stderr, proc.stderr[-3000:]
    (script,) = calls.read_text().split()  # one sbatch call: the 2 jobs as one job array
    text = Path(script).read_text()
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", text, re.M))
    assert {k: flags.get(k) for k in ("partition", "time", "cpus-per-task", "gpus-per-node", "mem", "nodes")} == {
        "partition": "gpu",
        "time": "30",
        "cpus-per-task": "3",
        "gpus-per-node": "1",
        "mem": "8GB",
        "nodes": "1",
    }
    assert flags["array"] == "0-1%2" and flags["ntasks-per-node"] == "1"
    assert "\n# setup\nsource /opt/gan/.venv/bin/activate\n" in text
    # the job command: this venv's python runs submitit's entry point on the sweep's .submitit folder,
    # which unpickles the launcher and calls gan_runner's task function with each job's overrides
    command = text.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"srun --unbuffered --output \S+ --error \S+ {re.escape(sys.executable)} -u -m submitit\.core\._submit "
        rf"{re.escape(str(sweep_dir / '.submitit'))}/%j",
        command,
    ), command
    from submitit.core.utils import DelayedSubmission

    from gan_runner.__main__ import main as cli_main

    pickles = sorted((sweep_dir / ".submitit").rglob("*.pkl"))
    jobs = [DelayedSubmission.load(p) for p in pickles]
    assert len(jobs) == 2
    for job in jobs:
        launcher = job.function
        assert type(launcher).__name__ == "SlurmLauncher"
        # `python -m gan_runner` pickles its task function by value: the code of gan_runner's main
        assert launcher.task_function.__code__.co_code == inspect.unwrap(cli_main).__code__.co_code
        assert launcher.config.hydra.launcher.partition == "gpu"
    assert sorted(job.args[2] for job in jobs) == [0, 1]  # job numbers
    assert sorted(next(o for o in job.args[0] if o.startswith("seed=")) for job in jobs) == ["seed=0", "seed=1"]


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory, migrated_db):
    """One process (basic launcher): seeds 0, 1, 0 each with a good learning rate and one that
    diverges at step 1 (a bad value in the config would stop the sweep before it starts)."""
    tmp_path = tmp_path_factory.mktemp("basic")
    proc, client, sweep_dir = multirun(tmp_path, "seed=0,1,0", "optimizer.d.learning_rate=1e-3,1e30", db=migrated_db)
    assert proc.returncode == 1, proc.stderr[-3000:]  # jobs failed: the sweep is no success
    return proc, client, *sweep_runs(client, sweep_dir)


def test_a_failing_job_fails_only_itself_and_the_sweep_says_so(basic_sweep):
    proc, client, parent, children = basic_sweep
    assert parent.info.status == "FINISHED"
    assert [r.info.status for r in children] == ["FINISHED", "FAILED"] * 3
    for r in children[1::2]:
        assert "Diverged" in r.data.tags["error"] and "optimizer.d.learning_rate=1e+30" in r.data.tags["overrides"]
    check_best(parent, children)
    best = parent.data.tags["sweep.best_run_id"]
    (best_job,) = [r.data.tags["hydra.job.num"] for r in children if r.info.run_id == best]
    value = parent.data.metrics["sweep/best_objective"]
    # The summary printed at the end: jobs finished / failed, the best job and its objective, where.
    assert (
        f"sweep: 6 jobs, 3 finished, 3 failed; best: job #{best_job} ({parent.data.tags['sweep.best_run_name']}) "
        f"{OBJECTIVE} (min) = {value:.6g}\n  parent run {parent.info.run_id} in sqlite:///"
    ) in proc.stdout, proc.stdout


def test_same_seed_twice_in_one_process_logs_identical_metrics(basic_sweep):
    proc, client, parent, children = basic_sweep
    first, other, again = children[0], children[2], children[4]
    assert (first.data.params["seed"], other.data.params["seed"], again.data.params["seed"]) == ("0", "1", "0")
    for key in ("train/d_loss", "train/g_loss", "train/d_acc", OBJECTIVE, "eval/mean"):
        assert metric_history(client, first.info.run_id, key) == metric_history(client, again.info.run_id, key), key
    assert metric_history(client, first.info.run_id, "train/d_loss") != metric_history(
        client, other.info.run_id, "train/d_loss"
    )


def test_a_tracking_none_sweep_prints_the_same_summary_and_fails_when_a_job_fails(tmp_path):
    """No store to count the jobs in: the jobs' outcome files give the summary and exit status a
    tracking=mlflow sweep has. A job fails by raising or by a divergence answered with the penalty."""
    sweep_dir = tmp_path / "multirun"
    proc = run_cli(
        [
            "-m",
            "tracking=none",
            f"hydra.sweep.dir={sweep_dir}",
            *TINY,
            "optimizer.d.learning_rate=1e-3,1e30",
            "on_divergence=raise,penalty",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # jobs failed: the sweep is no success
    finished = dict(re.findall(r"gan_runner: finished '(.+)' \(tracking=none\): eval/kl_target=(\S+)", proc.stdout))
    assert len(finished) == 2, proc.stdout[-3000:]
    summary = re.search(
        r"sweep: 4 jobs, 2 finished, 2 failed; best: job #(\d) \((.+)\) eval/kl_target \(min\) = (\S+)\n"
        r"  job folders in (.+) \(tracking=none: no MLflow store\)",
        proc.stdout,
    )
    assert summary, proc.stdout[-3000:]
    job, best_name, best_value, where = summary.groups()
    # the two finished jobs differ only in on_divergence: the same objective, either may be named
    assert finished[best_name] == best_value == min(finished.values(), key=float) and where == str(sweep_dir)
    assert "optimizer.d.learning_rate=0.001" in yaml.safe_load(
        (sweep_dir / job / ".hydra" / "overrides.yaml").read_text()
    )


def test_fail_fast_stops_the_sweep_at_the_first_failure(tmp_path, migrated_db):
    proc, client, sweep_dir = multirun(
        tmp_path, "sweep.fail_fast=true", "optimizer.d.learning_rate=1e30,1e-3", db=migrated_db
    )
    assert proc.returncode == 1
    assert "job #0 failed (Diverged: " in proc.stderr and "sweep.fail_fast=true" in proc.stderr
    parent, children = sweep_runs(client, sweep_dir)
    assert parent.info.status == "FAILED"
    assert [r.info.status for r in children] == ["FAILED"]  # job #1 never started
    assert not (sweep_dir / "1").exists()


def test_sweep_end_marks_a_child_left_running_killed(tmp_path, migrated_db):
    # A joblib worker terminated mid-job (fail_fast) leaves its run RUNNING; the sweep's end closes it.
    shutil.copyfile(migrated_db, tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    cfg = compose_cfg([f"tracking.uri={store}"])
    uri, parent_id = tracking.start_parent_run(cfg.tracking, "sweep", {"sweep.role": "parent"})
    exp = client.get_run(parent_id).info.experiment_id
    orphan = client.create_run(exp, tags={tracking.PARENT_TAG: parent_id}).info.run_id
    summary = tracking.finish_parent_run(uri, parent_id, OBJECTIVE, "min")
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(parent_id).info.status == "FINISHED"
    assert summary["sweep.n_jobs"] == "1" and "sweep.best_run_id" not in summary


# ---- named sweeps compose (cheap: no training) ----------------------------------------------


def compose_with_hydra(overrides: list[str]):
    return compose(overrides, hydra=True)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_validates(name):
    cfg = compose_with_hydra([f"experiment={name}"])
    compose_cfg([f"experiment={name}"])  # validation
    params = cfg.hydra.sweeper.get("params") or {}
    if name.endswith(("_grid", "_optuna")):  # a named sweep: `-m experiment=<name>` runs its space
        assert params, name


def test_lr_grid_experiment_sweeps_learning_rates_and_seeds():
    cfg = compose_with_hydra(["experiment=gaussian1d_lr_grid"])
    assert cfg.model.name == "gaussian1d"
    # the jobs as Hydra's basic sweeper expands the grid: the README's 3 D x 2 G rates x 3 seeds
    from itertools import product

    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = cfg.hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    (jobs,) = BasicSweeper.split_arguments(overrides, None)
    assert sorted(tuple(job) for job in jobs) == sorted(
        (f"optimizer.d.learning_rate={d}", f"optimizer.g.learning_rate={g}", f"seed={seed}")
        for d, g, seed in product(("0.002", "0.001", "0.0005"), ("0.001", "0.0005"), (0, 1, 2))
    )
    assert len(jobs) == 18


@pytest.mark.parametrize(
    "name,model,direction", [("gaussian1d_optuna", "gaussian1d", "minimize"), ("dcgan_optuna", "dcgan", None)]
)
def test_optuna_searches_compose(name, model, direction):
    cfg = compose_with_hydra([f"hparams_search={name}"])
    assert cfg.model.name == model
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.storage is None and sweeper.params
    assert sweeper.direction == {"min": "minimize", "max": "maximize"}[cfg.objective_mode]
    if direction:
        assert sweeper.direction == direction
    compose_cfg([f"hparams_search={name}"])  # validation


@pytest.mark.parametrize(
    "name,target,values",
    [
        ("parallel", "JoblibLauncher", {"n_jobs": 2, "backend": "loky"}),
        ("slurm", "SlurmLauncher", {"cpus_per_task": 4, "gpus_per_node": 0, "timeout_min": 60, "partition": None}),
        ("ray_cluster", "RayLauncher", {"address": None, "n_jobs": -1, "batch_size": 1}),
    ],
)
def test_launcher_configs_compose(name, target, values):
    launcher = compose_with_hydra([f"hydra/launcher={name}"]).hydra.launcher
    assert launcher._target_.endswith(target)
    assert {k: launcher[k] for k in values} == values


def test_planned_jobs_are_the_grid_or_cover_every_swept_value():
    # A basic sweep: the config's params and the command line (which wins for a key), as a grid.
    jobs = sweep.planned_jobs(
        ["seed=0,1", "train_steps=30"], {"seed": "5,6,7", "optimizer.d.learning_rate": "1e-3,5e-4"}, grid=True
    )
    assert sorted(map(sorted, jobs)) == sorted(
        sorted([f"seed={s}", f"optimizer.d.learning_rate={lr}", "train_steps=30"])
        for s in (0, 1)
        for lr in (0.001, 0.0005)
    )
    # A search: each value of each key once (an interval at both ends), the others at their first.
    jobs = sweep.planned_jobs(["model.hidden=choice(8,16,32)"], {"labels.real": "interval(0.8, 1.0)"}, grid=False)
    assert jobs == [
        ["labels.real=0.8", "model.hidden=8"],
        ["labels.real=1.0", "model.hidden=8"],
        ["labels.real=0.8", "model.hidden=16"],
        ["labels.real=0.8", "model.hidden=32"],
    ]
    # A grid too large to check job by job is covered the same way.
    big = sweep.planned_jobs([f"seed=range(0,{sweep.MAX_CHECKED_JOBS + 1})"], {}, grid=True)
    assert len(big) == sweep.MAX_CHECKED_JOBS + 1 and big[0] == ["seed=0"]
    assert (
        len(sweep.planned_jobs(["seed=range(0,10)", "labels.real=0.8,0.9,1.0", "labels.fake=0,0.1"], {}, grid=True))
        == 60
    )
    big = sweep.planned_jobs(["seed=range(0,11)", "labels.real=0.8,0.9,1.0", "labels.fake=0,0.1"], {}, grid=True)
    assert len(big) == 1 + 10 + 2 + 1  # 66 jobs: each of the 11 + 3 + 2 values once

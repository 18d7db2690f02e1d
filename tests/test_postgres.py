"""A team's store, for real: a PostgreSQL server (Debian's `postgresql`: initdb in a temp folder,
pg_ctl on a free loopback port, started and stopped here), and
  1. `mlflow server --backend-store-uri postgresql://... --serve-artifacts` that a 4-job parallel
     sweep logs into over HTTP (the README's team set-up), everything read back through the server;
  2. tracking.uri=postgresql://... straight into the database, no server.

Needs the postgresql package (`make test` installs it when run as root and missing) and the
driver (`pip install -e .[postgres]`, part of the dev extra). As root, PostgreSQL (which refuses
to run as root) runs as the `postgres` system user the package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from conftest import SWEEP_1D, require, run_cli
from gan_runner import ui

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))  # Debian: one folder per major version
OBJECTIVE = "eval/kl_target"


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1:<free port> (trust auth for user `gan`, no
    fsync: a test's data need not survive a power cut); always stopped and removed afterwards.
    Yields `url` (postgresql://gan@127.0.0.1:port) and `createdb(name)` -> the database's URI."""
    require(bool(PG_BIN), "no PostgreSQL binaries in /usr/lib/postgresql/*/bin: apt-get install postgresql")
    import psycopg

    bin_dir = Path(PG_BIN[-1])
    folder = Path(tempfile.mkdtemp(prefix="gan_runner-pg-"))  # not under pytest's 0700 root-only tmp
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", ui.free_port()

    def pg(*args: str) -> None:
        proc = subprocess.run([*_as_postgres(), *args], cwd=folder, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])

    started = time.monotonic()
    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "gan", "-A", "trust", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start")
    print(f"postgres {bin_dir.parent.name}: initdb + start {time.monotonic() - started:.1f} s")
    url = f"postgresql://gan@127.0.0.1:{port}"

    def createdb(name: str) -> str:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{url}/{name}"

    try:
        yield SimpleNamespace(url=url, createdb=createdb)
    finally:
        subprocess.run(
            [*_as_postgres(), str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            cwd=folder,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """The README's team server: `mlflow server` over a PostgreSQL database, serving artifacts
    from a folder of its own; stopped (the whole process group) afterwards."""
    artifacts = tmp_path_factory.mktemp("served_artifacts")
    port = ui.free_port()
    database = postgres.createdb("mlflow")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        database,
        "--artifacts-destination",
        str(artifacts),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = tmp_path_factory.mktemp("server_log") / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        ui.wait_until_up(url, process, timeout_s=180)
        print(f"mlflow server on postgres up in {time.monotonic() - started:.1f} s")
        yield SimpleNamespace(url=url, artifacts=artifacts)
    finally:
        ui.end_group(process, signal.SIGTERM)


def _steps(client, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, OBJECTIVE))


def _runs(client) -> list:
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)


def test_a_parallel_sweep_logs_into_a_postgres_backed_server(server, tmp_path):
    from mlflow.tracking import MlflowClient

    started = time.monotonic()
    proc = run_cli(
        [
            "-m",
            "hydra/launcher=parallel",
            f"tracking.uri={server.url}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
            *SWEEP_1D,
            "seed=1,2,3,4",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"4-job parallel sweep into the server: {time.monotonic() - started:.1f} s")
    client = MlflowClient(tracking_uri=server.url)
    runs = _runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: int(r.data.params["seed"]),
    )
    assert [r.data.params["seed"] for r in children] == ["1", "2", "3", "4"]
    assert {r.info.status for r in runs} == {"FINISHED"}  # nothing left RUNNING
    assert len(runs) == 5 and parent.data.tags["sweep.launcher"] == "JoblibLauncher"
    for run in children:  # metrics at their steps, the config and the KDE plots, through the server
        assert _steps(client, run.info.run_id) == [15, 30]
        back = tmp_path / run.info.run_id
        plot = client.download_artifacts(run.info.run_id, "plots/kde_step0000030.png", str(back))
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.size == (600, 400)
        config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(back))).read_text()
        assert f"seed: {run.data.params['seed']}" in config
        # served artifacts: the files are in the server's folder, not in the job's working dir
        assert list(server.artifacts.rglob(f"{run.info.run_id}/artifacts/plots/kde_step0000030.png"))
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    best = min(children, key=lambda r: r.data.metrics[OBJECTIVE])
    assert parent.data.tags["sweep.best_run_id"] == best.info.run_id
    assert parent.data.metrics["agg/all/eval/kl_target_n"] == 4
    # the printed links point at this server, in the Model-training workspace
    exp = parent.info.experiment_id
    assert f"its jobs by {OBJECTIVE} (min): {server.url}/#/experiments/{exp}/runs?" in proc.stdout


def test_tracking_uri_postgresql_straight_into_the_database(postgres, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = postgres.createdb("direct")
    started = time.monotonic()
    proc = run_cli([f"tracking.uri={uri}", *SWEEP_1D, "seed=5"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"one run straight into postgres: {time.monotonic() - started:.1f} s")
    client = MlflowClient(tracking_uri=uri)
    (run,) = _runs(client)
    assert run.info.status == "FINISHED" and run.data.params["seed"] == "5"
    assert _steps(client, run.info.run_id) == [15, 30]
    plot = client.download_artifacts(run.info.run_id, "plots/kde_step0000030.png", str(tmp_path / "back"))
    with Image.open(plot) as image:
        assert image.size == (600, 400)
    # no server: MLflow puts a database store's artifacts under ./mlruns of the process that
    # created the experiment (README: for a team, the server above serves them instead)
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.artifact_location == str(tmp_path / "mlruns" / "1")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"

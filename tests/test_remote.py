"""Remote tracking: a real `mlflow server` (SQLite backend, artifacts served by the server) on a
free loopback port, a tiny run with tracking.uri=http://127.0.0.1:PORT, and everything read
back through the server: the run, its metrics and its PNG artifact. The server is stopped after.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from conftest import TINY_1D, compose_cfg, metric_history

START_TIMEOUT_S = 120  # the server imports MLflow and migrates a fresh SQLite store first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`mlflow server` in its own process group; yields (uri, artifacts folder, backend db)."""
    port, artifacts, db = free_port(), tmp_path / "server-artifacts", tmp_path / "server.db"
    log = open(tmp_path / "server.log", "w")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--artifacts-destination",
            str(artifacts),
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health in time"
            time.sleep(0.5)
        yield uri, artifacts, db
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn/gunicorn workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_run_metrics_and_image_read_back_through_the_server(server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from gan_runner import train

    uri, artifacts, db = server
    monkeypatch.chdir(tmp_path)  # nothing may be written beside the client but checkpoints
    overrides = [f"tracking.uri={uri}", f"checkpoint.dir={tmp_path / 'ckpt'}", *TINY_1D]
    objective = train.run(compose_cfg(overrides), overrides)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("gaussian1d")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # stored by the server, not the client
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["eval/kl_target"] == pytest.approx(objective)
    assert [s for s, _ in metric_history(client, run.info.run_id, "train/d_loss")] == [10, 20, 30, 40, 50, 60]
    assert run.data.params["train_steps"] == "60"

    plots = [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    assert "plots/kde_step0000060.png" in plots
    local = client.download_artifacts(run.info.run_id, "plots/kde_step0000060.png", str(tmp_path / "down"))
    with Image.open(local) as image:
        assert image.format == "PNG" and image.size[0] > 100
    # The bytes live in the server's artifact store; the client's folder got none of them.
    stored = list(artifacts.rglob("kde_step0000060.png"))
    assert len(stored) == 1 and stored[0].read_bytes() == Path(local).read_bytes()
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()
    assert db.is_file()


def test_file_store_runs_when_mlflow_is_told_to_allow_it(tmp_path, monkeypatch):
    """file: stores are refused in one line (test_bad_input) unless MLflow's own switch
    MLFLOW_ALLOW_FILE_STORE=true is set, which the refusal names: then the run works."""
    from mlflow.tracking import MlflowClient

    from gan_runner import train
    from gan_runner.config import ConfigError

    uri = f"file://{tmp_path / 'mlruns'}"
    overrides = [f"tracking.uri={uri}", f"checkpoint.dir={tmp_path / 'ckpt'}", *TINY_1D, "train_steps=20"]
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ConfigError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        train.run(compose_cfg(overrides), overrides)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    train.run(compose_cfg(overrides), overrides)
    (run,) = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("gaussian1d").experiment_id]
    )
    assert run.info.status == "FINISHED" and "train/d_loss" in run.data.metrics

"""`python -m gan_runner.ui` (`make ui`) without a browser: its options, the stores it refuses in
one line, and a real `mlflow server` that it starts, announces once it answers, and stops."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request

from gan_runner import ui


def _ui(args: list[str], cwd, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE")}
    return subprocess.run(
        [sys.executable, "-m", "gan_runner.ui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        **kwargs,
    )


def test_help_names_host_and_port():
    out = _ui(["--help"], cwd=None)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "--host" in text and "default: 127.0.0.1" in text
    assert "--port" in text and "$PORT" in text and "make ui PORT=" in text


def test_stores_the_ui_cannot_open_are_one_line_and_status_2(tmp_path):
    port = ui.free_port()  # nothing listens there
    cases = [(f"file://{tmp_path / 'mlruns'}", ["MLflow 3 refuses file: stores", "MLFLOW_ALLOW_FILE_STORE=true"])]
    for uri, module, package in (
        (f"postgresql://me@127.0.0.1:{port}/runs", "psycopg", "'psycopg[binary]'"),
        (f"mysql+pymysql://me@127.0.0.1:{port}/runs", "pymysql", "PyMySQL"),
    ):
        missing = importlib.util.find_spec(module) is None
        cases.append(
            (
                uri,
                [f"driver '{module}'", f"pip install {package}"]
                if missing
                else [f"no database server answers at 127.0.0.1:{port}"],
            )
        )
    for uri, words in cases:
        out = _ui(["--tracking-uri", uri, "--port", str(ui.free_port())], cwd=tmp_path)
        lines = out.stderr.splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("ui: --tracking-uri: "), out.stderr[
            -2000:
        ]
        assert all(w in lines[0] for w in words), (words, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_url_printed_once_the_server_answers_and_no_access_log(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment(
        "gaussian1d", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    port = ui.free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gan_runner.ui", "--tracking-uri", uri, "--port", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "MLflow UI: http://" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        # announced only once it answers: the first request after the line succeeds
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.status == 200
        for _ in range(3):
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10", timeout=10
            ).read()
        assert f"MLflow UI: http://127.0.0.1:{port}/#/experiments?" in log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it
        proc.wait(timeout=30)
    text = log.read_text()
    assert "MLflow UI stopped" in text
    assert "GET /" not in text and "HTTP/1.1" not in text, text[-3000:]  # no line per request
    assert text.count("MLflow UI: http://") == 1

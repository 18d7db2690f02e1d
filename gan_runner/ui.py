"""`make ui` (`python -m gan_runner.ui`): the MLflow UI over the store the runs write to.
`serve()` starts it in the background for the browser test and the README pictures, which
drive it with headless Chromium (tools/browser.py, not shipped).

The store is resolved exactly as the runner resolves it (tracking.resolve_uri: --tracking-uri,
else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db), so the UI shows what
`python -m gan_runner` wrote from the same folder.

`?workflowType=machine_learning` (ML_VIEW) opens the "Model training" side of the MLflow 3 UI
(runs, charts, artifacts) instead of the GenAI overview.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from gan_runner import tracking
from gan_runner.errors import EXIT_BAD_INPUT
from gan_runner.store import sqlite_missing

ML_VIEW = tracking.ML_VIEW  # "workflowType=machine_learning": the Model-training workspace


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Poll /health until the server answers; RuntimeError if it exits or stalls instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not answer at {url} within {timeout_s:.0f} s")


def end_group(process: subprocess.Popen, sig: int, timeout_s: float = 20) -> int:
    """Send `sig` to the process group led by `process` and wait until every process of the
    group has ended (uvicorn outlives the mlflow CLI by a moment); SIGKILL what is left then."""
    deadline = time.monotonic() + timeout_s
    try:
        os.killpg(process.pid, sig)
        while time.monotonic() < deadline:
            process.poll()
            os.killpg(process.pid, 0)  # ProcessLookupError once the group is empty
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.wait()


@contextmanager
def serve(
    cwd: Path, uri: str | None = None, port: int | None = None, timeout_s: float = 180, log: Path | None = None
) -> Iterator[str]:
    """`python -m gan_runner.ui` (what `make ui` runs) started from folder `cwd`, in the
    background; yields its URL once it answers and stops it with Ctrl-C afterwards. Without
    `uri` the store is found as `make ui` finds it there: $MLFLOW_TRACKING_URI is not passed on,
    so it is <cwd>/mlflow.db, where the runner writes by default."""
    port = port or free_port()
    command = [sys.executable, "-m", "gan_runner.ui", "--port", str(port)] + (["--tracking-uri", uri] if uri else [])
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(log or os.devnull, "w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process, timeout_s)
            yield url
        finally:  # Ctrl-C, as a terminal sends it to the group `make ui` runs in
            end_group(process, signal.SIGINT)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_runner.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", 5000)),
        help="port to listen on (default: $PORT, else 5000; with make: make ui PORT=8080)",
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (one is plenty for one person)")
    parser.add_argument("--access-log", action="store_true", help="print a line per HTTP request (default: off)")
    args = parser.parse_args()
    uri = tracking.resolve_uri(args.tracking_uri)
    if not uri.startswith(("sqlite:", "file:", "postgresql", "mysql", "mssql")):
        print(f"ui: {uri} is already an MLflow server: open it in a browser", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if sqlite_missing(uri):
        print(f"ui: no runs yet: {uri} does not exist (train something first, e.g. make run)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        tracking.check_store(uri)  # file: stores, missing database drivers: one line, not a traceback
    except tracking.ConfigError as err:
        print(f"ui: {str(err).replace('tracking.uri: ', '--tracking-uri: ', 1)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(run_server(uri, args.port, args.workers, args.host, args.access_log))


def run_server(uri: str, port: int, workers: int, host: str = "127.0.0.1", access_log: bool = False) -> int:
    """`mlflow server` in its own process group until it exits or this process gets Ctrl-C /
    SIGTERM; then SIGTERM for the whole group: uvicorn shuts down quietly (SIGINT reaching it
    straight from the terminal prints tracebacks). The URL is printed once the server answers."""
    # MLflow's job runner only serves GenAI features (judges, prompt optimization): not started.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    command = tracking.ui_command(uri, port, host, workers=workers, access_log=access_log)
    server = subprocess.Popen(command, env=env, start_new_session=True)
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM: the same clean stop; SIGINT even where
        signal.signal(sig, signal.default_int_handler)  # the shell started us with it ignored (cmd &)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        try:
            wait_until_up(f"http://{local}:{port}", server, timeout_s=180)
        except RuntimeError as err:
            print(f"ui: {err} (is port {port} taken? choose another: --port / make ui PORT=...)", file=sys.stderr)
            end_group(server, signal.SIGTERM)
            return 1
        base = f"http://{local}:{port}"
        # an experiment opened from MLflow's list falls back to its GenAI workspace: direct links
        links = "".join(f"  {name}: {url}\n" for name, url in tracking.experiment_links(uri, base))
        print(f"MLflow UI: {base}/#/experiments?{ML_VIEW}\n{links}  store: {uri}\n  Ctrl-C stops it", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        end_group(server, signal.SIGTERM)
        print("MLflow UI stopped", flush=True)
        return 0


if __name__ == "__main__":
    main()

"""The one place that talks to MLflow. Everything else hands a `Tracker` values.

`MlflowTracker` uses `MlflowClient` with an explicit run id (no global "active run"), so
several jobs in one process (Hydra's basic launcher) never log into each other's runs.
Metrics are buffered and sent with `log_batch` (one SQLite write costs ~6 ms; one per value
would dominate a 1-D run). Non-finite values are never sent: the UI cannot plot them.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def resolve_uri(uri: str | None) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else an absolute sqlite:///<cwd>/mlflow.db."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if "://" not in uri:  # a bare path means a SQLite file; make it absolute
        return f"sqlite:///{Path(uri).resolve()}"
    return uri


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """{'optimizer': {'d': {'learning_rate': 1e-3}}} -> {'optimizer.d.learning_rate': '0.001'}."""
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: "{}"}
    return {prefix[:-1]: str(node)}


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class NullTracker:
    """tracking=none: every call is accepted and nothing is written."""

    run_id: str | None = None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_params(self, params: dict[str, str]) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_figure(self, figure, artifact_file: str) -> None: ...
    def log_image(self, image: np.ndarray, key: str, step: int) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None: ...
    def flush(self) -> None: ...


class MlflowTracker(NullTracker):
    def __init__(self, client, run_id: str, flush_every_s: float):
        self.client, self.run_id = client, run_id
        self.flush_every_s = flush_every_s
        self._pending: list = []
        self._last_flush = time.monotonic()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if math.isfinite(v)]
        if len(self._pending) >= MAX_BATCH or time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self.client.log_batch(self.run_id, metrics=batch, synchronous=True)
        self._last_flush = time.monotonic()

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[i:i + 100], synchronous=True)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True)

    def log_figure(self, figure, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """uint8 only: MLflow rescales float images silently."""
        assert image.dtype == np.uint8, image.dtype
        self.client.log_image(self.run_id, image, key=key, step=int(step), synchronous=True)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)


def ensure_experiment(client, name: str, uri: str) -> str:
    """The experiment's id, creating it if needed. Safe when parallel jobs race to create it."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the DB, not in whatever cwd the job had
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextmanager
def open_run(tracking_cfg, run_name: str, tags: dict[str, str]) -> Iterator[NullTracker]:
    """A tracker for one run. The run ends FINISHED, KILLED on Ctrl-C, FAILED on any other
    exception (with the error as a tag), and its buffered metrics are flushed either way."""
    if tracking_cfg.name == "none":
        yield NullTracker()
        return
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(tracking_cfg.uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(client, tracking_cfg.experiment, uri)
    commit = git_commit()
    if commit:
        tags = {**tags, "mlflow.source.git.commit": commit}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    tracker = MlflowTracker(client, run.info.run_id, tracking_cfg.flush_every_s)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as err:
        tracker.set_tags({"error": f"{type(err).__name__}: {err}"[:5000]})
        raise
    finally:
        try:
            tracker.flush()
        finally:
            client.set_terminated(run.info.run_id, status)


def write_temp(name: str, data: bytes) -> Path:
    """A file in a fresh temp dir (for artifacts that must be files, e.g. weights)."""
    path = Path(tempfile.mkdtemp(prefix="gan_runner-")) / name
    path.write_bytes(data)
    return path

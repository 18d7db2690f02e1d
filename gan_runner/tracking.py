"""The one place that talks to MLflow. Everything else hands a `Tracker` values.

`MlflowTracker` uses `MlflowClient` with an explicit run id (no global "active run"), so
several jobs in one process (Hydra's basic launcher) never log into each other's runs.
Metrics are buffered and sent with `log_batch` (one SQLite write costs ~6 ms; one per value
would dominate a 1-D run). Non-finite values are never sent: the UI cannot plot them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gan_runner import faults
from gan_runner.errors import ConfigError
from gan_runner.store import artifact_root, cache_root, check_writable, resolve_uri, sqlite_file, sqlite_missing

MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
PROCESS_TAG = "gan_runner.process"  # host:pid of the process writing a RUNNING run
IMAGE_STEP = re.compile(r"\+step\+(\d+)\+timestamp\+")  # MLflow's images/<key>+step+<n>+timestamp+...


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
    def log_keras_model(self, model, name: str, inputs: np.ndarray, outputs: np.ndarray) -> None: ...
    def flush(self) -> None: ...


class LocalTracker(NullTracker):
    """tracking=none: no store, but the files a run would upload (its config, sample grids,
    plots, weights) are written under `folder`, laid out as a run's artifacts (weights/,
    plots/, images/<key>_step<step>.png, config.yaml). Metrics and params are not kept."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _file(self, artifact_file: str) -> Path:
        path = self.folder / artifact_file
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_figure(self, figure, artifact_file: str) -> None:
        figure.savefig(self._file(artifact_file))

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        from PIL import Image

        Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image).save(
            self._file(f"images/{key}_step{int(step):07d}.png")
        )

    def log_text(self, text: str, artifact_file: str) -> None:
        self._file(artifact_file).write_text(text)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        name = Path(local_path).name
        shutil.copyfile(local_path, self._file(f"{artifact_path}/{name}" if artifact_path else name))


class MlflowTracker(NullTracker):
    def __init__(self, client, run_id: str, flush_every_s: float):
        self.client, self.run_id = client, run_id
        self.flush_every_s = flush_every_s
        self._pending: list = []
        self._last_flush = time.monotonic()
        self._logged: dict[str, int] = {}  # key -> last step already in the store (resume)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [
            Metric(k, float(v), now, int(step))
            for k, v in metrics.items()
            if math.isfinite(v) and step > self._logged.get(k, -1)
        ]
        if len(self._pending) >= MAX_BATCH or time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def skip_logged(self, after_step: int) -> None:
        """On resume from the checkpoint at `after_step`: values the store already has past it (a
        kill -9 leaves some) are not sent again; the resumed run recomputes the same values for
        those steps. The store holds a prefix of each metric's values (batches go in order, each
        in one transaction), so the last stored step per key says what was sent. Sample grids
        past the checkpoint are deleted and re-made (a kill may have left one half written, and
        a second file for the same step would show twice in the UI's per-step image view)."""
        keys = self.client.get_run(self.run_id).data.metrics
        self._logged = {k: max(m.step for m in self.client.get_metric_history(self.run_id, k)) for k in keys}
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(self.client.get_run(self.run_id).info.artifact_uri)
        for item in self.client.list_artifacts(self.run_id, "images"):
            found = IMAGE_STEP.search(item.path)
            if found and int(found.group(1)) > after_step:
                repo.delete_artifacts(item.path)

    def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            faults.point("flush")
            self.client.log_batch(self.run_id, metrics=batch, synchronous=True)
        self._last_flush = time.monotonic()

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[i : i + 100], synchronous=True)

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

    def log_keras_model(self, model, name: str, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """`model` as an MLflow 3 LoggedModel of this run (`mlflow.keras.load_model("runs:/<id>/<name>")`),
        with a signature inferred from example (inputs, outputs): `input_example` is broken for
        Keras in MLflow 3. MLflow's model logging only links to the fluent active run (given a
        bare run_id it files the model under experiment 0), so the run is made active around
        the call, on this tracker's store; `open_run` sets the run's final status afterwards."""
        import mlflow
        from mlflow.models import infer_signature

        signature = infer_signature(inputs, outputs)
        # One model per name and run: one left half-logged by a kill, or logged by the run
        # before a resume extended it, is replaced.
        run = self.client.get_run(self.run_id)
        for old in self.client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{self.run_id}'"
        ):
            if old.name == name:
                self.client.delete_logged_model(old.model_id)
        faults.point("model")
        previous_uri = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.client.tracking_uri)
        try:
            with mlflow.start_run(run_id=self.run_id):
                mlflow.keras.log_model(model, name=name, signature=signature, pip_requirements=_pip_requirements())
        finally:
            mlflow.set_tracking_uri(previous_uri)


def _pip_requirements() -> list[str]:
    """Pinned from the installed versions: MLflow's inference would reload the model in a
    subprocess (importing TensorFlow again) just to find these."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("keras", "tensorflow-cpu", "tensorflow"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return out


def download_artifacts(tracking_cfg, run_id: str, path: str, dest: str | Path) -> Path:
    """Artifacts `path` of run `run_id` in the configured store, into `dest`. LookupError with
    one line when the run or the artifacts are not there."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(tracking_cfg.uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_run(run_id)
        return Path(client.download_artifacts(run_id, path, str(dest)))
    except MlflowException as err:
        raise LookupError(
            f"no run {run_id} with '{path}' artifacts in {uri} ({str(err).splitlines()[0][:200]})"
        ) from None


def ensure_store(uri: str) -> None:
    """A new SQLite store is made whole or not at all. MLflow creates its tables in some 50
    migration steps; a kill among them leaves a file that every later open refuses (`table
    _alembic_tmp_experiment_tags already exists`: found by tests/crash_harness.py). So it is built
    under a temporary name and hard-linked into place; a parallel job that got there first wins.
    The migrations run once per MLflow version, into a template in the cache (store_template);
    a new store is a copy of it (~2 CPU s and many fsyncs less: 12% of a default run)."""
    path = sqlite_file(uri)
    if path is None or path.exists():
        return
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a creation that was killed
        if not process_alive(f"{socket.gethostname()}:{stale.name.rsplit('-', 1)[-1]}"):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    template = store_template()
    if template is not None:
        shutil.copyfile(template, tmp)
    else:  # no writable cache: migrate this one
        _migrate(tmp)
    faults.point("store")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _migrate(path: Path) -> None:
    """MLflow's tables at its newest schema in a new SQLite file, made as MlflowClient makes
    them for an empty database (mlflow.store.db.utils._initialize_tables: create_all, then the
    alembic migrations; private, but the only entry point short of a client, and a client also
    adds the Default experiment, whose artifact location names the working dir of its
    creation). Opening a copy, MLflow's own checks pass (_all_tables_exist, _verify_schema
    against the head revision) and it adds the Default experiment for the copy's own place."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()


def store_template() -> Path | None:
    """The cache's migrated, empty SQLite store for this MLflow version (made on first use,
    atomically); None when the cache cannot be written."""
    import mlflow

    folder = cache_root()
    template = folder / f"mlflow-{mlflow.__version__}-empty.db"
    if template.is_file():
        return template
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = template.with_name(f".{template.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        _migrate(tmp)
        os.replace(tmp, template)  # a parallel job's identical template may be replaced: harmless
    except OSError:
        return None
    return template


def ensure_experiment(client, name: str, uri: str, about: dict[str, str] | None = None) -> str:
    """The experiment's id, creating it if needed. Safe when parallel jobs race to create it.
    `about` (experiment_about: model, data, objective, mode) makes it a Model-training
    experiment with a description and the runs view sorted by the objective (experiment_tags);
    tags an experiment lacks (made by an older version, or a new objective) are added."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        root = artifact_root(uri)  # artifacts beside the DB, not in whatever cwd the job had
        tags = experiment_tags(about) if about else {KIND_TAG: KIND}
        try:
            location = root.as_uri() if root else None
            return client.create_experiment(name, artifact_location=location, tags=tags)
        except MlflowException:
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    wanted = experiment_tags(about, found.tags.get(NOTE_TAG)) if about else {KIND_TAG: KIND}
    for key, value in wanted.items():
        # a description already there stays (the user may have written it)
        if found.tags.get(key) != value and not (key == NOTE_TAG and found.tags.get(key)):
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


# ---- the MLflow UI a GAN user lands in: Model training, the runs sorted by the objective ----
# MLflow 3.17's UI opens its GenAI workspace unless the URL says ?workflowType=machine_learning
# (its choice is kept in the browser's localStorage, GenAI by default; a click in the
# experiments list drops the URL's choice). Sort, filter and columns come from a "shared view":
# the experiment tag mlflow.sharedViewState.<key> (JSON of the search facets and the table's
# columns) that ?viewStateShareKey=<key> opens (read from the UI's bundle: experiment page's
# useSharedViewState; URL facets like orderByKey alone cannot add the objective's column).
ML_VIEW = "workflowType=machine_learning"
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the experiment's description in the UI
VIEW_TAG = "mlflow.sharedViewState."
OBJECTIVE_TAG = "gan_runner.objective"  # "<metric> (<min|max>)" of the newest run: make ui's links


def experiment_about(cfg) -> dict[str, str]:
    """What an experiment's tags are made from, out of a run's (validated) config."""
    return {
        "model": str(cfg.model.name),
        "data": str(cfg.data.name),
        "objective": str(cfg.objective),
        "mode": str(cfg.objective_mode),
    }


def experiment_tags(about: dict[str, str], note: str | None = None) -> dict[str, str]:
    objective, mode = about["objective"], about["mode"]
    better = "lower" if mode == "min" else "higher"
    description = note or (
        f"GAN runs of model **{about['model']}** on data **{about['data']}**, trained by gan_runner "
        f"(Keras 3, Hydra configs). Read **{objective}** ({better} is better): the runs table opened from "
        f"the links gan_runner prints is sorted by it. Sweeps are parent runs with their jobs nested; a "
        f"parent holds sweep/best_objective and agg/<group>/<metric>_mean, _std, _n over seeds."
    )
    return {
        KIND_TAG: KIND,
        NOTE_TAG: description,
        OBJECTIVE_TAG: f"{objective} ({mode})",
        VIEW_TAG + view_key(objective): view_state(objective, mode),
    }


def view_key(objective: str, sweep: str | None = None) -> str:
    """The shared view's key: the URL's viewStateShareKey and the tag's suffix."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"gan_runner_{objective}" + (f"_sweep_{sweep}" if sweep else ""))


def view_state(objective: str, mode: str, params: list[str] = (), search: str = "") -> str:
    """The runs table sorted by the objective (best first), its column shown first, then `params`."""
    columns = [f"metrics.`{objective}`", *(f"params.`{p}`" for p in params)]
    return json.dumps(
        {
            "searchFilter": search,
            "orderByKey": f"metrics.`{objective}`",
            "orderByAsc": mode == "min",
            "selectedColumns": columns,
        }
    )


def ui_base(uri: str) -> str:
    """Where the UI of store `uri` is: the server itself, else where `make ui` serves it."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"


def experiment_url(base: str, experiment_id: str, key: str | None = None) -> str:
    """The experiment's runs in the Model-training workspace, in the shared view `key`."""
    share = f"viewStateShareKey={key}&" if key else ""
    return f"{base}/#/experiments/{experiment_id}/runs?{share}{ML_VIEW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"


def run_links(uri: str, run_id: str, objective: str) -> tuple[str, str]:
    """(its experiment's runs sorted by `objective`, the run's page) in the Model-training UI."""
    experiment_id = get_run(uri, run_id).info.experiment_id
    base = ui_base(uri)
    return experiment_url(base, experiment_id, view_key(objective)), run_url(base, experiment_id, run_id)


def experiment_links(uri: str, base: str) -> list[tuple[str, str]]:
    """[(experiment name, its runs view URL)] of the experiments gan_runner made, newest first."""
    out = []
    for exp in _reader(uri).search_experiments(order_by=["last_update_time DESC"]):
        objective = exp.tags.get(OBJECTIVE_TAG, "").rsplit(" (", 1)[0]
        if objective:
            out.append((exp.name, experiment_url(base, exp.experiment_id, view_key(objective))))
    return out


def sweep_view(uri: str, parent_id: str, objective: str, mode: str) -> str:
    """A shared view of one sweep's jobs (sorted by the objective, the swept params as columns)
    on their experiment; returns its URL."""
    from gan_runner import seeds

    client = _reader(uri)
    children = find_runs(uri, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    params = [dict(r.data.params) for r in children]
    swept = seeds.setting_keys(params) + [k for k in seeds.SEED_PARAMS if len({p.get(k) for p in params}) > 1]
    experiment_id = client.get_run(parent_id).info.experiment_id
    key = view_key(objective, parent_id)
    client.set_experiment_tag(
        experiment_id, VIEW_TAG + key, view_state(objective, mode, swept, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    )
    return experiment_url(ui_base(uri), experiment_id, key)


# Python database drivers SQLAlchemy loads for MLflow's database stores -> what pip installs.
DB_DRIVERS = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "pymysql": "PyMySQL",
    "MySQLdb": "mysqlclient (or use mysql+pymysql:// and pip install PyMySQL)",
    "pyodbc": "pyodbc",
}
DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def check_store(uri: str, timeout_s: float = 3.0) -> None:
    """ConfigError, one line, when MLflow could not open the store `uri` (a resolved URI): a
    file: store (MLflow 3 refuses them unless MLFLOW_ALLOW_FILE_STORE=true), a database store
    whose Python driver is not installed or whose server does not answer, an HTTP server that
    does not answer (MLflow's client would retry for minutes). For the runner and the UI alike;
    imports SQLAlchemy at most (no MLflow, no TensorFlow)."""
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in ("true", "1"):
            raise ConfigError(
                f"tracking.uri: MLflow 3 refuses file: stores ({uri}); use a SQLite file, e.g. "
                f"tracking.uri=sqlite:///{Path.cwd() / 'mlflow.db'} (`mlflow migrate-filestore` "
                f"converts old runs), or set MLFLOW_ALLOW_FILE_STORE=true to use it anyway"
            )
    elif scheme in DB_PORTS:
        from sqlalchemy.engine import make_url

        url = make_url(uri)
        try:
            url.get_dialect().import_dbapi()
        except ImportError as err:
            package = DB_DRIVERS.get(err.name or "", err.name)
            raise ConfigError(
                f"tracking.uri: {parsed.scheme}:// needs the Python driver '{err.name}', which is not "
                f"installed: pip install {package}"
            ) from None
        if url.host:  # no host: a local socket, left to the driver
            port = url.port or DB_PORTS[scheme]
            _answers(url.host, port, timeout_s, f"no database server answers at {url.host}:{port}")
    elif scheme in ("http", "https"):
        _answers(
            parsed.hostname or "localhost",
            parsed.port or (443 if scheme == "https" else 80),
            timeout_s,
            f"no MLflow server answers at {uri}",
        )


def _answers(host: str, port: int, timeout_s: float, message: str) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        raise ConfigError(f"tracking.uri: {message} ({err.strerror or err})") from None


def check_weights_run(tracking_cfg, run_id: str) -> None:
    """weights.load=<run id>: the run is in the store and has weights (LookupError otherwise),
    found before TensorFlow loads; the store is never created for this."""
    uri = resolve_uri(tracking_cfg.uri)
    run = get_run(uri, run_id)
    if not [f for f in _reader(uri).list_artifacts(run_id, "weights") if f.path.endswith(".weights.h5")]:
        raise LookupError(f"run {run_id} in {uri} has no weights/ artifacts (its status: {run.info.status})")


def preflight(tracking_cfg, timeout_s: float = 3.0) -> None:
    """Fail in seconds, before TensorFlow loads and before any run exists, when the store
    cannot work (check_store) or is a SQLite file whose folder cannot be written."""
    if tracking_cfg.name == "none":
        return
    uri = resolve_uri(tracking_cfg.uri)
    parsed = urllib.parse.urlparse(uri)
    check_store(uri, timeout_s)
    if parsed.scheme == "sqlite" and sqlite_file(uri):
        folder = sqlite_file(uri).parent  # kept: the store is created in it next
        check_writable(folder, f"tracking.uri: cannot write the SQLite store in {folder}", keep_folders=True)


def _reopen(client, run_id: str, uri: str):
    """resume: the run the checkpoint belongs to, back to RUNNING (from KILLED, FAILED,
    FINISHED, or RUNNING when its process was killed -9: the resume takes it over)."""
    run = _get(client, run_id, uri)
    _refuse_if_alive(run)
    client.update_run(run_id, status="RUNNING")
    return run


def _get(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"resume: run {run_id} is not in {uri}; use the tracking.uri the run was logged to") from None


def process_alive(tag: str | None) -> bool:
    """Whether the process named by a PROCESS_TAG value still runs on this host (a zombie does not)."""
    host, _, pid = (tag or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(int(pid), 0)
            return True
        except OSError:
            return False


def _refuse_if_alive(run) -> None:
    tag = run.data.tags.get(PROCESS_TAG)
    if run.info.status == "RUNNING" and process_alive(tag):
        raise ConfigError(f"resume: run {run.info.run_id} is still being written by process {tag}; stop it first")


def run_state(tracking_cfg, run_id: str) -> tuple[str, dict[str, float]]:
    """(status, latest metrics) of a run in the configured store, before anything changes it."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(tracking_cfg.uri)
    run = _get(MlflowClient(tracking_uri=uri), run_id, uri)
    return run.info.status, dict(run.data.metrics)


def end_orphan(tracking_cfg, run_id: str) -> str | None:
    """A run whose process died before it wrote a checkpoint: RUNNING -> KILLED (unless its
    process still runs). Returns the run's status afterwards, None if the store has no such run."""
    from mlflow.exceptions import MlflowException

    try:
        client = _reader(resolve_uri(tracking_cfg.uri))  # a bad resume= never creates a store
        run = client.get_run(run_id)
    except (LookupError, MlflowException):  # no store, or no such run in it
        return None
    _refuse_if_alive(run)
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, "KILLED")
        return "KILLED"
    return run.info.status


@contextmanager
def open_run(
    tracking_cfg,
    run_name: str,
    tags: dict[str, str],
    run_id: str | None = None,
    after_step: int = -1,
    local_dir: Path | None = None,
    about: dict[str, str] | None = None,
) -> Iterator[NullTracker]:
    """A tracker for one run (a new one, or `run_id` continued by a resume from the checkpoint at
    `after_step`). The run ends
    FINISHED, KILLED on Ctrl-C / SIGTERM, FAILED on any other exception (the error as a tag,
    the traceback in error.log), and its buffered metrics are flushed either way.
    tracking=none: a LocalTracker writing into `local_dir` (a NullTracker without one).
    `about`: the experiment's tags (ensure_experiment)."""
    if tracking_cfg.name == "none":
        yield LocalTracker(local_dir) if local_dir else NullTracker()
        return
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(tracking_cfg.uri)
    ensure_store(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(client, tracking_cfg.experiment, uri, about)
    commit = git_commit()
    if commit:
        tags = {**tags, "mlflow.source.git.commit": commit}
    tags = {**tags, PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}
    if run_id:
        run = _reopen(client, run_id, uri)
    else:
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    tracker = MlflowTracker(client, run.info.run_id, tracking_cfg.flush_every_s)
    status = "FAILED"
    try:
        if run_id:
            tracker.set_tags({PROCESS_TAG: tags[PROCESS_TAG]})
            tracker.skip_logged(after_step)
        yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as err:
        tracker.set_tags({"error": f"{type(err).__name__}: {err}"[:5000]})
        try:
            tracker.log_text(traceback.format_exc(), "error.log")
        except Exception:  # the error itself matters more than its log
            pass
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


# ---- sweeps: one parent run per multirun, the jobs nested under it (see gan_runner.sweep) ----

PARENT_TAG = "mlflow.parentRunId"  # what the UI nests child runs by


def start_parent_run(
    tracking_cfg, run_name: str, tags: dict[str, str], about: dict[str, str] | None = None
) -> tuple[str, str]:
    """Create the store, the experiment and a RUNNING parent run; return (uri, run_id).

    Called once in the launching process before any job starts, so parallel jobs find the
    SQLite schema and the experiment already made (they race in migrations otherwise)."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(tracking_cfg.uri)
    ensure_store(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(client, tracking_cfg.experiment, uri, about)
    tags = {**tags, PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}
    return uri, client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def reopen_parent_run(tracking_cfg, token: str) -> tuple[str, str, str]:
    """sweep.resume=<parent run id | last>: that sweep's parent back to RUNNING; returns
    (uri, run_id, its sweep.dir tag). `last` is the newest parent in this store."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(tracking_cfg.uri)
    client = MlflowClient(tracking_uri=uri)
    if token == "last":
        parents = find_runs(uri, "tags.`sweep.role` = 'parent'")
        if not parents:
            raise ConfigError(f"sweep.resume=last: no sweep in {uri}")
        run = max(parents, key=lambda r: r.info.start_time)
    else:
        run = _get(client, token, uri)
        if run.data.tags.get("sweep.role") != "parent":
            raise ConfigError(f"sweep.resume={token}: run {token} in {uri} is not a sweep's parent run")
    _refuse_if_alive(run)
    client.update_run(run.info.run_id, status="RUNNING")
    client.set_tag(run.info.run_id, PROCESS_TAG, f"{socket.gethostname()}:{os.getpid()}")
    return uri, run.info.run_id, run.data.tags["sweep.dir"]


def delete_run(uri: str, run_id: str) -> None:
    """Soft-delete (MLflow's lifecycle 'deleted'): gone from searches and the UI, restorable."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).delete_run(run_id)


def find_runs(uri: str, filter_string: str) -> list:
    """Runs matching an MLflow filter, in any experiment (a sweep over `model` spans several)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiment_ids, filter_string=filter_string, max_results=50000)


def finish_parent_run(uri: str, parent_id: str, objective: str, mode: str, status: str = "FINISHED") -> dict[str, str]:
    """Write the sweep's summary on the parent (counts, best objective, best child) and end it.

    A parent that has already ended is left alone. Returns the summary tags."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if client.get_run(parent_id).info.status != "RUNNING":
        return {}
    children = find_runs(uri, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    # Every job has returned by now: a child still RUNNING lost its process (e.g. a joblib
    # worker terminated when a sweep.fail_fast sweep stopped); it ends KILLED, not RUNNING forever.
    orphans = [child.info.run_id for child in children if child.info.status == "RUNNING"]
    for run_id in orphans:
        client.set_terminated(run_id, "KILLED")
    if orphans:
        children = find_runs(uri, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    scored = [
        (r.data.metrics[objective], r)
        for r in children
        if r.info.status == "FINISHED" and math.isfinite(r.data.metrics.get(objective, math.nan))
    ]
    summary = {
        "sweep.n_jobs": str(len(children)),
        "sweep.n_finished": str(sum(r.info.status == "FINISHED" for r in children)),
        "sweep.n_failed": str(sum(r.info.status == "FAILED" for r in children)),
        "sweep.objective": f"{objective} ({mode})",
    }
    metrics = []
    if scored:
        value, best = (min if mode == "min" else max)(scored, key=lambda pair: pair[0])
        summary.update(
            {
                "sweep.best_run_id": best.info.run_id,
                "sweep.best_run_name": best.info.run_name,
                "sweep.best_job": best.data.tags.get("hydra.job.num", "?"),
                "sweep.best_value": f"{value:.6g}",
            }
        )
        metrics = [Metric("sweep/best_objective", value, int(time.time() * 1000), 0)]
    client.log_batch(parent_id, metrics=metrics, tags=[RunTag(k, v) for k, v in summary.items()], synchronous=True)
    client.set_terminated(parent_id, status)
    return summary


# ---- reading runs back and serving the UI (gan_runner.compare, gan_runner.ui) ----------------


def ui_command(uri: str, port: int, host: str = "127.0.0.1", workers: int = 1, access_log: bool = False) -> list[str]:
    """`mlflow server` over the store `uri` (the UI ignores $MLFLOW_TRACKING_URI: it must be told
    the store). Run artifacts are read from each experiment's own location (mlartifacts/ beside
    a SQLite file); uploads through the server land in the same folder. Without `access_log`
    uvicorn does not print a line per request (the UI makes dozens a page)."""
    import sys

    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        uri,
    ]
    command += [] if access_log else ["--uvicorn-opts", "--no-access-log"]
    root = artifact_root(uri)
    return command + (["--artifacts-destination", str(root)] if root else [])


def _reader(uri: str):
    """A client for a store that must already exist (reading never creates an empty SQLite file)."""
    from mlflow.tracking import MlflowClient

    if sqlite_missing(uri):
        raise LookupError(f"no MLflow store at {uri} (no such file)")
    # the Model Registry is the store's own: not whatever registry an earlier call in this
    # process left set (mlflow.set_registry_uri / the fluent API's context)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_runs(uri: str, name: str) -> list:
    """Every run of experiment `name`, newest first; LookupError naming the known experiments."""
    client = _reader(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise LookupError(f"no experiment '{name}' in {uri}; known: {known}")
    return client.search_runs([experiment.experiment_id], max_results=50000)


def get_run(uri: str, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return _reader(uri).get_run(run_id)
    except MlflowException:
        raise LookupError(f"no run {run_id} in {uri}") from None


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """[(step, value)] of one metric of one run, by step."""
    return sorted((m.step, m.value) for m in _reader(uri).get_metric_history(run_id, key))


def log_file(uri: str, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Add a file to a run's artifacts (also to a run that has ended, e.g. a sweep's parent)."""
    _reader(uri).log_artifact(run_id, str(path), artifact_path)


def artifact_files(uri: str, run_id: str, folder: str) -> list[str]:
    """Paths of the files directly inside artifact folder `folder` of a run."""
    return [f.path for f in _reader(uri).list_artifacts(run_id, folder) if not f.is_dir]


def fetch_artifact(uri: str, run_id: str, path: str, dest: str | Path) -> Path:
    return Path(_reader(uri).download_artifacts(run_id, path, str(dest)))


def load_keras_model(uri: str, run_id: str, name: str = "generator"):
    """The Keras model a run logged as the MLflow LoggedModel `name`; LookupError with one line
    when the run has none (tracking.log_model=false, or a run that did not end)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    run = get_run(uri, run_id)
    models = [
        m
        for m in _reader(uri).search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
        if m.name == name
    ]
    if not models:
        raise LookupError(f"run {run_id} logged no model '{name}' (tracking.log_model=false, or it did not end)")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.keras.load_model(f"models:/{models[0].model_id}")
    except MlflowException as err:
        raise LookupError(
            f"run {run_id}: its model '{name}' does not load ({str(err).splitlines()[0][:200]})"
        ) from None
    finally:
        mlflow.set_tracking_uri(previous)


def log_seed_aggregate(uri: str, parent_id: str) -> dict[str, float]:
    """On a sweep's parent: agg/<group>/<metric>_mean, _std, _n over its finished jobs, grouped
    by every param but the seed (gan_runner/seeds.py), for the eval/ and best/ metrics."""
    from mlflow.entities import Metric

    from gan_runner import seeds

    children = [r for r in find_runs(uri, f"tags.`{PARENT_TAG}` = '{parent_id}'") if r.info.status == "FINISHED"]
    values = seeds.aggregate([dict(r.data.params) for r in children], [dict(r.data.metrics) for r in children])
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in values.items()]
    client = _reader(uri)
    for i in range(0, len(metrics), 1000):  # MLflow's log_batch takes at most 1000 metrics
        client.log_batch(parent_id, metrics=metrics[i : i + 1000], synchronous=True)
    return values


def log_metrics_at(uri: str, run_id: str, values: list[tuple[int, dict[str, float]]]) -> None:
    """[(step, {name: value})] onto a run at those steps (also a run that has ended): a curve
    computed afterwards, e.g. `gan_runner.evaluate RUN --checkpoints`."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(step)) for step, named in values for k, v in named.items()]
    client = _reader(uri)
    for i in range(0, len(metrics), 1000):  # MLflow's log_batch takes at most 1000 metrics
        client.log_batch(run_id, metrics=metrics[i : i + 1000], synchronous=True)


# ---- the Model Registry: a run's generator as a version of a registered model ----------------

CHAMPION = "champion"  # the alias of the version whose run has the best objective so far
MODEL_URI = re.compile(r"models:/([^/@]+)(?:@([\w\-]+)|/(\d+))")  # models:/<name>@<alias> | /<version>


def register_model(uri: str, run_id: str, name: str, objective: str, mode: str) -> str:
    """The generator run `run_id` logged (its LoggedModel 'generator') as a new version of the
    registered model `name`, tagged with the objective, its value, the run id and the sha256 of
    the run's config.yaml. The alias `champion` moves to it when there is none yet or the value
    beats the champion's (strictly; same objective only): a worse run is kept as a version but
    does not take the alias. Returns one line saying what happened."""
    from mlflow.exceptions import MlflowException

    client = _reader(uri)
    run = get_run(uri, run_id)
    value = run.data.metrics.get(objective, math.nan)
    if not math.isfinite(value):
        raise LookupError(f"register {name}: run {run_id} has no finite {objective}")
    mine = f"source_run_id = '{run_id}'"
    logged = [
        m for m in client.search_logged_models([run.info.experiment_id], filter_string=mine) if m.name == "generator"
    ]
    if not logged:
        raise LookupError(f"register {name}: run {run_id} logged no generator (tracking.log_model=false)")
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # no progress bar in the run's output
    with tempfile.TemporaryDirectory() as tmp, _env(quiet):
        config = Path(client.download_artifacts(run_id, "config.yaml", tmp)).read_bytes()
    try:
        client.create_registered_model(
            name,
            description="GAN generators trained by gan_runner; the alias "
            f"'{CHAMPION}' is the version whose run has the best objective",
        )
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {
        "objective": objective,
        "objective_mode": mode,
        "value": repr(value),
        "run_id": run_id,
        "config_sha256": hashlib.sha256(config).hexdigest(),
    }
    model_id = logged[0].model_id
    with _fluent(uri):  # the registry looks the LoggedModel up through MLflow's global tracking URI
        version = client.create_model_version(
            name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
        ).version
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    done = f"registered models:/{name}/{version} ({objective}={value:.6g})"
    if champion is not None and champion.tags.get("objective") != objective:
        return (
            f"{done}; '{CHAMPION}' stays version {champion.version}: it was judged by "
            f"{champion.tags.get('objective')}, not {objective}"
        )
    if champion is not None:
        best = float(champion.tags["value"])
        if not (value < best if mode == "min" else value > best):
            return f"{done}; '{CHAMPION}' stays version {champion.version} ({objective}={best:.6g})"
    client.set_registered_model_alias(name, CHAMPION, version)
    return f"{done} as models:/{name}@{CHAMPION}"


@contextmanager
def _fluent(uri: str) -> Iterator[None]:
    """MLflow's global tracking and registry URIs set to `uri` for a call that reads them."""
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def register_run(uri: str, run_id: str, cfg) -> None:
    """tracking.register=<name> at the end of a run (or of a sweep, for its best job): one line
    either way; a run without a finite objective or a logged generator is not registered (and
    stays FINISHED)."""
    import sys

    try:
        line = register_model(uri, run_id, cfg.tracking.register, cfg.objective, cfg.objective_mode)
        print(line, flush=True)
    except LookupError as err:
        print(f"gan_runner: tracking.register: not registered: {err}", file=sys.stderr, flush=True)


def registered_version(uri: str, model_uri: str):
    """The ModelVersion that models:/<name>@<alias> or models:/<name>/<version> names."""
    from mlflow.exceptions import MlflowException

    found = MODEL_URI.fullmatch(model_uri)
    if not found:
        raise LookupError(f"{model_uri}: expected models:/<name>@<alias> or models:/<name>/<version>")
    name, alias, version = found.groups()
    try:
        client = _reader(uri)
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as err:
        reason = str(err).splitlines()[0][:200]
        raise LookupError(f"{model_uri}: not in the registry of {uri} ({reason})") from None


def load_registered(uri: str, model_uri: str):
    """(run id, the Keras generator) of a registered model version."""
    import mlflow

    version = registered_version(uri, model_uri)
    with _fluent(uri):
        return version.run_id, mlflow.keras.load_model(f"models:/{version.name}/{version.version}")

"""Shared fixtures: the real Hydra config, a real SQLite MLflow store in a temp dir, and a
helper that runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gan_runner.config import compose, validate

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("GAN_RUNNER_MNIST", ROOT.parent / "shared" / "datasets" / "mnist"))
# TensorFlow reads its oneDNN switch once per process and dcgan asks for oneDNN (trainer.onednn):
# one setting for this process and every subprocess, so runs compared bit for bit across
# processes load TensorFlow alike whichever test loads it first (test_dcgan unsets it on purpose).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
REQUIRE_ALL = "GAN_RUNNER_REQUIRE_ALL"  # =1 (CI): a test that would skip for want of a package fails


def require(found: bool, what: str) -> None:
    """Skip the test with one line naming what to install (`make test` installs it when run as
    root), or fail under GAN_RUNNER_REQUIRE_ALL=1: CI must run every test."""
    if found:
        return
    if os.environ.get(REQUIRE_ALL) == "1":
        pytest.fail(f"{what} ({REQUIRE_ALL}=1: this test must run)", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def fashion_mnist() -> Path:
    require(FASHION.is_dir(), f"no Fashion-MNIST in {FASHION}: apt-get install dataset-fashion-mnist")
    return FASHION


# A 1-D run small enough for a test: 60 steps, eval every 30, small eval sample.
TINY_1D = ["train_steps=60", "eval_every=30", "log_every=10", "plot_every=60", "eval.n_fake=2000"]


def compose_cfg(overrides: list[str]):
    """The real composed + validated config, as `python -m gan_runner <overrides>` would see it."""
    return validate(compose(overrides), overrides)


@pytest.fixture(scope="session", autouse=True)
def classifier_cache(tmp_path_factory) -> Path:
    """One digit-classifier cache per session (gan_runner/classifier.py, $GAN_RUNNER_CACHE): the
    default classifier is trained once and shared by every dcgan run, in this process and in
    subprocesses, and the user's ~/.cache is never touched. Set GAN_RUNNER_CACHE to keep one."""
    if os.environ.get("GAN_RUNNER_CACHE"):
        yield Path(os.environ["GAN_RUNNER_CACHE"])
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n: one cache for all workers of this session
        # (their shared temp folder; the cache file is written aside and renamed into place)
        shared = tmp_path_factory.getbasetemp().parent / "classifier_cache"
        shared.mkdir(exist_ok=True)
        os.environ["GAN_RUNNER_CACHE"] = str(shared)
    else:
        os.environ["GAN_RUNNER_CACHE"] = str(tmp_path_factory.mktemp("classifier_cache"))
    yield Path(os.environ["GAN_RUNNER_CACHE"])
    del os.environ["GAN_RUNNER_CACHE"]


def grouping_hook(here: Path):
    """pytest_collection_modifyitems for the tests in `here` (test_test_deps reuses it). `make test`
    runs the suite in parallel workers (pytest-xdist, --dist loadgroup). Tests that share one of
    our expensive session- or module-scoped fixtures (the filled store, the judge, a crash-test
    zygote, a trained sweep) go to one worker, so it is built once; the rest are spread. It must
    run before pytest-xdist's own hook, which reads the xdist_group marks."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(items) -> None:
        group_by_fixtures(items, here)

    return pytest_collection_modifyitems


pytest_collection_modifyitems = grouping_hook(Path(__file__).parent)


def group_by_fixtures(items, here: Path) -> None:
    """Mark each item that uses a session- or module-scoped fixture defined in `here` with an
    xdist_group: one per set of session fixtures, else one per module. pytest-xdist turns the mark
    into a node-id suffix, which pytest 9.2 ignores (pytest-xdist#1386): hence pytest<9.2 in
    pyproject.toml, and test_test_deps checks that a module fixture is built once."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        ours = {
            name: defs[-1].scope
            for name, defs in (info.name2fixturedefs.items() if info else ())
            if defs and Path(defs[-1].func.__code__.co_filename).parent == here and name != "classifier_cache"
        }
        session = sorted(name for name, scope in ours.items() if scope == "session")
        if session:
            item.add_marker(pytest.mark.xdist_group("session:" + "+".join(session)))
        elif "module" in ours.values():
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture
def store(tmp_path) -> str:
    """A fresh SQLite tracking URI in a temp dir."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


def cli_env(env: dict | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: this one's, quiet TensorFlow, no MLFLOW_TRACKING_URI
    (the store is always given as tracking.uri=), plus `env`."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return full_env


def run_cli(
    args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`python -m gan_runner <args>` in a subprocess, as a user would type it (`python_flags`:
    the interpreter's own, e.g. ("-X", "importtime"))."""
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "gan_runner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
    )


def all_runs(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


# A store as a user has it after a small sweep and one DCGAN run (test_compare, test_ui_browser).
SWEEP_1D = [
    "train_steps=30",
    "eval_every=15",
    "log_every=15",
    "plot_every=30",
    "eval.n_fake=1000",
    "checkpoint.every=0",
]
TINY_DCGAN = [
    "train_steps=4",
    "log_every=2",
    "eval_every=2",
    "sample_every=2",
    "batch.size=16",
    "data.n=256",
    "eval.n_fake=64",
    "model.g_filters=[16,8,8,1]",
    "model.d_filters=[8,8,16,16]",
    "tracking.log_model=false",
    "checkpoint.every=0",
]


@pytest.fixture(scope="session")
def filled_store(tmp_path_factory):
    """One SQLite store holding a real sweep (`-m seed=1,2`: a parent and 2 gaussian1d jobs) and
    one real DCGAN run on MNIST with sample grids at steps 2 and 4. The two commands run at the
    same time once the schema exists (creating it concurrently races in MLflow's migrations)."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from mlflow.tracking import MlflowClient

    assert (MNIST / "t10k-images-idx3-ubyte.gz").is_file(), f"no MNIST test digits in {MNIST} (set GAN_RUNNER_MNIST)"
    folder = tmp_path_factory.mktemp("filled_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()  # creates the schema
    sweep_dir = folder / "multirun"
    commands = [
        ["-m", f"tracking.uri={uri}", f"hydra.sweep.dir={sweep_dir}", *SWEEP_1D, "seed=1,2"],
        ["model=dcgan", f"data.path={MNIST}", f"tracking.uri={uri}", *TINY_DCGAN],
    ]
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda args: run_cli(args, cwd=folder), commands))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    (dcgan,) = [r for r in runs if r.data.tags.get("model") == "dcgan"]
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: r.data.params["seed"],
    )
    return SimpleNamespace(
        uri=uri,
        folder=folder,
        client=client,
        sweep_dir=sweep_dir,
        parent=parent,
        children=children,
        dcgan=dcgan,
        printed={"sweep": procs[0].stdout, "dcgan": procs[1].stdout},
    )  # the summaries' links

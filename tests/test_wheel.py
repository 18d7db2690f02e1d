"""The package installs from a wheel and runs from any folder: build the wheel, install it into a
fresh venv outside the repo, and run the `gan-runner` console script from an empty folder.

To stay cheap the venv gets the wheel only (--no-deps) and sees the dependencies already in the
repo's venv through a .pth file; gan_runner itself and its configs must come from the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin/, the wheel) with the wheel installed, built from this checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # A copy of the checkout (symlinks kept): setuptools builds in the source tree, and a stale
    # build/ there would put deleted modules into the wheel.
    source = tmp / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            "outputs",
            "multirun",
            "mlruns",
            "mlartifacts",
            "checkpoints",
            "*.db",
            ".bench",
        ),
    )
    # --no-build-isolation: setuptools from this venv (the machine may be offline)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("gan_runner-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # the dependencies: this venv's site-packages, after the new venv's own (so gan_runner is the wheel's)
    (_site_packages(python) / "repo_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin", wheel


def _run(bin_dir: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(bin_dir / "gan-runner"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_holds_every_module_and_every_config(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    # hydra_plugins/: our launcher plugins (Hydra instantiates launchers only from that namespace)
    modules = {str(p.relative_to(ROOT)) for top in ("gan_runner", "hydra_plugins") for p in (ROOT / top).rglob("*.py")}
    configs = {f"gan_runner/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert modules - names == set()  # a sub-package missing from pyproject's packages list
    assert configs - names == set()
    assert {f"gan_runner/conf/experiment/{p.name}" for p in (ROOT / "experiments").glob("*.yaml")} <= names
    assert not any(n.startswith(("tools/", "tests/")) for n in names)


def test_gan_runner_from_an_empty_folder_trains_helps_and_refuses_bad_input(installed, tmp_path):
    bin_dir, _ = installed
    here = tmp_path / "empty"
    here.mkdir()
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"

    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import gan_runner.config as c; print(c.__file__, c.CONF_DIR)"],
        cwd=here,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(bin_dir.parent) for p in where), where  # code and configs from the wheel

    trained = _run(
        bin_dir,
        [
            "train_steps=30",
            "eval_every=10",
            "log_every=10",
            "plot_every=30",
            "sample_every=30",
            "tracking.log_model=false",
            f"tracking.uri={store}",
        ],
        here,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    (run,) = MlflowClient(tracking_uri=store).search_runs(
        [MlflowClient(tracking_uri=store).get_experiment_by_name("gaussian1d").experiment_id]
    )
    assert run.info.status == "FINISHED" and "eval/kl_target" in run.data.metrics

    helped = _run(bin_dir, ["--help"], here)
    models = ", ".join(sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")))  # every model the checkout has
    assert helped.returncode == 0 and f"model: {models}" in helped.stdout, helped.stdout[-2000:]

    elsewhere = tmp_path / "another"
    elsewhere.mkdir()
    bad = _run(bin_dir, ["train_steps=-1"], elsewhere)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "train_steps" in bad.stderr, bad.stderr
    assert list(elsewhere.iterdir()) == []  # nothing left behind in the folder it ran in

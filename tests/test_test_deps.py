"""What `make test` needs from the system: .ci/test-deps installs it (root + apt-get) and is
silent when it is there; a test that lacks it skips naming the package, or fails in CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _pytest.outcomes import Failed, Skipped

from browser import find_chromium
from conftest import FASHION, REQUIRE_ALL, ROOT, require


def test_require_skips_naming_the_package_and_fails_under_require_all(monkeypatch):
    monkeypatch.delenv(REQUIRE_ALL, raising=False)
    require(True, "never said")
    with pytest.raises(Skipped, match="apt-get install chromium"):
        require(False, "apt-get install chromium chromium-driver")
    monkeypatch.setenv(REQUIRE_ALL, "1")
    with pytest.raises(Failed, match="apt-get install chromium chromium-driver .GAN_RUNNER_REQUIRE_ALL=1"):
        require(False, "apt-get install chromium chromium-driver")


def test_test_deps_is_silent_when_everything_is_there():
    try:
        find_chromium()
    except RuntimeError as err:
        require(False, str(err))
    require(FASHION.is_dir(), "apt-get install dataset-fashion-mnist")
    out = subprocess.run([str(ROOT / ".ci" / "test-deps")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


GROUPED_MODULE = """
import os, pytest

@pytest.fixture(scope="module")
def built():
    with open(os.environ["SETUP_LOG"], "a") as log:
        log.write("module {name} " + os.environ.get("PYTEST_XDIST_WORKER", "-") + "\\n")

@pytest.mark.parametrize("i", range(4))
def test_uses_it(built, i):
    pass

def test_free():
    pass

def test_uses_it_again(built):
    pass
"""


def test_tests_sharing_a_module_fixture_build_it_once_under_make_tests_workers(tmp_path):
    """`make test`'s options (-n 2 --dist loadgroup) with the suite's grouping hook: each module
    fixture is built on one worker, once. pytest 9.2 silently spreads the group (pytest-xdist#1386),
    which built each of the costliest fixtures twice (~4 minutes more per suite)."""
    (tmp_path / "conftest.py").write_text(
        "import importlib.util, pathlib\n"
        f"spec = importlib.util.spec_from_file_location('suite_conftest', {str(ROOT / 'tests' / 'conftest.py')!r})\n"
        "suite = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(suite)\n"
        "pytest_collection_modifyitems = suite.grouping_hook(pathlib.Path(__file__).parent)\n"
    )
    names = "abcd"
    for name in names:
        (tmp_path / f"test_{name}.py").write_text(GROUPED_MODULE.replace("{name}", name))
    log = tmp_path / "setups.log"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "SETUP_LOG": str(log)},
    )
    assert out.returncode == 0 and "24 passed" in out.stdout, out.stdout + out.stderr
    setups = log.read_text().splitlines()
    assert sorted(line.split()[1] for line in setups) == list(names), setups  # once per module
    assert {line.split()[2] for line in setups} == {"gw0", "gw1"}, setups  # and the modules spread

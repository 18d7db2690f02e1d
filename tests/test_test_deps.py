"""What `make test` needs from the system: .ci/test-deps installs it (root + apt-get) and is
silent when it is there; a test that lacks it skips naming the package, or fails in CI."""

from __future__ import annotations

import subprocess

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

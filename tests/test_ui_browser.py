"""The MLflow UI as a person sees it: `python -m gan_runner.ui` (what `make ui` runs) started in
the folder of a real store (conftest.filled_store: a sweep of 2 gaussian1d jobs and a DCGAN
run), driven by headless Chromium (Debian's chromium + chromium-driver, through selenium).

Checks: the sweep's parent run and, unfolded, its jobs are listed by name; a job's Model
metrics tab draws its metric charts; the DCGAN run's sample grid renders in its image chart and
as an artifact at its exact size; the KDE plot renders; Ctrl-C stops the UI. Screenshots go to
$GAN_RUNNER_SCREENSHOTS (a folder; default: the test's temp folder) for a person to look at.

Without Chromium the tests skip with the apt-get line to run (`make test` installs the packages
when run as root; under GAN_RUNNER_REQUIRE_ALL=1, as in CI, they fail instead);
`pytest -m "not browser"` leaves them out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REQUIRE_ALL, require
from gan_runner import ui


def _chromium_missing() -> str | None:
    try:
        ui.find_chromium()
    except RuntimeError as err:
        return str(err)
    return None


CHROMIUM_MISSING = _chromium_missing()


def browser_test(test):
    """Marked `browser`; skipped at once naming the apt-get line when Chromium is missing (before
    the store they share is built), except under GAN_RUNNER_REQUIRE_ALL=1: then they fail."""
    test = pytest.mark.browser(test)
    if CHROMIUM_MISSING and os.environ.get(REQUIRE_ALL) != "1":
        test = pytest.mark.skip(reason=CHROMIUM_MISSING)(test)
    return test
GRID_PAD = 2  # plots.image_grid's padding between digits


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GAN_RUNNER_SCREENSHOTS") or tmp_path_factory.mktemp("ui_screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM_MISSING is None, str(CHROMIUM_MISSING))  # fails here under GAN_RUNNER_REQUIRE_ALL=1
    driver = ui.chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(filled_store, browser, tmp_path_factory):
    """The UI served from the store's folder, as `make ui` would be from there; stopped with
    Ctrl-C afterwards, and checked to be gone."""
    log = tmp_path_factory.mktemp("ui_log") / "ui.log"
    with ui.serve(filled_store.folder, log=log) as url:
        yield ui.UiPage(browser, url)
    text = log.read_text()
    assert "MLflow UI stopped" in text and f"store: {filled_store.uri}" in text, text[-2000:]
    with pytest.raises(OSError):  # nothing answers any more
        urllib.request.urlopen(f"{url}/health", timeout=2)


@browser_test
def test_the_sweep_and_its_jobs_are_listed_by_name(filled_store, page, shots):
    s = filled_store
    started = time.monotonic()
    page.open(f"experiments/{s.parent.info.experiment_id}/runs")
    page.find_text(s.parent.info.run_name, "a")  # the sweep's parent run ...
    page.expand_parent_runs()
    for child in s.children:  # ... and, unfolded, the jobs nested under it
        link = page.find_text(child.info.run_name, "a")
        assert child.info.run_id in link.get_attribute("href")
    page.screenshot(shots / "runs_list.png")
    print(f"runs list: {time.monotonic() - started:.1f} s")


@browser_test
def test_a_jobs_metric_charts_and_kde_plot_render(filled_store, page, shots):
    s = filled_store
    run = s.children[0]
    page.open(f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.tab("Model metrics")
    page.line_chart("kl_target", "eval")  # eval/kl_target, the objective
    page.screenshot(shots / "run_metrics.png")
    page.tab("Artifacts")
    page.open_artifact("plots/kde_step0000030.png")
    assert page.natural_size(page.previewed_image()) == (600, 400)  # plots.kde_figure: 6 x 4 in at 100 dpi
    page.screenshot(shots / "run_kde_plot.png")


@browser_test
def test_the_dcgan_sample_grid_renders_per_step_and_as_an_artifact(filled_store, page, shots):
    s = filled_store
    run = s.dcgan
    rows, cols = int(run.data.params["model.grid_rows"]), int(run.data.params["model.grid_cols"])
    grid_size = (cols * (28 + GRID_PAD) + GRID_PAD, rows * (28 + GRID_PAD) + GRID_PAD)
    page.open(f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.tab("Model metrics")
    page.image_chart("samples", step=2)  # the per-step image view of key "samples": both steps
    page.image_chart("samples", step=4)
    page.screenshot(shots / "dcgan_samples_chart.png")
    (grid,) = [p for p in s.client.list_artifacts(run.info.run_id, "images")
               if p.path.startswith("images/samples+step+4+") and p.path.endswith(".png")]
    page.tab("Artifacts")
    page.open_artifact(grid.path)
    assert page.natural_size(page.previewed_image()) == grid_size
    page.screenshot(shots / "dcgan_samples_artifact.png")


def test_ui_without_a_store_is_one_line_and_status_2(tmp_path):
    """`make ui` in a folder where nothing was trained: no empty store is created, no server starts."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, "-m", "gan_runner.ui", "--port", str(ui.free_port())], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "ui: no runs yet" in proc.stderr and str(tmp_path) in proc.stderr
    assert list(tmp_path.iterdir()) == []

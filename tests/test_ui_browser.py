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
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import UiPage, chromium, find_chromium
from conftest import REQUIRE_ALL, require
from gan_runner import ui


def _chromium_missing() -> str | None:
    try:
        find_chromium()
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
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(filled_store, browser, tmp_path_factory):
    """The UI served from the store's folder, as `make ui` would be from there; stopped with
    Ctrl-C afterwards, and checked to be gone."""
    log = tmp_path_factory.mktemp("ui_log") / "ui.log"
    with ui.serve(filled_store.folder, log=log) as url:
        page = UiPage(browser, url)
        page.log = log  # what `make ui` printed
        yield page
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
    (grid,) = [
        p
        for p in s.client.list_artifacts(run.info.run_id, "images")
        if p.path.startswith("images/samples+step+4+") and p.path.endswith(".png")
    ]
    page.tab("Artifacts")
    page.open_artifact(grid.path)
    assert page.natural_size(page.previewed_image()) == grid_size
    page.screenshot(shots / "dcgan_samples_artifact.png")


def _links(printed: str) -> dict[str, str]:
    """The printed '  <what>: http://...' lines as {what: URL}."""
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"^(.+?):\s+(http://\S+)$", printed, re.M)}


# the table's rows, top to bottom: (run id, {column id: cell text}); ag-grid splits a row over
# its pinned and scrolling parts, which share the row-index
TABLE_ROWS = """
const rows = {};
for (const cell of document.querySelectorAll('[role=gridcell][col-id]')) {
  const row = cell.closest('[row-index]');
  if (!row) continue;
  const k = row.getAttribute('row-index');
  const r = rows[k] = rows[k] || {id: null, cells: {}};
  const link = cell.querySelector('a[href*="/runs/"]');
  if (link) r.id = link.getAttribute('href').split('/runs/')[1].split(/[?/]/)[0];
  r.cells[cell.getAttribute('col-id')] = cell.innerText;
}
return Object.keys(rows).sort((a, b) => a - b).map(k => [rows[k].id, rows[k].cells]);
"""


def _model_training(page, experiment_id: str) -> dict[str, str]:
    """Asserts the page is the Model-training workspace and not the GenAI one; returns the side
    navigation's {link text: href} of the experiment."""
    from selenium.common.exceptions import TimeoutException

    d = page.driver
    page.find(f"a[href*='/experiments/{experiment_id}/runs?']")

    def side_navigation(_=None) -> dict[str, str]:
        links = d.find_elements("css selector", f"a[href*='/experiments/{experiment_id}/']")
        return {a.text: a.get_attribute("href") for a in links if a.text}

    # the page renders its links first and gives them the workspace's view a moment later (seen
    # once in CI: "Runs" still without it); a workspace that never offers it fails here
    try:
        nav = page.wait.until(
            lambda _: (lambda nav: nav if "workflowType=machine_learning" in nav.get("Runs", "") else None)(
                side_navigation()
            )
        )
    except TimeoutException:
        nav = side_navigation()
    assert "workflowType=machine_learning" in nav.get("Runs", "") and "Models" in nav, nav
    assert not [h for h in nav.values() if "workflowType=genai" in h], nav  # Sessions, Judges, Prompts ...
    genai = "[data-component-id^='mlflow.experiment.overview'], [data-component-id^='mlflow.detect_issues']"
    assert d.find_elements("css selector", genai) == []  # no Traces/Latency overview, no "Detect Issues"
    return nav


def _runs_table(page, objective: str, n: int) -> list[tuple[str, dict[str, str]]]:
    header = page.find(f"[data-testid='sort-header-{objective}']")
    assert header.is_displayed()  # the objective's column, in view without scrolling

    def full(d):
        rows = d.execute_script(TABLE_ROWS)
        return rows if len(rows) == n and all(r[0] for r in rows) else None

    return page.wait.until(full, message=f"not {n} rows in the runs table")


@browser_test
def test_a_fresh_browser_follows_the_printed_links_into_model_training(filled_store, page, shots):
    """What `make ui` and the runs print lead a browser that never saw MLflow (fresh profile:
    MLflow keeps its GenAI / Model-training choice in localStorage, GenAI by default) to the runs
    table sorted by the objective with its column shown; the plain experiment link (MLflow's own
    list) is checked to land in GenAI, which is why the links carry their view."""
    s = filled_store
    started = time.monotonic()
    base = "http://127.0.0.1:5000"  # where make ui serves by default: the runs print that
    # printed once the server answers, a moment after ui.serve found it up
    made_ui = _links(
        page.wait.until(
            lambda _: (lambda t: t if "Ctrl-C stops it" in t else None)(page.log.read_text()),
            message="make ui printed no links",
        )
    )
    assert made_ui["MLflow UI"] == f"{page.url}/#/experiments?workflowType=machine_learning"
    swept, dcgan = _links(s.printed["sweep"]), _links(s.printed["dcgan"])
    fresh = chromium()
    try:
        other = UiPage(fresh, page.url)
        exp = s.parent.info.experiment_id
        fresh.get(made_ui["gaussian1d"])
        assert "viewStateShareKey=gan_runner_eval_kl_target" in made_ui["gaussian1d"]
        _model_training(other, exp)
        # the URL chose the workspace: nothing chosen is stored in this browser
        assert fresh.execute_script("return window.localStorage.getItem('mlflow.workflowType')") is None
        rows = _runs_table(other, "eval/kl_target", 3)  # the sweep's parent and its 2 jobs
        by_value = sorted(s.children, key=lambda r: r.data.metrics["eval/kl_target"])
        assert [r for r, _ in rows] == [c.info.run_id for c in by_value] + [s.parent.info.run_id]
        assert [float(cells["metrics.`eval/kl_target`"]) for _, cells in rows[:2]] == [
            c.data.metrics["eval/kl_target"] for c in by_value
        ]
        other.screenshot(shots / "fresh_runs_by_objective.png")
        # the sweep's own link: its jobs only, sorted by the objective, the swept seed as a column
        fresh.get(swept["its jobs by eval/kl_target (min)"].replace(base, page.url))
        _model_training(other, exp)
        rows = _runs_table(other, "eval/kl_target", 2)
        assert [(r, cells["params.`seed`"]) for r, cells in rows] == [
            (c.info.run_id, c.data.params["seed"]) for c in by_value
        ]
        # a run's own link: its page, in Model training
        fresh.get(dcgan["this run"].replace(base, page.url))
        _model_training(other, s.dcgan.info.experiment_id)
        other.tab("Model metrics")
        # control: MLflow's plain experiment link, in this browser that never chose, is GenAI's
        fresh.get(f"{page.url}/#/experiments/{exp}")
        other.find("[data-component-id^='mlflow.experiment.overview']")
        assert "workflowType=genai" in fresh.current_url
    finally:
        fresh.quit()
    print(f"fresh browser through the printed links: {time.monotonic() - started:.1f} s")


@browser_test
def test_the_sweeps_parent_charts_its_seed_aggregates(filled_store, page, shots):
    """agg/<group>/<metric>_mean/_std/_n on a sweep's parent: the UI puts each group's metrics in
    a section of their own (agg/<group>/eval) and draws each as a bar with its value."""
    s = filled_store
    run = s.parent
    page.open(f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.tab("Model metrics")
    # 33 charts in 3 sections (agg/all/best, agg/all/eval, sweep), drawn only as they scroll into
    # view: the chart search narrows them to the objective's aggregate
    page.find("input[placeholder='Search metric charts']").send_keys("agg/all/eval/kl_target_")
    for name in ("kl_target_mean", "kl_target_std", "kl_target_n"):
        value = run.data.metrics[f"agg/all/eval/{name}"]
        card = page.wait.until(
            lambda _: (lambda c: c if f"{value:.2f}" in c.text else None)(page.chart_card(name, "agg/all/eval")),
            message=f"no bar labelled {value:.2f} in chart {name}",
        )
        assert card.find_elements("css selector", ".js-plotly-plot .bars path")  # drawn as a bar
    page.screenshot(shots / "sweep_parent_aggregates.png")


def test_ui_without_a_store_is_one_line_and_status_2(tmp_path):
    """`make ui` in a folder where nothing was trained: no empty store is created, no server starts."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "gan_runner.ui", "--port", str(ui.free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "ui: no runs yet" in proc.stderr and str(tmp_path) in proc.stderr
    assert list(tmp_path.iterdir()) == []

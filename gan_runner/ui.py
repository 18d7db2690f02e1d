"""`make ui` (`python -m gan_runner.ui`): the MLflow UI over the store the runs write to, and
headless Chromium driving that UI (the browser test and the README pictures use both).

The store is resolved exactly as the runner resolves it (tracking.resolve_uri: --tracking-uri,
else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db), so the UI shows what
`python -m gan_runner` wrote from the same folder.

The MLflow 3 UI is a React app: pages are reached by hash routes and every check waits for
an element. `?workflowType=machine_learning` opens the "Model training" side of the UI (runs,
charts, artifacts) instead of the GenAI overview.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
RUN_NAME_CELL = "[role=gridcell][col-id*='Run Name']"  # the runs table (ag-grid)
ARTIFACT_NODE = "[data-testid=artifact-tree-node]"
CHART_CARD = "[data-testid=experiment-view-compare-runs-card]"  # one chart on a run's Model metrics tab
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-dev-shm-usage", "--hide-scrollbars"]


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
def serve(cwd: Path, uri: str | None = None, port: int | None = None, timeout_s: float = 180,
          log: Path | None = None) -> Iterator[str]:
    """`python -m gan_runner.ui` (what `make ui` runs) started from folder `cwd`, in the
    background; yields its URL once it answers and stops it with Ctrl-C afterwards. Without
    `uri` the store is found as `make ui` finds it there: $MLFLOW_TRACKING_URI is not passed on,
    so it is <cwd>/mlflow.db, where the runner writes by default."""
    port = port or free_port()
    command = [sys.executable, "-m", "gan_runner.ui", "--port", str(port)] + (["--tracking-uri", uri] if uri else [])
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(log or os.devnull, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process, timeout_s)
            yield url
        finally:  # Ctrl-C, as a terminal sends it to the group `make ui` runs in
            end_group(process, signal.SIGINT)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_runner.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)),
                        help="port to listen on (default: $PORT, else 5000; with make: make ui PORT=8080)")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
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
        print(f"MLflow UI: {base}/#/experiments?{ML_VIEW}\n{links}"
              f"  store: {uri}\n  Ctrl-C stops it", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        end_group(server, signal.SIGTERM)
        print("MLflow UI stopped", flush=True)
        return 0


# ---- headless Chromium on the UI (selenium + Debian's chromium / chromium-driver) -------------


def find_chromium() -> tuple[str, str]:
    """(browser, driver) paths; RuntimeError naming the packages when either is missing."""
    browser = next((p for p in CHROMIUM if Path(p).is_file()), shutil.which("chromium"))
    driver = next((p for p in CHROMEDRIVER if Path(p).is_file()), shutil.which("chromedriver"))
    if not (browser and driver):
        raise RuntimeError("headless Chromium not found: apt-get install chromium chromium-driver "
                           "(make test installs them when run as root)")
    return browser, driver


def chromium(width: int = 1400, height: int = 900):
    """A selenium driver on the system Chromium (no browser download: works offline)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS + [f"--window-size={width},{height}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


class UiPage:
    """The pages and checks the test and the README pictures need, by stable selectors."""

    def __init__(self, driver, url: str, timeout_s: float = 60):
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        # React re-renders replace elements under a reference: such a poll is simply retried
        self.wait = WebDriverWait(driver, timeout_s, poll_frequency=0.25,
                                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def open(self, route: str) -> None:
        """A hash route, e.g. 'experiments/1/runs'; closes the assistant panel that covers the page."""
        sep = "&" if "?" in route else "?"
        self.driver.get(f"{self.url}/#/{route}{sep}{ML_VIEW}")
        self.find("[data-testid=experiment-runs-link], [data-component-id='mlflow.assistant.chat_panel.close'], [role=tab]")
        for button in self.driver.find_elements("css selector", "[data-component-id='mlflow.assistant.chat_panel.close']"):
            if button.is_displayed():
                button.click()

    def find(self, css: str):
        """The first element matching `css` once it is on the page."""
        return self.wait.until(lambda d: next(iter(d.find_elements("css selector", css)), None),
                               message=f"no element {css!r} on {self.driver.current_url}")

    def find_text(self, text: str, css: str | None = None):
        """A visible element whose text contains `text`: the last match of `css` (the innermost
        where matches nest), else the innermost element of the page."""
        def match(d):
            if css:
                found = [e for e in d.find_elements("css selector", css) if text in e.text]
            else:
                found = d.find_elements("xpath", f"//*[contains(normalize-space(.), {_xpath_str(text)})]")[-1:]
            return next((e for e in reversed(found) if e.is_displayed()), None)  # the last: innermost

        return self.wait.until(match, message=f"no text {text!r} on {self.driver.current_url}")

    def tab(self, name: str) -> None:
        """A run page's tab: Overview, Model metrics, System metrics, Traces, Artifacts."""
        self.wait.until(lambda d: [t for t in d.find_elements("css selector", "[role=tab]") if t.text == name],
                        message=f"no tab {name!r}")[0].click()

    def open_artifact(self, path: str) -> None:
        """On a run's Artifacts tab: unfold the folders of `path` ('images/a.png') and select the file."""
        for name in path.split("/"):
            self.wait.until(lambda d: [e for e in d.find_elements("css selector", ARTIFACT_NODE) if e.text == name],
                            message=f"no artifact {name!r} on {self.driver.current_url}")[0].click()

    def previewed_image(self):
        """The artifact preview's <img> once it has loaded pixels (the empty preview's
        placeholder is an inline data: image, a loaded artifact a blob: URL)."""
        def loaded(d):
            for img in d.find_elements("css selector", ".mlflow-artifact-right img"):
                if img.get_attribute("src").startswith("blob:") and d.execute_script(
                        "return arguments[0].complete && arguments[0].naturalWidth > 0", img):
                    return img
            return None

        return self.wait.until(loaded, message=f"no artifact image rendered on {self.driver.current_url}")

    def chart_card(self, title: str, section: str):
        """On a run's Model metrics tab: the chart titled `title` (a metric's last name part, or
        an image key) in `section` (the metric's prefix, 'Model metrics' for images), scrolled
        into view: charts are drawn only when in view."""
        header = self.find_text(section, "[data-testid=experiment-view-compare-runs-section-header]")
        self.driver.execute_script("arguments[0].scrollIntoView()", header)
        card = self.wait.until(lambda d: next((c for c in d.find_elements("css selector", CHART_CARD)
                                               if c.text.split("\n")[0] == title), None),
                               message=f"no chart {title!r} in section {section!r}")
        self.driver.execute_script("arguments[0].scrollIntoView()", card)
        return card

    def line_chart(self, title: str, section: str):
        """A metric's chart once Plotly drew its line(s): the line elements."""
        return self.wait.until(lambda _: self.chart_card(title, section).find_elements("css selector", ".js-plotly-plot path.js-line"),
                               message=f"the chart {title!r} drew no line")

    def image_chart(self, key: str, step: int):
        """The image chart of `key` (one logged image per step) moved to `step`; its <img> once
        loaded. The chart opens on step 0 and its slider moves one logged step per arrow key."""
        from selenium.webdriver.common.keys import Keys

        wanted = f"step%2B{step}%2B"  # in the image's URL: images/<key>+step+<step>+timestamp+...

        def shown(_):
            card = self.chart_card(key, "Model metrics")  # found again: the card re-renders
            image = next((img for img in card.find_elements("css selector", "img[src*=get-artifact]")
                          if wanted in img.get_attribute("src") and self.natural_size(img)[0] > 0), None)
            if image is None:
                thumb = card.find_element("css selector", "[role=slider]")
                thumb.click()
                thumb.send_keys(Keys.ARROW_RIGHT if int(thumb.get_attribute("aria-valuenow")) < step else Keys.ARROW_LEFT)
            return image

        image = self.wait.until(shown, message=f"image chart {key!r} showed no image of step {step}")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)  # below the run's params
        return image

    def choose_metric(self, metric: str) -> None:
        """On the compare view: `metric` as the only metric axis of the parallel-coordinates plot."""
        from selenium.webdriver.common.keys import Keys

        select = self.find_text("Metrics:").find_element("xpath", "following-sibling::div[1]")
        select.find_element("css selector", ".du-bois-light-select-selector").click()
        select.find_element("css selector", "input").send_keys(metric)  # the option list is virtualized: filter it
        self.wait.until(lambda d: next((o for o in d.find_elements("css selector", "[role=option], .du-bois-light-select-item-option")
                                        if metric in (o.get_attribute("title"), o.text) and o.is_displayed()), None),
                        message=f"no metric {metric!r} to choose").click()
        select.find_element("css selector", "input").send_keys(Keys.ESCAPE)
        for item in select.find_elements("css selector", ".du-bois-light-select-selection-item"):
            if item.text != metric:
                item.find_element("css selector", ".du-bois-light-select-selection-item-remove").click()
        self.driver.execute_script("document.activeElement.blur()")  # no text cursor in the picture

    def natural_size(self, img) -> tuple[int, int]:
        return tuple(self.driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img))

    def expand_parent_runs(self) -> None:
        """Unfold the sweeps' parent rows so their child runs are listed."""
        self.find(RUN_NAME_CELL)
        for button in self.driver.find_elements("css selector", f"{RUN_NAME_CELL} button"):
            button.click()  # the only button in a run-name cell: the +/- of a parent run

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path


def _xpath_str(text: str) -> str:
    return f"'{text}'" if "'" not in text else 'concat(' + ", \"'\", ".join(f"'{p}'" for p in text.split("'")) + ')'


if __name__ == "__main__":
    main()

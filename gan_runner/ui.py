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
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from gan_runner import tracking

EXIT_BAD_INPUT = 2
ML_VIEW = "workflowType=machine_learning"
RUN_NAME_CELL = "[role=gridcell][col-id*='Run Name']"  # the runs table (ag-grid)
ARTIFACT_NODE = "[data-testid=artifact-tree-node]"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-dev-shm-usage", "--hide-scrollbars"]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Poll /health until the server answers; RuntimeError with its output if it dies or stalls."""
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


def stop(process: subprocess.Popen, timeout_s: float = 15) -> int:
    """Ctrl-C for the server's whole process group (mlflow, uvicorn, its job runner), as a
    terminal would send it; SIGKILL only if it does not end in time."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextmanager
def serve(uri: str, port: int | None = None, timeout_s: float = 120, log: Path | None = None) -> Iterator[str]:
    """`python -m gan_runner.ui` (what `make ui` runs) over `uri` in the background; yields its
    URL once it answers and stops it with Ctrl-C afterwards."""
    port = port or free_port()
    out = open(log, "w") if log else subprocess.DEVNULL
    command = [sys.executable, "-m", "gan_runner.ui", "--port", str(port), "--tracking-uri", uri]
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, timeout_s)
        yield url
    finally:
        stop(process)
        if log:
            out.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_runner.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (one is plenty for one person)")
    args = parser.parse_args()
    uri = tracking.resolve_uri(args.tracking_uri)
    if not uri.startswith(("sqlite:", "file:", "postgresql", "mysql", "mssql")):
        print(f"ui: {uri} is already an MLflow server: open it in a browser", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        print(f"ui: no runs yet: {uri} does not exist (train something first, e.g. make run)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    print(f"MLflow UI: http://127.0.0.1:{args.port}/#/experiments?{ML_VIEW}\n"
          f"  store: {uri}\n  Ctrl-C stops it", flush=True)
    process = subprocess.Popen(tracking.ui_command(uri, args.port, workers=args.workers))
    try:
        sys.exit(process.wait())
    except KeyboardInterrupt:  # the terminal sent SIGINT to mlflow too; let it shut down
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        print("MLflow UI stopped", flush=True)


# ---- headless Chromium on the UI (selenium + Debian's chromium / chromium-driver) -------------


def find_chromium() -> tuple[str, str]:
    """(browser, driver) paths; RuntimeError naming the packages when either is missing."""
    browser = next((p for p in CHROMIUM if Path(p).is_file()), shutil.which("chromium"))
    driver = next((p for p in CHROMEDRIVER if Path(p).is_file()), shutil.which("chromedriver"))
    if not (browser and driver):
        raise RuntimeError("headless Chromium not found: apt-get install chromium chromium-driver "
                           "(.ci/run installs them)")
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
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        self.wait = WebDriverWait(driver, timeout_s, poll_frequency=0.25)

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
        """A visible element whose text contains `text`: the first match of `css`, else the
        innermost element of the page."""
        def match(d):
            if css:
                found = [e for e in d.find_elements("css selector", css) if text in e.text]
            else:
                found = d.find_elements("xpath", f"//*[contains(normalize-space(.), {_xpath_str(text)})]")[-1:]
            return next((e for e in found if e.is_displayed()), None)

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

    def natural_size(self, img) -> tuple[int, int]:
        return tuple(self.driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img))

    def expand_parent_runs(self) -> None:
        """Unfold the sweeps' parent rows so their child runs are listed."""
        self.find(RUN_NAME_CELL)
        for button in self.driver.find_elements("css selector", f"{RUN_NAME_CELL} button"):
            button.click()  # the only button in a run-name cell: the +/- of a parent run

    def charts(self) -> list:
        """Plotly charts that drew at least one line."""
        return [c for c in self.driver.find_elements("css selector", ".js-plotly-plot")
                if c.find_elements("css selector", "path.js-line, .scatterlayer .trace path")]

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path


def _xpath_str(text: str) -> str:
    return f"'{text}'" if "'" not in text else 'concat(' + ", \"'\", ".join(f"'{p}'" for p in text.split("'")) + ')'


if __name__ == "__main__":
    main()

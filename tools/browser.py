"""Headless Chromium driving the MLflow UI that `make ui` serves (gan_runner.ui.serve), for
tests/test_ui_browser.py and tools/docs_images.py; not shipped in the wheel (selenium is a dev
dependency). Uses Debian's chromium / chromium-driver: no browser download, works offline.

The MLflow 3 UI is a React app: pages are reached by hash routes and every check waits for
an element. `?workflowType=machine_learning` (ML_VIEW) opens the "Model training" side of the UI
(runs, charts, artifacts) instead of the GenAI overview.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gan_runner.tracking import ML_VIEW

RUN_NAME_CELL = "[role=gridcell][col-id*='Run Name']"  # the runs table (ag-grid)
ARTIFACT_NODE = "[data-testid=artifact-tree-node]"
CHART_CARD = "[data-testid=experiment-view-compare-runs-card]"  # one chart on a run's Model metrics tab
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def find_chromium() -> tuple[str, str]:
    """(browser, driver) paths; RuntimeError naming the packages when either is missing."""
    browser = next((p for p in CHROMIUM if Path(p).is_file()), shutil.which("chromium"))
    driver = next((p for p in CHROMEDRIVER if Path(p).is_file()), shutil.which("chromedriver"))
    if not (browser and driver):
        raise RuntimeError(
            "headless Chromium not found: apt-get install chromium chromium-driver "
            "(make test installs them when run as root)"
        )
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
        self.wait = WebDriverWait(
            driver,
            timeout_s,
            poll_frequency=0.25,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )

    def open(self, route: str) -> None:
        """A hash route, e.g. 'experiments/1/runs'; closes the assistant panel that covers the page."""
        sep = "&" if "?" in route else "?"
        self.driver.get(f"{self.url}/#/{route}{sep}{ML_VIEW}")
        self.find(
            "[data-testid=experiment-runs-link], [data-component-id='mlflow.assistant.chat_panel.close'], [role=tab]"
        )
        for button in self.driver.find_elements(
            "css selector", "[data-component-id='mlflow.assistant.chat_panel.close']"
        ):
            if button.is_displayed():
                button.click()

    def find(self, css: str):
        """The first element matching `css` once it is on the page."""
        return self.wait.until(
            lambda d: next(iter(d.find_elements("css selector", css)), None),
            message=f"no element {css!r} on {self.driver.current_url}",
        )

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
        self.wait.until(
            lambda d: [t for t in d.find_elements("css selector", "[role=tab]") if t.text == name],
            message=f"no tab {name!r}",
        )[0].click()

    def open_artifact(self, path: str) -> None:
        """On a run's Artifacts tab: unfold the folders of `path` ('images/a.png') and select the file."""
        for name in path.split("/"):
            self.wait.until(
                lambda d: [e for e in d.find_elements("css selector", ARTIFACT_NODE) if e.text == name],
                message=f"no artifact {name!r} on {self.driver.current_url}",
            )[0].click()

    def previewed_image(self):
        """The artifact preview's <img> once it has loaded pixels (the empty preview's
        placeholder is an inline data: image, a loaded artifact a blob: URL)."""

        def loaded(d):
            for img in d.find_elements("css selector", ".mlflow-artifact-right img"):
                if img.get_attribute("src").startswith("blob:") and d.execute_script(
                    "return arguments[0].complete && arguments[0].naturalWidth > 0", img
                ):
                    return img
            return None

        return self.wait.until(loaded, message=f"no artifact image rendered on {self.driver.current_url}")

    def chart_card(self, title: str, section: str):
        """On a run's Model metrics tab: the chart titled `title` (a metric's last name part, or
        an image key) in `section` (the metric's prefix, 'Model metrics' for images), scrolled
        into view: charts are drawn only when in view."""
        header = self.find_text(section, "[data-testid=experiment-view-compare-runs-section-header]")
        self.driver.execute_script("arguments[0].scrollIntoView()", header)
        card = self.wait.until(
            lambda d: next(
                (c for c in d.find_elements("css selector", CHART_CARD) if c.text.split("\n")[0] == title), None
            ),
            message=f"no chart {title!r} in section {section!r}",
        )
        self.driver.execute_script("arguments[0].scrollIntoView()", card)
        return card

    def line_chart(self, title: str, section: str):
        """A metric's chart once Plotly drew its line(s): the line elements."""
        return self.wait.until(
            lambda _: self.chart_card(title, section).find_elements("css selector", ".js-plotly-plot path.js-line"),
            message=f"the chart {title!r} drew no line",
        )

    def image_chart(self, key: str, step: int):
        """The image chart of `key` (one logged image per step) moved to `step`; its <img> once
        loaded. The chart opens on step 0 and its slider moves one logged step per arrow key."""
        from selenium.webdriver.common.keys import Keys

        wanted = f"step%2B{step}%2B"  # in the image's URL: images/<key>+step+<step>+timestamp+...

        def shown(_):
            card = self.chart_card(key, "Model metrics")  # found again: the card re-renders
            image = next(
                (
                    img
                    for img in card.find_elements("css selector", "img[src*=get-artifact]")
                    if wanted in img.get_attribute("src") and self.natural_size(img)[0] > 0
                ),
                None,
            )
            if image is None:
                thumb = card.find_element("css selector", "[role=slider]")
                thumb.click()
                thumb.send_keys(
                    Keys.ARROW_RIGHT if int(thumb.get_attribute("aria-valuenow")) < step else Keys.ARROW_LEFT
                )
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
        self.wait.until(
            lambda d: next(
                (
                    o
                    for o in d.find_elements("css selector", "[role=option], .du-bois-light-select-item-option")
                    if metric in (o.get_attribute("title"), o.text) and o.is_displayed()
                ),
                None,
            ),
            message=f"no metric {metric!r} to choose",
        ).click()
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
    return f"'{text}'" if "'" not in text else "concat(" + ', "\'", '.join(f"'{p}'" for p in text.split("'")) + ")"

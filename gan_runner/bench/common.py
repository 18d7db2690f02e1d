"""What the bench sections share: one console, and running the real CLI as a user would."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)  # piped: no wrapped tables


def cli_run(args: list[str], store: str) -> float:
    """Run `python -m gan_runner` as a user would; return its wall time in seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gan_runner", f"tracking.uri={store}", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def last_run_metrics(store: str, experiment: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return run.data.metrics


def timed_cli(args: list[str], folder: Path) -> tuple[float, float, list[dict[str, float]]]:
    """`python -m gan_runner <args>` on a fresh store in `folder`: (wall s, CPU s of the process
    and the workers it waited for, metrics of its runs). CPU seconds hardly change when other
    work shares the cores; wall seconds do."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cpu_before, started = _children_cpu(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gan_runner", *args, f"tracking.uri={store}"],
        cwd=folder,
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    failed = [r.data.tags.get("error", r.info.status) for r in runs if r.info.status != "FINISHED"]
    if failed:
        raise RuntimeError(f"gan_runner {' '.join(args)}: {len(failed)} runs did not finish: {failed[0]}")
    return wall, cpu, [r.data.metrics for r in runs if "perf/loop_s" in r.data.metrics]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# The issue-15 scoreboard: each section records its targeted figures here; `python -m gan_runner.bench`
# prints them together at the end, one row each with a pass/fail mark.
SCOREBOARD: list[dict] = []


def record_target(work: str, measured: str, target: str, passed: bool | None) -> None:
    """One scoreboard row: `measured` and `target` as printed (units included); passed=None when the
    figure could not be measured here (e.g. no GPU), which the board prints as such."""
    SCOREBOARD.append({"work": work, "measured": measured, "target": target, "passed": passed})


README_START, README_END = "<!-- scoreboard:start -->", "<!-- scoreboard:end -->"
MARK = {True: "pass", False: "FAIL", None: "not measured here"}


def mark(passed: bool | None) -> str:
    return MARK[passed]


def scoreboard_table(rows: list[dict] | None = None):
    """The recorded rows as one rich table, each with its pass/fail mark."""
    from rich.table import Table

    table = Table(title="issue 15 scoreboard: every recorded target")
    for name, justify in (("work", "left"), ("measured", "right"), ("target", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    for row in SCOREBOARD if rows is None else rows:
        table.add_row(row["work"], row["measured"], row["target"], mark(row["passed"]))
    return table


def _cells(line: str) -> list[str]:
    """The cells of one markdown table row ("\\|" inside a cell is a literal bar)."""
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_block(rows: list[dict], old_block: str = "", when: str = "") -> str:
    """The markdown table between the README's scoreboard markers: `rows` (this bench run's,
    stamped `when`) replace the old block's rows of the same work; the old block's other rows
    stay as they were (measured by an earlier `--readme` run of other sections)."""
    header = "| work | measured | target | mark | measured when, where |"
    table: dict[str, list[str]] = {}
    for line in old_block.splitlines():
        if line.startswith("|") and not line.startswith(("| work |", "|---")):
            cells = _cells(line)
            if len(cells) == 5:
                table[cells[0]] = cells
    for row in rows:
        table[row["work"]] = [row["work"], row["measured"], row["target"], mark(row["passed"]), when]
    lines = [header, "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(c) for c in cells) + " |" for cells in table.values()]
    return "\n".join(lines)


def rewrite_readme(path: Path, rows: list[dict], when: str) -> None:
    """Regenerate the block between README_START and README_END of `path` from `rows`
    (ValueError, naming the markers, when the file lacks them)."""
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no '{README_START}' ... '{README_END}' block to rewrite")
    old = text[start + len(README_START) : end]
    new = f"{README_START}\n{readme_block(rows, old, when)}\n{README_END}"
    path.write_text(text[:start] + new + text[end + len(README_END) :])


def machine() -> str:
    """The CPU model and core count, for the scoreboard's 'where'."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def dcgan_worker(steps: int, overrides: list[str]) -> dict:
    """`python -m gan_runner.bench.dcgan --worker`: timed DCGAN steps in a fresh process (the dcgan and
    gpu sections); its JSON line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # trainer.onednn decides
    out = subprocess.run(
        [sys.executable, "-m", "gan_runner.bench.dcgan", "--worker", "--steps", str(steps), *overrides],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench worker {overrides} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

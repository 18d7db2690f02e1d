"""`python -m gan_runner.compare`: the runs of an experiment or of a sweep as a table in the
terminal, and a chosen metric over steps as a seaborn figure.

    python -m gan_runner.compare --experiment gaussian1d
    python -m gan_runner.compare --sweep multirun/2026-11-25/10-41-00 --top 5
    python -m gan_runner.compare --sweep last --plot eval/kl_target --log-to-parent
    python -m gan_runner.compare --sweep last --by-seed --plot eval/kl_target   # mean +- std over seeds

The table shows, per run: status, duration, the final and the best value of the run's
objective (the `objective` tag names the metric, the `objective_mode` param says whether lower
or higher is better), and only the params whose values differ between the listed runs. Rows are
sorted best objective first. A sweep's parent run (its summary) is not a row; `--sweep` accepts
the sweep's folder, the parent run's id, or `last`. Runs that differ only in `seed` also form
groups with mean +- std and n per metric column (`--by-seed`, on by default when seeds repeat;
`--plot` then draws each group's mean with a +- std band).

The store is the runner's: --tracking-uri, else $MLFLOW_TRACKING_URI, else
sqlite:///<cwd>/mlflow.db. Bad input (no such store, experiment, sweep or metric) prints one
line and exits with status 2. Imports neither TensorFlow nor MLflow directly (tracking.py does).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_runner import seeds, tracking
from gan_runner.errors import EXIT_BAD_INPUT, BadInput
from gan_runner.store import RUN_ID

SORT_KEYS = ("objective", "best", "duration", "start", "name")
MAX_PARAM_COLUMNS = 12  # wider tables stop being readable; the rest are named under the table


@dataclass
class Row:
    run: Any  # mlflow.entities.Run
    objective: str | None  # metric name
    mode: str  # min | max
    final: float
    best: float

    @property
    def name(self) -> str:
        return self.run.info.run_name or self.run.info.run_id[:8]

    @property
    def duration_s(self) -> float:
        info = self.run.info
        end = info.end_time or int(time.time() * 1000)
        return max(0.0, (end - info.start_time) / 1000) if info.start_time else math.nan

    def score(self, value: float) -> float:
        """Lower is better whatever the mode; missing values sort last."""
        if not math.isfinite(value):
            return math.inf
        return value if self.mode == "min" else -value


# ---- selecting runs ------------------------------------------------------------------------


def experiment_runs(uri: str, name: str) -> list:
    """The runs of an experiment, without sweep parents (they carry a summary, not a training)."""
    return [r for r in tracking.experiment_runs(uri, name) if r.data.tags.get("sweep.role") != "parent"]


def sweep_runs(uri: str, sweep: str) -> tuple[Any, list]:
    """(parent run or None, child runs) of a sweep given by its folder, parent run id or `last`."""
    if sweep == "last":
        parents = tracking.find_runs(uri, "tags.`sweep.role` = 'parent'")
        if not parents:
            raise BadInput(f"--sweep last: no sweep in {uri}")
        parent = max(parents, key=lambda r: r.info.start_time or 0)
    elif RUN_ID.fullmatch(sweep):
        parent = tracking.get_run(uri, sweep)
    else:  # a folder: the sweep.dir tag holds its absolute path (it may be deleted since)
        folder = str(Path(sweep).expanduser().resolve())
        runs = tracking.find_runs(uri, f"tags.`sweep.dir` = '{folder}'")
        parents = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
        if not parents:  # jobs of a sweep without the parent-run callback
            return None, runs
        parent = max(parents, key=lambda r: r.info.start_time or 0)
    children = tracking.find_runs(uri, f"tags.`{tracking.PARENT_TAG}` = '{parent.info.run_id}'")
    return parent, children


# ---- the table -----------------------------------------------------------------------------


def make_row(uri: str, run) -> Row:
    objective = run.data.tags.get("objective") or run.data.params.get("objective")
    mode = run.data.params.get("objective_mode", "min")
    final = run.data.metrics.get(objective, math.nan) if objective else math.nan
    history = (
        [v for _, v in tracking.metric_history(uri, run.info.run_id, objective)]
        if objective in run.data.metrics
        else []
    )
    history = [v for v in history if math.isfinite(v)]
    best = (min if mode == "min" else max)(history) if history else math.nan
    return Row(run, objective, mode, final, best)


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    keys = {
        "objective": lambda r: (r.score(r.final), r.score(r.best)),
        "best": lambda r: (r.score(r.best), r.score(r.final)),
        "duration": lambda r: r.duration_s,
        "start": lambda r: r.run.info.start_time or 0,
        "name": lambda r: r.name,
    }
    return sorted(rows, key=keys[key])


def differing_params(runs: list) -> list[str]:
    """Param keys whose value is not the same in every run (a missing key counts as a value)."""
    keys = sorted({k for r in runs for k in r.data.params})
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def note(run) -> str:
    """Why a run ended the way it did, when a tag says so."""
    tags = run.data.tags
    for key in ("error", "divergence", "early_stop", "resumed"):
        if key in tags:
            return f"{key}: {tags[key]}"
    return ""


def fmt_value(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes}m{s:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def build_table(rows: list[Row], params: list[str], title: str, width: int = 160):
    """(table, the params shown): one line a run. On a narrow terminal the run names give way
    first (cut with "..."; full names in the UI): their column gets what `width` leaves after the
    other columns, 16 to 48 characters; param columns that still do not fit are left out, from
    the right (the caller names them under the table)."""
    from rich.table import Table

    objectives = sorted({f"{r.objective} ({r.mode})" for r in rows if r.objective})
    notes = [note(r.run) for r in rows]
    show_note = any(notes)

    def cells(r: Row, keys: list[str], note_text: str) -> list[str]:
        return [
            r.name,
            r.run.info.run_id[:8],
            r.run.info.status,
            fmt_duration(r.duration_s),
            fmt_value(r.final),
            fmt_value(r.best),
            *(r.run.data.params.get(k, "-") for k in keys),
            *([note_text] if show_note else []),
        ]

    def run_column_width(keys: list[str]) -> int:
        headers = ["id", "status", "duration", "final", "best", *keys, *(["note"] if show_note else [])]
        lines = [cells(r, keys, n)[1:] for r, n in zip(rows, notes)]
        # each column: its longest value or its header (param names fold at 12), + 3 for borders
        widths = [
            max([min(len(h), 12 if i >= 5 else 99)] + [min(len(line[i]), 60) for line in lines])
            for i, h in enumerate(headers)
        ]
        return width - sum(widths) - 3 * (len(headers) + 1) - 1

    shown = list(params)
    while shown and run_column_width(shown) < 16:
        shown.pop()
    table = Table(title=title, caption=f"objective: {', '.join(objectives) or '-'}", title_justify="left")
    table.add_column("run", no_wrap=True, overflow="ellipsis", max_width=max(16, min(48, run_column_width(shown))))
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for name in ("duration", "final", "best"):
        table.add_column(name, justify="right", no_wrap=True)
    for key in shown:
        table.add_column(key, overflow="fold")
    if show_note:
        table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=60)
    for r, n in zip(rows, notes):
        table.add_row(*cells(r, shown, n))
    return table, shown


def build_seed_table(rows: list[Row], title: str):
    """One line per group of runs that differ only in `seed`: n and mean +- std (ddof 1) of
    every metric column (final and best objective, duration)."""
    from rich import box
    from rich.table import Table

    groups = seeds.group_runs([dict(r.run.data.params) for r in rows])
    # a lighter frame than the run table's: a summary below it, not more runs
    table = Table(
        title=title,
        caption="mean +- std (sample std) over the seeds of each group",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("group", "n", "seeds", "final", "best", "duration s"):
        table.add_column(name, justify="left" if name in ("group", "seeds") else "right", overflow="fold")
    for group in groups:
        members = [rows[i] for i in group.indices]
        columns = [[r.final for r in members], [r.best for r in members], [r.duration_s for r in members]]
        seed_list = sorted((r.run.data.params.get("seed", "-") for r in members), key=lambda v: (len(v), v))
        table.add_row(
            group.label,
            str(group.n),
            ",".join(seed_list),
            *(seeds.fmt_mean_std(*seeds.mean_std(values)) for values in columns),
        )
    return table


# ---- the figure ----------------------------------------------------------------------------


def run_labels(rows: list[Row], params: list[str]) -> dict[str, str]:
    """run id -> legend label: the differing params (the shortest text that tells runs apart),
    else the run name; the run id is added where labels would still collide."""

    def label(row: Row) -> str:
        text = ", ".join(
            f"{k.rsplit('.', 1)[-1] if k.count('.') > 1 else k}={row.run.data.params.get(k, '-')}" for k in params
        )
        return (text or row.name)[:50]

    labels = {r.run.info.run_id: label(r) for r in rows}
    counts = {text: list(labels.values()).count(text) for text in labels.values()}
    return {run_id: text if counts[text] == 1 else f"{text} ({run_id[:6]})" for run_id, text in labels.items()}


def plot_metric(uri: str, rows: list[Row], metric: str, params: list[str], out: Path, by_seed: bool = False) -> Path:
    """A seaborn lineplot of `metric` over steps, one line per run, written as a PNG; by_seed:
    one line per group of seeds (the mean at each step) with a band of +- one std."""
    from gan_runner import plots

    fig = metric_figure(uri, rows, metric, params, by_seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plots.close(fig)
    return out


def metric_figure(uri: str, rows: list[Row], metric: str, params: list[str], by_seed: bool = False):
    """The figure plot_metric writes (apart, so that a test can read its lines and legend)."""
    logged = [r for r in rows if metric in r.run.data.metrics]
    if not logged:
        known = sorted({k for r in rows for k in r.run.data.metrics})
        raise BadInput(f"--plot: no run here logged '{metric}'; logged: {', '.join(known) or 'nothing'}")
    import pandas as pd
    import seaborn as sns

    from gan_runner import plots  # the Agg backend, before pyplot is used

    labels, frames = run_labels(rows, params), []
    if by_seed:
        groups = seeds.group_runs([dict(r.run.data.params) for r in rows])
        labels = {rows[i].run.info.run_id: f"{g.label} (n={g.n})" for g in groups for i in g.indices}
    for r in logged:
        frames += [
            {"step": step, metric: value, "run": labels[r.run.info.run_id]}
            for step, value in tracking.metric_history(uri, r.run.info.run_id, metric)
        ]
    fig, ax = plots.plt.subplots(figsize=(7, 4), dpi=100)
    sns.lineplot(
        data=pd.DataFrame(frames),
        x="step",
        y=metric,
        hue="run",
        marker="o",
        markersize=3,
        ax=ax,
        errorbar="sd" if by_seed else None,
    )
    ax.set_title(f"{metric} over steps ({len(logged)} runs" + (", mean +- std over seeds)" if by_seed else ")"))
    ax.legend(fontsize="small", title=None)
    fig.tight_layout()
    return fig


# ---- command line --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2 (argparse prints the usage too)
        raise BadInput(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m gan_runner.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--experiment", metavar="NAME", help="every run of this experiment (e.g. gaussian1d)")
    which.add_argument(
        "--sweep", metavar="DIR|RUN_ID|last", help="the jobs of one sweep: its folder, its parent run id, or the newest"
    )
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
    parser.add_argument(
        "--sort", choices=SORT_KEYS, default="objective", help="row order (default: final objective, best first)"
    )
    parser.add_argument("--top", type=int, metavar="N", help="only the N first rows (after sorting)")
    parser.add_argument("--plot", metavar="METRIC", help="also draw METRIC over steps for the listed runs")
    parser.add_argument("--out", type=Path, help="where --plot writes its PNG (default: compare_<metric>.png)")
    parser.add_argument(
        "--by-seed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="group runs that differ only in seed: mean +- std, n (default: on when seeds repeat)",
    )
    parser.add_argument(
        "--log-to-parent", action="store_true", help="with --sweep --plot: add the PNG to the sweep's parent run"
    )
    args = parser.parse_args(argv)
    if args.log_to_parent and not (args.sweep and args.plot):
        raise BadInput("--log-to-parent needs --sweep and --plot")
    if args.top is not None and args.top < 1:
        raise BadInput(f"--top: expected a positive integer, got {args.top}")
    return args


def compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    uri = tracking.resolve_uri(args.tracking_uri)
    parent = None
    if args.sweep:
        parent, runs = sweep_runs(uri, args.sweep)
        title = f"sweep {parent.data.tags.get('sweep.dir', parent.info.run_id) if parent else args.sweep}"
    elif args.experiment:
        runs, title = experiment_runs(uri, args.experiment), f"experiment {args.experiment}"
    else:
        raise BadInput("give --experiment NAME or --sweep DIR|RUN_ID|last")
    if not runs:
        raise BadInput(f"{title}: no runs in {uri}")
    rows = sort_rows([make_row(uri, r) for r in runs], args.sort)[: args.top]
    params = differing_params([r.run for r in rows])
    console = Console(
        width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    )  # piped (less, CI logs): not cut at 80
    table, shown = build_table(
        rows, params[:MAX_PARAM_COLUMNS], f"{title}: {len(rows)} of {len(runs)} runs", console.width
    )
    console.print(table)
    if len(params) > len(shown):
        console.print(f"also differ: {', '.join(params[len(shown) :])}")
    by_seed = args.by_seed if args.by_seed is not None else seeds.seeds_repeat([dict(r.run.data.params) for r in rows])
    if by_seed:
        console.print(build_seed_table(rows, f"{title}: by seed"))
    if parent is not None and "sweep.best_run_name" in parent.data.tags:
        console.print(
            f"sweep best: {parent.data.tags['sweep.best_run_name']} ({parent.data.tags.get('sweep.objective', '')})"
        )
    if args.plot:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.plot)
        out = plot_metric(uri, rows, args.plot, params, args.out or Path(f"compare_{name}.png"), by_seed)
        console.print(f"wrote {out}")
        if args.log_to_parent:
            if parent is None:
                raise BadInput(f"--log-to-parent: sweep {args.sweep} has no parent run")
            tracking.log_file(uri, parent.info.run_id, out, "compare")
            console.print(f"logged to the sweep's parent run {parent.info.run_id} as compare/{out.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return compare(parse_args(argv))
    except (BadInput, LookupError) as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

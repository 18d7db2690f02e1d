"""`python -m gan_runner.compare` against a real store filled by a real sweep and a real DCGAN
run (conftest.filled_store, shared with the browser test): the table's rows, columns and
values as the store has them, the seaborn PNG, the parent-run artifact, and bad input.

Most calls go through compare.main in-process (the store's contents are what is checked); one
goes through `python -m gan_runner.compare` in a subprocess, as a user types it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import matplotlib.image
import pytest

from conftest import metric_history
from gan_runner import compare

OBJECTIVE = "eval/kl_target"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """rich wraps to $COLUMNS when stdout is not a terminal; wide enough for whole cells."""
    monkeypatch.setenv("COLUMNS", "300")


def table(capsys, *args: str) -> tuple[int, list[str], str]:
    """(exit status, table lines, stderr) of compare.main(args)."""
    status = compare.main(list(args))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def row_of(lines: list[str], run) -> list[str]:
    """The cells of the table row that shows `run` (found by its short id)."""
    (line,) = [ln for ln in lines if run.info.run_id[:8] in ln]
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def header(lines: list[str]) -> list[str]:
    (line,) = [ln for ln in lines if ln.startswith("┃")]
    return [cell.strip() for cell in line.strip("┃ ").split("┃")]


def test_experiment_table_shows_runs_objective_and_only_differing_params(filled_store, capsys):
    s = filled_store
    status, lines, err = table(capsys, "--experiment", "gaussian1d", "--tracking-uri", s.uri)
    assert status == 0, err
    assert header(lines) == ["run", "id", "status", "duration", "final", "best", "seed"]  # only seed differs
    assert not any(s.parent.info.run_id[:8] in ln for ln in lines)  # the parent is a summary, not a row
    finals = []
    for run in s.children:
        cells = dict(zip(header(lines), row_of(lines, run)))
        history = [v for _, v in metric_history(s.client, run.info.run_id, OBJECTIVE)]
        assert len(history) == 2  # eval at steps 15 and 30: best and final can differ
        assert cells["status"] == "FINISHED"
        assert cells["seed"] == run.data.params["seed"]
        assert cells["final"] == f"{history[-1]:.4g}"
        assert cells["best"] == f"{min(history):.4g}"  # objective_mode=min
        assert cells["duration"].endswith("s")
        finals.append((history[-1], run.info.run_id[:8]))
    ids_in_order = [ln.split("│")[2].strip() for ln in lines if ln.startswith("│")]
    assert ids_in_order == [run_id for _, run_id in sorted(finals)]  # best objective first
    assert any(f"objective: {OBJECTIVE} (min)" in ln for ln in lines)


def test_sweep_by_folder_by_parent_id_and_last_are_the_same_runs(filled_store, capsys):
    s = filled_store
    expected = {r.info.run_id[:8] for r in s.children}
    for which in (str(s.sweep_dir), s.parent.info.run_id, "last"):
        status, lines, err = table(capsys, "--sweep", which, "--tracking-uri", s.uri, "--sort", "name")
        assert status == 0, err
        shown = {ln.split("│")[2].strip() for ln in lines if ln.startswith("│")}
        assert shown == expected, which
        assert any(f"sweep best: {s.parent.data.tags['sweep.best_run_name']}" in ln for ln in lines)


def test_sort_and_top(filled_store, capsys):
    s = filled_store
    status, lines, _ = table(
        capsys, "--experiment", "gaussian1d", "--tracking-uri", s.uri, "--sort", "duration", "--top", "1"
    )
    assert status == 0
    rows = [ln for ln in lines if ln.startswith("│")]
    shortest = min(s.children, key=lambda r: r.info.end_time - r.info.start_time)
    assert len(rows) == 1 and shortest.info.run_id[:8] in rows[0]
    assert "1 of 2 runs" in "\n".join(lines)


def test_dcgan_experiment_uses_its_own_objective(filled_store, capsys):
    s = filled_store
    objective, mode = s.dcgan.data.tags["objective"], s.dcgan.data.params["objective_mode"]
    assert objective != OBJECTIVE
    status, lines, _ = table(capsys, "--experiment", "dcgan", "--tracking-uri", s.uri)
    assert status == 0
    cells = dict(zip(header(lines), row_of(lines, s.dcgan)))
    assert cells["status"] == "FINISHED"
    assert cells["final"] == f"{s.dcgan.data.metrics[objective]:.4g}"
    assert any(f"objective: {objective} ({mode})" in ln for ln in lines)


def test_cli_plot_writes_a_png_and_logs_it_to_the_sweeps_parent(filled_store, tmp_path):
    """The user's command in a subprocess; the PNG is read back from disk and from the parent run."""
    s = filled_store
    out = tmp_path / "kl.png"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gan_runner.compare",
            "--sweep",
            str(s.sweep_dir),
            "--plot",
            OBJECTIVE,
            "--out",
            str(out),
            "--log-to-parent",
            "--tracking-uri",
            s.uri,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"wrote {out}" in proc.stdout
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 500 and pixels.std() > 0.01  # a drawn figure, not blank
    (logged,) = s.client.list_artifacts(s.parent.info.run_id, "compare")
    assert logged.path == "compare/kl.png" and logged.file_size == out.stat().st_size


def test_the_plot_draws_each_runs_history_under_its_label(filled_store):
    """The figure --plot writes: one line per run holding exactly its logged (step, value)
    pairs, in the colour of its legend entry, labelled by the param that differs."""
    from gan_runner import plots

    s = filled_store
    rows = [compare.make_row(s.uri, r) for r in s.children]
    fig = compare.metric_figure(s.uri, rows, OBJECTIVE, ["seed"])
    try:
        (ax,) = fig.axes
        legend = ax.get_legend()
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels == ["seed=1", "seed=2"]
        color_of = dict(zip(labels, (tuple(h.get_color()) for h in legend.legend_handles)))
        drawn = {
            tuple(line.get_color()): [tuple(p) for p in line.get_xydata()]
            for line in ax.get_lines()
            if len(line.get_xydata())
        }
        assert len(drawn) == 2
        for run in s.children:
            history = [(float(step), value) for step, value in metric_history(s.client, run.info.run_id, OBJECTIVE)]
            assert drawn[color_of[f"seed={run.data.params['seed']}"]] == history
        assert ax.get_xlabel() == "step" and ax.get_ylabel() == OBJECTIVE
    finally:
        plots.close(fig)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "nope"], "no experiment 'nope'"),
        (["--sweep", "/no/such/sweep"], "no runs"),
        (["--sweep", "0" * 32], "no run 00000000"),
        (["--experiment", "gaussian1d", "--plot", "eval/nope"], "--plot: no run here logged 'eval/nope'"),
        (["--experiment", "gaussian1d", "--plot", OBJECTIVE, "--log-to-parent"], "--log-to-parent needs --sweep"),
        (["--experiment", "gaussian1d", "--sort", "speed"], "--sort: invalid choice"),
        ([], "give --experiment NAME or --sweep"),
    ],
)
def test_bad_input_is_one_line_and_status_2(filled_store, capsys, args, message):
    status, _, err = table(capsys, *args, "--tracking-uri", filled_store.uri)
    assert status == compare.EXIT_BAD_INPUT
    assert err.count("\n") == 1 and err.startswith("compare: error: ") and message in err, err


def test_a_missing_store_is_bad_input_and_is_not_created(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    status, _, err = table(capsys, "--experiment", "gaussian1d", "--tracking-uri", f"sqlite:///{db}")
    assert status == compare.EXIT_BAD_INPUT and "no MLflow store" in err
    assert not db.exists()


def test_labels_tell_runs_apart(filled_store):
    rows = [compare.make_row(filled_store.uri, r) for r in filled_store.children]
    assert sorted(compare.run_labels(rows, ["seed"]).values()) == ["seed=1", "seed=2"]
    same = compare.run_labels(rows, [])  # nothing differs: run names (cut at 50 characters), unique by id
    assert len(set(same.values())) == 2
    assert all(math.isfinite(r.best) and r.best <= r.final for r in rows)


def test_a_narrow_terminal_cuts_run_names_keeps_numbers_and_names_params_left_out(filled_store, capsys, monkeypatch):
    """80 columns: every line fits, the numbers are whole, the run names are cut with "...", and
    the seed column still fits. 73 columns: the run column would fall under its 16 characters,
    so the seed column is left out and named under the table instead."""
    s = filled_store
    for columns, seed_column in ((80, True), (73, False)):
        monkeypatch.setenv("COLUMNS", str(columns))
        status, lines, err = table(capsys, "--experiment", "gaussian1d", "--tracking-uri", s.uri, "--sort", "name")
        assert status == 0, err
        assert max(len(ln) for ln in lines) <= columns, (columns, lines)
        cells = [dict(zip(header(lines), row_of(lines, run))) for run in s.children]
        for run, row in zip(s.children, cells):
            assert row["final"] == f"{run.data.metrics[OBJECTIVE]:.4g}"  # whole, not cut
            assert row["run"].endswith("…") and run.info.run_name.startswith(row["run"][:-1])
            assert (row.get("seed") == run.data.params["seed"]) == seed_column, (columns, row)
        assert header(lines)[6:] == (["seed"] if seed_column else [])
        assert [ln for ln in lines if ln.startswith("also differ:")] == ([] if seed_column else ["also differ: seed"])

"""What a run's start-up and end were made faster with (issue 15) changes nothing a user can
see: a new SQLite store copied from the cache's migrated template is the store MLflow itself
makes, and the whole CLI with the template, the paused garbage collector and the fast exit logs
the same numbers, for the same seed, as with a store MLflow migrated, the collector on and a
normal interpreter exit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from conftest import all_runs, cli_env

TINY = ["train_steps=60", "log_every=15", "eval_every=30", "plot_every=60", "eval.n_fake=2000", "seed=3"]


def tables(path) -> dict[str, list]:
    """Every table's columns (name, type, not null, default, primary key) and every index's
    columns. Not the CREATE statements: MLflow's own migrations keep or drop a CHECK constraint
    of `runs` depending on the process's hash seed (PYTHONHASHSEED=3 vs 1), so two stores MLflow
    made itself can differ there."""
    with sqlite3.connect(path) as db:
        names = db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index')").fetchall()
        return {
            name: db.execute(f"PRAGMA {'table_info' if kind == 'table' else 'index_info'}('{name}')").fetchall()
            for kind, name in names
        }


def test_new_store_from_the_template_is_the_store_mlflow_makes(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from gan_runner import tracking

    monkeypatch.setenv("GAN_RUNNER_CACHE", str(tmp_path / "cache"))
    own = tmp_path / "own" / "mlflow.db"  # as main made every new store: MLflow's migrations
    own.parent.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{own}").search_experiments()
    copies = []
    for name in ("a", "b"):  # the first makes the template, the second only copies it
        path = tmp_path / name / "mlflow.db"
        path.parent.mkdir()
        tracking.ensure_store(f"sqlite:///{path}")
        copies.append(path)
    (template,) = (tmp_path / "cache").glob("mlflow-*-empty.db")
    assert not list(tmp_path.glob("*/.mlflow.db.tmp-*")) and not list((tmp_path / "cache").glob(".*tmp*"))
    for path in copies:
        assert tables(path) == tables(own)  # the same schema, alembic's table included
        with sqlite3.connect(path) as db, sqlite3.connect(own) as ref:
            version = "SELECT version_num FROM alembic_version"
            assert db.execute(version).fetchall() == ref.execute(version).fetchall()
        # MLflow's own checks pass on open (_all_tables_exist, _verify_schema) and it adds the
        # Default experiment for this store's place, as it did for its own store
        client = MlflowClient(tracking_uri=f"sqlite:///{path}")
        (default,) = client.search_experiments()
        assert default.experiment_id == "0" and default.name == "Default"
        run = client.create_run(client.create_experiment("x"))
        client.log_metric(run.info.run_id, "m", 1.5, step=2)
        assert client.get_metric_history(run.info.run_id, "m")[0].value == 1.5
    (own_default,) = MlflowClient(tracking_uri=f"sqlite:///{own}").search_experiments()
    assert own_default.artifact_location.endswith("/mlruns/0") and default.artifact_location.endswith("/mlruns/0")
    # no experiment leaks from the template into a copy: it holds tables only
    with sqlite3.connect(template) as db:
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)


COLLECTOR_AT_FIT = """
import gc, sys
from gan_runner import __main__ as command, train
fit = train.Trainer.fit
def reported_fit(self):
    print("collector at fit:", gc.isenabled(), gc.get_freeze_count() > 0, flush=True)
    return fit(self)
train.Trainer.fit = reported_fit
command.program()
"""


def test_same_seed_same_numbers_with_the_template_store_and_the_fast_exit(tmp_path):
    """Main's way (a store MLflow migrated, cli() with the collector on, ending in a normal
    interpreter exit) against the command as shipped (the store copied from the template,
    program(): the collector paused until the run opens, the fast exit): every train/*, eval/*,
    best/* value at every step identical; both FINISHED, exit 0. And the command trains with
    the collector back on and the start-up frozen (else a long run would collect nothing, or
    rescan the imports' objects): `program()` is run with Trainer.fit reporting the collector."""
    from mlflow.tracking import MlflowClient

    main_way, now = tmp_path / "main_way", tmp_path / "now"
    main_way.mkdir(), now.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{main_way / 'mlflow.db'}").search_experiments()
    old = subprocess.run(
        [sys.executable, "-c", "import sys; from gan_runner.__main__ import cli; cli()", *TINY],
        cwd=main_way,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env({"GAN_RUNNER_CACHE": str(tmp_path / "no-cache")}),
    )
    assert old.returncode == 0, old.stderr[-2000:]
    assert not (tmp_path / "no-cache").exists()  # the store was there already: no template made
    new = subprocess.run(
        [sys.executable, "-c", COLLECTOR_AT_FIT, *TINY],
        cwd=now,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env({"GAN_RUNNER_CACHE": str(tmp_path / "cache")}),
    )
    assert new.returncode == 0, new.stderr[-2000:]
    assert "collector at fit: True True" in new.stdout, new.stdout[-2000:]
    assert list((tmp_path / "cache").glob("mlflow-*-empty.db"))
    assert "gan_runner: finished" in new.stdout and "step 60/60" in new.stdout  # flushed before the exit
    histories = []
    for folder in (main_way, now):
        client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
        (run,) = all_runs(client, "gaussian1d")
        assert run.info.status == "FINISHED"
        keys = sorted(k for k in run.data.metrics if not k.startswith("perf/"))
        histories.append(
            {
                k: [
                    (m.step, m.value)
                    for m in sorted(client.get_metric_history(run.info.run_id, k), key=lambda m: m.step)
                ]
                for k in keys
            }
        )
    assert any(k.startswith("eval/") for k in histories[0]) and any(k.startswith("train/") for k in histories[0])
    assert histories[0] == histories[1]


def test_the_collector_is_paused_for_the_imports_then_frozen_and_back_on():
    import gc

    from gan_runner import startup

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        startup.pause_collector()
        assert not gc.isenabled()
        alive = [[i] for i in range(1000)]  # what the imports leave alive
        startup.resume_collector()
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(alive)
        gc.disable()
        startup.resume_collector()  # once per pause: a second call changes nothing
        assert not gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
    # code that turned the collector off itself keeps it off
    gc.disable()
    try:
        startup.pause_collector()
        startup.resume_collector()
        assert not gc.isenabled()
    finally:
        gc.enable()

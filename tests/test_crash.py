"""Crash consistency (issue 18) and resume semantics (issue 11), on real runs killed with SIGKILL,
a real SQLite MLflow store and real checkpoints.

- kill -9 at every phase (and at store creation), resume, repeat: the finished run equals an
  uninterrupted one (tests/crash_harness.py; `make crash` runs hundreds of kills);
- a run killed before its first checkpoint: `resume=` says so in one line and ends it KILLED;
  `resume=last` never takes a run of another store;
- `resume=` of a FINISHED run: nothing to do (one line, store untouched) or, with a larger
  train_steps, the same run extended; a bare `resume=` continues the run's stored config;
- a 4-job parallel sweep killed mid-way continues with `sweep.resume=last` under its parent.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

import crash_harness as ch
from conftest import all_runs, compose_cfg, metric_history
from gan_runner import checkpoint, train
from gan_runner.config import ConfigError

pytestmark = pytest.mark.crash
TINY = ch.MODELS["gaussian1d"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory, classifier_cache):
    h = ch.Harness(tmp_path_factory.mktemp("crash"), classifier_cache)
    yield h
    h.close()


# Every kill point the other tests here do not use (they kill at store, startup, ckpt_tmp, eval), in
# the order a run reaches them: each launch resumes the run the previous kill left, so every point
# is reached again, and none lies before the first checkpoint (that case has its own test).
# `make crash` draws hundreds of points, named and at random times, from a seeded RNG.
# (The first kill of a fresh run is at its step-30 plot, after the step-20 checkpoint; chunks and
# timed flushes are counted in a resumed process: how many a fresh run makes depends on its speed.)
PLANS = {
    "gaussian1d": [
        ("at", "picture:1"),
        ("at", "trace:1"),
        ("at", "chunk:1"),
        ("at", "flush:1"),
        ("at", "weights:1"),
        ("at", "finish:1"),
    ],
    "dcgan": [("at", "picture:3"), ("at", "model:1")],
}  # its sample grids; the logged model


def test_kill9_at_every_phase_then_resume_equals_an_uninterrupted_run(harness):
    """Both models, killed at the points in PLANS one after another: the finished run equals the
    uninterrupted one (metrics, artifacts, grids, weights bit for bit, the logged model)."""
    assert {phase.split(":")[0] for plan in PLANS.values() for _, phase in plan} | {
        "store",
        "startup",
        "ckpt_tmp",
        "eval",
    } == set(ch.FAULT_PHASES)
    for model, plan in PLANS.items():
        outcome = harness.crash_run(model, None, len(plan), plan)
        assert outcome.held, (outcome.model, outcome.log, outcome.problems)
        # every point was reached, after the first checkpoint (no run had to start afresh)
        assert [code for _, _, code, _ in outcome.log] == [-signal.SIGKILL] * len(plan) + [0], outcome.log
        assert outcome.orphans == 0, outcome.log
    dcgan, _ = harness.reference("dcgan")  # what was compared includes a model and sample grids
    assert dcgan.models == [("generator", "READY")] and {(k, s) for k, s, _ in dcgan.images} == {
        ("samples", s) for s in (4, 8, 12)
    }


def test_killed_before_its_first_checkpoint_resume_says_so_and_ends_it_killed(harness, tmp_path, client, store):
    code, _, _ = harness.launch([*TINY, f"tracking.uri={store}"], tmp_path, fault="startup:1")
    assert code == -signal.SIGKILL
    (run,) = all_runs(client, "gaussian1d")
    assert run.info.status == "RUNNING" and not checkpoint.checkpoints(tmp_path / "checkpoints" / run.info.run_id)
    code, text, _ = harness.launch([*TINY, f"tracking.uri={store}", f"resume={run.info.run_id}"], tmp_path)
    lines = [ln for ln in text.splitlines() if ln.startswith("gan_runner:")]
    assert code == 2 and len(lines) == 1 and "nothing to resume" in lines[0], text[-2000:]
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_a_store_killed_while_being_created_is_not_left_half_made(harness, tmp_path, store):
    """MLflow makes a new SQLite store in ~50 migration steps; a kill among them used to leave a
    file no later run could open. It is built aside and moved into place whole."""
    code, _, _ = harness.launch([*TINY, f"tracking.uri={store}"], tmp_path, fault="store:1")
    assert code == -signal.SIGKILL
    assert not (tmp_path / "mlflow.db").exists() and list(tmp_path.glob(".mlflow.db.tmp-*"))
    code, text, _ = harness.launch([*TINY, f"tracking.uri={store}"], tmp_path)
    assert code == 0, text[-2000:]
    assert [r.info.status for r in all_runs(ch_client(store), "gaussian1d")] == ["FINISHED"]
    assert not list(tmp_path.glob(".mlflow.db.tmp-*")) and ch.integrity(tmp_path / "mlflow.db") == "ok"


def test_resume_last_never_takes_another_stores_run(tmp_path):
    shared = tmp_path / "ckpts"
    local = ["tracking=none", f"checkpoint.dir={shared}", *TINY, "train_steps=20"]
    train.run(compose_cfg(local), local)  # a checkpoint of a run that is in no store
    mine = [f"tracking.uri=sqlite:///{tmp_path / 'b.db'}", f"checkpoint.dir={shared}", *TINY, "resume=last"]
    with pytest.raises(ConfigError, match="nothing to resume.*1 there belong to other stores"):
        train.run(compose_cfg(mine), mine)


def _stored(client, run_id):
    run = client.get_run(run_id)
    paths, stack = [], [""]
    while stack:
        for item in client.list_artifacts(run_id, stack.pop() or None):
            (stack if item.is_dir else paths).append(item.path)
    history = {k: metric_history(client, run_id, k) for k in run.data.metrics}
    return run.info.status, run.info.end_time, run.data.tags, history, sorted(paths)


def test_resume_of_a_finished_run_does_nothing_or_extends_it_from_its_stored_config(store, client, capfd):
    """A 20-step run with its own cadences; resumed bare (no overrides but the store): nothing
    to do, the store untouched; resumed with train_steps=40 only: the same run goes on at its
    own cadences and ends as an uninterrupted 40-step run would (today's defaults log every 30)."""
    args = [f"tracking.uri={store}", *TINY, "train_steps=20", "plot_every=20", "tracking.run_name=short"]
    train.run(compose_cfg(args), args)
    (run,) = all_runs(client, "gaussian1d")
    run_id, before = run.info.run_id, _stored(client, run.info.run_id)
    capfd.readouterr()
    for token in (run_id, "last"):
        bare = [f"tracking.uri={store}", f"resume={token}"]
        assert train.run(compose_cfg(bare), bare) == run.data.metrics["eval/kl_target"]
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "nothing to resume" in err[0] and "train_steps=20" in err[0], err
        assert _stored(client, run_id) == before

    more = [f"tracking.uri={store}", f"resume={run_id}", "train_steps=40"]
    train.run(compose_cfg(more), more)
    full = [f"tracking.uri={store}", *TINY, "train_steps=40", "plot_every=20", "tracking.run_name=full"]
    train.run(compose_cfg(full), full)
    runs = {r.data.tags["mlflow.runName"]: r for r in all_runs(client, "gaussian1d")}
    assert set(runs) == {"short", "full"} and runs["short"].info.status == "FINISHED"
    assert runs["short"].data.tags["resume.changes"] == "train_steps: 20 -> 40"
    got, want = _stored(client, run_id)[3], _stored(client, runs["full"].info.run_id)[3]
    timing = lambda k: k.startswith("perf/") or k.endswith("_s")
    assert {k: v for k, v in got.items() if not timing(k)} == {k: v for k, v in want.items() if not timing(k)}
    assert [s for s, _ in got["train/d_loss"]] == list(range(10, 41, 10))


def test_bare_resume_of_a_killed_run_continues_its_stored_config(harness, tmp_path, store, client):
    """Killed after its first checkpoint (the second checkpoint's rename never happened) and
    resumed with only the store: it ends as the uninterrupted run of its own config."""
    expected, _ = harness.reference("gaussian1d")
    code, _, _ = harness.launch([*TINY, f"tracking.uri={store}"], tmp_path, fault="ckpt_tmp:2")
    assert code == -signal.SIGKILL
    (run,) = all_runs(client, "gaussian1d")
    code, text, _ = harness.launch([f"tracking.uri={store}", f"resume={run.info.run_id}"], tmp_path)
    assert code == 0, text[-2000:]
    assert ch.differences(expected, ch.snapshot(store, run.info.run_id, tmp_path)) == []


def test_a_checkpoint_is_never_ahead_of_the_store(harness, tmp_path, store, client):
    """Metrics are flushed before a checkpoint is renamed into place. With no flush on a timer
    (flush_every_s an hour) and a kill before the second checkpoint's rename, the store must hold
    every logged step up to the first checkpoint's: the resume skips them, nothing sends them again."""
    args = [a for a in TINY if not a.startswith("tracking.flush_every_s")] + ["tracking.flush_every_s=3600"]
    code, text, _ = harness.launch([*args, f"tracking.uri={store}"], tmp_path, fault="ckpt_tmp:2")
    assert code == -signal.SIGKILL, text[-2000:]
    (run,) = all_runs(client, "gaussian1d")
    (ckpt,) = checkpoint.checkpoints(tmp_path / "checkpoints" / run.info.run_id)
    assert ckpt.name == "ckpt-000000020.npz"  # the first (checkpoint.every=20); the second never renamed
    stored = lambda key: [s for s, _ in metric_history(client, run.info.run_id, key) if s <= 20]
    assert stored("train/d_loss") == stored("train/g_loss") == [10, 20]  # log_every=10
    assert stored("eval/kl_target") == [20]  # eval_every=20


def test_a_kill_while_another_run_writes_the_same_store_loses_nothing_of_either(harness, tmp_path, store, client):
    """A longer run writes the store (flushing every 0.1 s) while another in the same store is killed and
    resumed: the store stays sound, and both runs end as their uninterrupted references."""
    long_args = [*TINY, "train_steps=600", "tracking.flush_every_s=0.1"]
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    ref_store = f"sqlite:///{ref_dir / 'mlflow.db'}"
    assert harness.launch([*long_args, f"tracking.uri={ref_store}"], ref_dir)[0] == 0
    (ref_run,) = all_runs(ch_client(ref_store), "gaussian1d")
    expected_long = ch.snapshot(ref_store, ref_run.info.run_id, ref_dir)
    expected_short, _ = harness.reference("gaussian1d")

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "neighbour.log", "w") as out:
        neighbour = subprocess.Popen(
            [sys.executable, "-m", "gan_runner", *long_args, f"tracking.uri={store}"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 300
    while not (tmp_path / "mlflow.db").exists() or not any(
        client.get_metric_history(r.info.run_id, "train/d_loss") for r in all_runs(client, "gaussian1d")
    ):
        assert neighbour.poll() is None and time.monotonic() < deadline, (tmp_path / "neighbour.log").read_text()[
            -2000:
        ]
        time.sleep(0.1)
    (first,) = all_runs(client, "gaussian1d")
    short = [*TINY, f"tracking.uri={store}"]
    # killed as its second checkpoint is written: the first one is in place
    assert harness.launch(short, tmp_path, fault="ckpt_tmp:2")[0] == -signal.SIGKILL
    assert neighbour.poll() is None, "the neighbour ended before the kill: nothing was tested"
    assert ch.integrity(tmp_path / "mlflow.db") == "ok"
    (second,) = [r.info.run_id for r in all_runs(client, "gaussian1d") if r.info.run_id != first.info.run_id]
    assert harness.launch([*short, f"resume={second}"], tmp_path)[0] == 0
    assert neighbour.wait(timeout=300) == 0, (tmp_path / "neighbour.log").read_text()[-2000:]
    assert ch.integrity(tmp_path / "mlflow.db") == "ok"
    for run_id, expected in ((first.info.run_id, expected_long), (second, expected_short)):
        assert ch.differences(expected, ch.snapshot(store, run_id, tmp_path)) == [], run_id


def ch_client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


SWEEP = [
    "-m",
    "hydra/launcher=parallel",
    "seed=0,1,2,3",
    "train_steps=600",
    "log_every=10",
    "eval_every=50",
    "plot_every=100000",
    "sample_every=100000",
    "eval.n_fake=500",
    "checkpoint.every=50",
    "tracking.flush_every_s=0.5",
]


@pytest.mark.slow
def test_parallel_sweep_killed_midway_resumes_under_the_same_parent(tmp_path, store, client):
    """kill -9 of the whole sweep (launcher and joblib workers) once one job has FINISHED and
    another has a checkpoint; `sweep.resume=last` skips the finished, resumes the interrupted
    and runs the rest: 4 FINISHED children with complete histories, one parent."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [
        sys.executable,
        "-m",
        "gan_runner",
        *SWEEP,
        f"tracking.uri={store}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    with open(tmp_path / "first.log", "w") as out:
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=out, start_new_session=True)

    def midway() -> bool:
        children = (
            [r for r in all_runs(client, "gaussian1d") if "mlflow.parentRunId" in r.data.tags]
            if (tmp_path / "mlflow.db").exists()
            else []
        )
        done = [r for r in children if r.info.status == "FINISHED"]
        going = [
            r
            for r in children
            if r.info.status == "RUNNING" and checkpoint.checkpoints(tmp_path / "checkpoints" / r.info.run_id)
        ]
        return bool(done and going)

    deadline = time.monotonic() + 400
    while not midway():
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the sweep never got midway"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)  # the workers die with their process group
    runs = all_runs(client, "gaussian1d")
    assert sum(r.info.status == "FINISHED" for r in runs) < 4

    resumed = subprocess.run(
        [*args[:-1], f"hydra.sweep.dir={tmp_path / 'sweep2'}", "sweep.resume=last"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = all_runs(client, "gaussian1d")
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.n_jobs"] == "4"
    assert len(runs) == 5 and sorted(r.data.tags["hydra.job.num"] for r in children) == ["0", "1", "2", "3"]
    assert any("resumed" in r.data.tags for r in children)
    for child in children:
        assert child.info.status == "FINISHED"
        assert [s for s, _ in metric_history(client, child.info.run_id, "train/d_loss")] == list(range(10, 601, 10))
        assert [s for s, _ in metric_history(client, child.info.run_id, "eval/kl")] == list(range(50, 601, 50))
        assert [s for s, _ in metric_history(client, child.info.run_id, "eval/kl_floor")] == [0]

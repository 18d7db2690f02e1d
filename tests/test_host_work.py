"""The run's writing off the training thread (gan_runner/host_work.py): in order, never ahead of
what was handed over before it, errors raised in the training thread, and the training going on
while a figure is drawn. Real runs: real Hydra config, TensorFlow and MLflow on a temp SQLite store."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import all_runs, compose_cfg
from gan_runner import train
from gan_runner.host_work import HostWork
from gan_runner.models.gan import GanStep


def test_jobs_run_in_order_and_a_failure_stops_the_rest_and_is_raised():
    work, done = HostWork(), []

    def fail():
        raise OSError("disk full")

    work.submit(time.sleep, 0.2)  # the jobs after it wait: the order is kept, not the timing
    for i in range(3):
        work.submit(done.append, i)
    work.drain()
    assert done == [0, 1, 2]
    work.submit(fail)
    work.submit(done.append, "after the failure")  # e.g. a checkpoint after metrics never written
    with pytest.raises(OSError, match="disk full"):
        work.drain()
    assert done == [0, 1, 2]
    with pytest.raises(OSError, match="disk full"):  # at every later hand-over too; that job never runs
        work.submit(done.append, "later")
    with pytest.raises(OSError, match="disk full"):
        work.close()
    assert done == [0, 1, 2]


def test_a_failed_job_is_raised_at_the_next_hand_over():
    work = HostWork()
    work.submit(lambda: 1 / 0)
    deadline = time.monotonic() + 10
    while work._futures and not work._futures[0].done() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ZeroDivisionError):
        work.submit(print, "never")
    with pytest.raises(ZeroDivisionError):
        work.close()


def _checkpoint_arrays(folder: Path, step: int) -> dict[str, np.ndarray]:
    with np.load(folder / f"ckpt-{step:09d}.npz") as saved:
        return {k: saved[k] for k in saved.files if k != "__meta__"}


def _only_checkpoint_folder(root: Path) -> Path:
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


CADENCE = ["eval_every=30", "log_every=10", "plot_every=30", "checkpoint.every=30", "eval.n_fake=2000"]


def test_training_goes_on_while_a_figure_is_drawn_and_the_checkpoint_holds_its_own_step(tmp_path, monkeypatch):
    """The first figure takes 1.5 s to draw: the steps after it run meanwhile, on the training
    thread, and the checkpoint of that step (written after the figure) still holds the state of
    that step, the same arrays as a run that stopped there. The next checkpoint's hand-over
    waits for that one: at most one checkpoint is in the writing."""
    from gan_runner import plots

    drawn: list[tuple[str, float, float]] = []  # (thread, start, end)
    chunks: list[tuple[int, float]] = []  # (the step a chunk starts from, when)
    kde_figure, run_steps = plots.kde_figure, GanStep.run_steps

    def slow_kde_figure(*args, **kwargs):
        started = time.monotonic()
        if not drawn:
            time.sleep(1.5)
        figure = kde_figure(*args, **kwargs)
        drawn.append((threading.current_thread().name, started, time.monotonic()))
        return figure

    def recorded_run_steps(self, n):
        assert threading.current_thread() is threading.main_thread()
        chunks.append((int(self.step.numpy()), time.monotonic()))
        return run_steps(self, n)

    monkeypatch.setattr(plots, "kde_figure", slow_kde_figure)
    monkeypatch.setattr(GanStep, "run_steps", recorded_run_steps)
    runs = {}
    for steps in (90, 30):
        store = f"sqlite:///{tmp_path}/{steps}/mlflow.db"
        (tmp_path / str(steps)).mkdir()
        overrides = [f"tracking.uri={store}", f"train_steps={steps}", *CADENCE]
        runs[steps] = train.run(compose_cfg(overrides), overrides)
    assert len(drawn) == 4  # steps 30, 60, 90 of the first run; 30 of the second
    assert all(thread != threading.main_thread().name for thread, _, _ in drawn)
    _, _, first_end = drawn[0]
    # drawn on the training thread, no step past 30 could start before the drawing ended
    assert [step for step, at in chunks if step >= 30 and at < first_end], "the steps waited for the figure"
    # but the checkpoint at 60 waits for the one at 30 (written after that figure): one in the writing at most
    assert not [step for step, at in chunks if step >= 60 and at < first_end], "two checkpoints were in the writing"
    ahead, stopped = (_only_checkpoint_folder(tmp_path / str(s) / "checkpoints") for s in (90, 30))
    assert sorted(p.name for p in ahead.glob("ckpt-*.npz")) == [f"ckpt-{s:09d}.npz" for s in (30, 60, 90)]
    mid, end = _checkpoint_arrays(ahead, 30), _checkpoint_arrays(stopped, 30)
    assert mid.keys() == end.keys()
    for name in mid:
        if not name.startswith("host.trainer."):  # the loop's own record differs: one run ended there
            np.testing.assert_array_equal(mid[name], end[name], err_msg=name)


def test_a_failed_upload_fails_the_run_and_no_checkpoint_follows_it(store, client, monkeypatch, tmp_path):
    from gan_runner import tracking

    def disk_full(self, figure, artifact_file):
        raise OSError(f"disk full while writing {artifact_file}")

    monkeypatch.setattr(tracking.MlflowTracker, "log_figure", disk_full)
    overrides = [f"tracking.uri={store}", "train_steps=90", *CADENCE]
    with pytest.raises(OSError, match="disk full while writing plots/kde_step0000030.png"):
        train.run(compose_cfg(overrides), overrides)
    (run,) = all_runs(client, "gaussian1d")
    assert run.info.status == "FAILED" and "disk full" in run.data.tags["error"]
    folder = Path(store.removeprefix("sqlite:///")).parent / "checkpoints" / run.info.run_id
    assert not list(folder.glob("ckpt-*.npz")), "a checkpoint was written after its step's figure failed"
    history = client.get_metric_history(run.info.run_id, "eval/kl")
    assert [m.step for m in history] == [30]  # what came before the failure is in the store

"""Nothing lost: Ctrl-C / SIGTERM / kill -9 on the real CLI then resumed, a checkpoint write
killed half way, divergence, early stop, and an exception, against a real SQLite MLflow store."""

import math
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import MNIST, ROOT, TINY_1D, TINY_DCGAN, all_runs, cli_env, compose_cfg, metric_history, run_cli
from gan_runner import checkpoint, train
from gan_runner.config import ConfigError
from gan_runner.stopping import PAUSE_ENV, SignalStop

# A 1-D run that would go on for hours; metrics reach the store within 0.1 s of being logged.
ENDLESS = [
    "train_steps=100000000",
    "log_every=10",
    "eval_every=100",
    "plot_every=100000000",
    "sample_every=100000000",
    "eval.n_fake=200",
    "checkpoint.every=0",
    "tracking.flush_every_s=0.1",
]


class Cli:
    """`python -m gan_runner <args>` in the background; stdout/stderr go to files we can poll."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None):
        self.cwd, n = cwd, len(list(cwd.glob("stdout-*")))
        self.stdout, self.stderr = cwd / f"stdout-{n}", cwd / f"stderr-{n}"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gan_runner", *args], cwd=cwd, env=cli_env(env), stdout=out, stderr=err
            )

    def wait_until(self, ready, what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, (
                f"exited {self.proc.returncode} before {what}: {self.stderr.read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def finish(self, timeout: float = 240) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        return rc, self.stderr.read_text()


def _max_step(client, run_id: str, key: str = "train/d_loss") -> int:
    return max((m.step for m in client.get_metric_history(run_id, key)), default=-1)


def _the_run(client):
    (run,) = all_runs(client, "gaussian1d")  # one run, whatever happened to it
    return run


def _stopped_at(stderr: str, name: str) -> int:
    line = next(ln for ln in stderr.splitlines() if f"stopped by {name} at step " in ln)
    return int(line.split(f"stopped by {name} at step ")[1].split(";")[0])


def test_sigint_sigterm_kill9_each_resumed_into_the_same_run(tmp_path, store, client):
    folder_of = lambda run_id: tmp_path / "checkpoints" / run_id  # beside the SQLite store
    first = Cli([f"tracking.uri={store}", *ENDLESS], tmp_path)
    first.wait_until(lambda: "step " in first.stdout.read_text(), "training to start")  # the store exists now
    run_id = _the_run(client).info.run_id
    first.wait_until(lambda: _max_step(client, run_id) >= 200, "200 steps logged")

    # 1. Ctrl-C: checkpoint, run KILLED, exit 130, a resume command on stderr.
    first.proc.send_signal(signal.SIGINT)
    rc, err = first.finish()
    assert rc == 130, err[-2000:]
    s1 = _stopped_at(err, "SIGINT")
    assert [p.name for p in checkpoint.checkpoints(folder_of(run_id))] == [f"ckpt-{s1:09d}.npz"]
    assert _the_run(client).info.status == "KILLED"
    assert _max_step(client, run_id) == s1 - s1 % 10  # everything logged up to the stop is stored
    command = next(ln for ln in err.splitlines() if "resume with: python -m gan_runner " in ln)
    resume_args = shlex.split(command.split("resume with: python -m gan_runner ", 1)[1])
    assert f"resume={run_id}" in resume_args

    # 2. The printed command continues the same run; SIGTERM: checkpoint, KILLED, exit 143.
    second = Cli(resume_args, tmp_path)
    second.wait_until(lambda: _max_step(client, run_id) >= s1 + 200, "200 more steps")
    assert _the_run(client).info.status == "RUNNING" and _the_run(client).info.run_id == run_id
    second.proc.send_signal(signal.SIGTERM)
    rc, err = second.finish()
    assert rc == 143, err[-2000:]
    s2 = _stopped_at(err, "SIGTERM")
    assert s2 > s1 and checkpoint.newest(folder_of(run_id)).step == s2
    assert _the_run(client).info.status == "KILLED" and "resume with:" in err

    # 3. kill -9: no checkpoint, the run is left RUNNING, some metrics past the checkpoint stored.
    third = Cli(resume_args, tmp_path)
    third.wait_until(lambda: _max_step(client, run_id) >= s2 + 200, "200 more steps")
    third.proc.kill()
    assert third.finish()[0] == -signal.SIGKILL
    assert _the_run(client).info.status == "RUNNING"
    assert checkpoint.newest(folder_of(run_id)).step == s2
    logged = _max_step(client, run_id)
    assert logged > s2  # the resume recomputes these steps and must not log them twice

    # 4. Resume takes the RUNNING run over and finishes it (train_steps may change on resume).
    end = (logged // 100 + 2) * 100
    last = Cli([a if not a.startswith("train_steps=") else f"train_steps={end}" for a in resume_args], tmp_path)
    rc, err = last.finish()
    assert rc == 0, err[-2000:]
    run = _the_run(client)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.tags["resumed"].startswith(f"from step {s2} ")
    # Every logged step exactly once, none missing: across two signals and a kill -9.
    assert [s for s, _ in metric_history(client, run_id, "train/d_loss")] == list(range(10, end + 1, 10))
    assert [s for s, _ in metric_history(client, run_id, "eval/kl")] == list(range(100, end + 1, 100))
    assert [s for s, _ in metric_history(client, run_id, "eval/kl_floor")] == [0]
    assert checkpoint.newest(folder_of(run_id)).step == end


# (phase, signal, model): every phase of a run's life, from the CLI's first line to the final
# upload; SIGINT and SIGTERM alternate. The run exists from phase "run" on.
PHASES = [
    ("startup", signal.SIGTERM, "1d"),
    ("data", signal.SIGINT, "1d"),
    ("tensorflow", signal.SIGTERM, "1d"),
    ("classifier", signal.SIGINT, "dcgan"),
    ("run", signal.SIGTERM, "1d"),
    ("tracing", signal.SIGINT, "1d"),
    ("eval", signal.SIGTERM, "1d"),
    ("upload", signal.SIGINT, "1d"),
]
RUN_EXISTS = ("run", "tracing", "eval", "upload")
SHORT_1D = ["train_steps=20", "log_every=10", "eval_every=10", "plot_every=20", "eval.n_fake=200", "checkpoint.every=0"]


def test_a_signal_in_every_phase_exits_128_plus_signal_and_leaves_nothing_running(tmp_path):
    """Each case is the real CLI paused at a named phase (stopping.PAUSE_ENV: the process says
    where it waits, no sleeps), then signalled. All cases run at once, each with its own store."""
    cases = []
    for phase, signum, model in PHASES:
        cwd = tmp_path / f"{phase}-{signum.name}"
        cwd.mkdir()
        args = [f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"]
        if model == "dcgan":  # a classifier cache of its own: the classifier trains in this run
            args += [
                "model=dcgan",
                f"data.path={MNIST}",
                *TINY_DCGAN,
                f"eval.classifier.cache_dir={cwd / 'cache'}",
                "eval.classifier.train_steps=400",
            ]
        else:
            args += SHORT_1D
        cases.append((phase, signum, cwd, Cli(args, cwd, env={PAUSE_ENV: phase})))
    for phase, signum, cwd, cli in cases:
        cli.wait_until(lambda: f"paused at phase {phase}" in cli.stderr.read_text(), f"phase {phase}")
        cli.proc.send_signal(signum)
    for phase, signum, cwd, cli in cases:
        rc, err = cli.finish()
        what = f"{signum.name} at {phase}: {err[-1500:]}"
        assert rc == 128 + signum, what
        assert "Traceback" not in err, what
        runs = (
            all_runs(MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}"), "gaussian1d")
            if (cwd / "mlflow.db").exists()
            else []
        )
        assert [r.info.status for r in runs] == (["KILLED"] if phase in RUN_EXISTS else []), what
        if phase in RUN_EXISTS:  # a checkpoint to resume from, and the command that does it
            newest = checkpoint.newest(cwd / "checkpoints" / runs[0].info.run_id)
            assert (
                newest.step == {"run": 0, "tracing": _stopped_at(err, signum.name), "eval": 10, "upload": 20}[phase]
            ), what
            assert f"resume={runs[0].info.run_id}" in err, what
        else:
            assert f"stopped by {signum.name} before training started; no run was created" in err, what
            assert not (cwd / "checkpoints").exists(), what
        if phase == "classifier":  # stopped inside the classifier's training: nothing cached
            assert not list((cwd / "cache").glob("*.weights.h5")), what


SECOND_SIGNAL = """
import os, signal, sys, time
from gan_runner.stopping import PAUSE_ENV, SignalStop
signum = int(sys.argv[1])
with SignalStop() as stop:
    os.kill(os.getpid(), signum)
    time.sleep(0.2)
    print("flag", stop.signum, flush=True)
    os.kill(os.getpid(), signum)
    time.sleep(10)
    print("still running", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_sets_a_flag_the_second_exits_at_once(signum):
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL, str(int(signum))], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == -signum, out.stderr  # killed by the signal itself, at once
    assert out.stdout.split() == ["flag", str(int(signum))]
    assert "send it again to quit at once" in out.stderr
    assert time.monotonic() - started < 8


def test_signal_handlers_are_restored_after_training():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with SignalStop() as stop:
        assert signal.getsignal(signal.SIGINT) == stop._handle
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from gan_runner import checkpoint

folder = Path(sys.argv[1])
payload = (folder / "ckpt-000000020.npz").read_bytes()

def half_then_die(f):  # the process dies after writing half a file, before the rename
    f.write(payload[: len(payload) // 2])
    f.flush()
    os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint.write_atomic(folder / "ckpt-000000030.npz", half_then_die)
"""


def test_checkpoint_write_killed_half_way_leaves_the_previous_one(tmp_path):
    args = ["tracking=none", f"checkpoint.dir={tmp_path}", *TINY_1D, "train_steps=20", "checkpoint.every=10"]
    train.run(compose_cfg(args), args)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    out = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(folder)], cwd=ROOT, capture_output=True, timeout=30
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    (temp,) = folder.glob(".ckpt-000000030.npz.tmp-*")  # half a file, under a name no reader takes
    assert 0 < temp.stat().st_size < (folder / "ckpt-000000020.npz").stat().st_size
    assert [p.name for p in checkpoint.checkpoints(folder)] == ["ckpt-000000010.npz", "ckpt-000000020.npz"]
    assert checkpoint.newest(folder).step == 20

    # A failure inside this process: the exception goes up, nothing is left behind.
    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.write_atomic(folder / "ckpt-000000040.npz", fail)
    assert not (folder / "ckpt-000000040.npz").exists() and len(list(folder.glob(".ckpt-000000040*"))) == 0

    # A damaged file under a checkpoint's name (e.g. a disk error): skipped for the one before,
    # and named in one line when asked for explicitly.
    (folder / "ckpt-000000050.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert checkpoint.newest(folder).step == 20
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        checkpoint.read(folder / "ckpt-000000050.npz")
    (folder / "ckpt-000000050.npz").unlink()

    # Resuming from the folder continues from step 20; the stale temp file is cleared.
    more = [
        "tracking=none",
        f"checkpoint.dir={tmp_path}",
        *TINY_1D,
        "train_steps=30",
        "checkpoint.every=10",
        f"resume={folder}",
    ]
    train.run(compose_cfg(more), more)
    assert [p.name for p in checkpoint.checkpoints(folder)] == [f"ckpt-{s:09d}.npz" for s in (10, 20, 30)]
    assert not list(folder.glob(".ckpt-*"))


def test_divergence_fails_the_run_cleanly(tmp_path, store, client):
    """A huge learning rate makes the losses inf/NaN within a few steps, for real."""
    args = [
        f"tracking.uri={store}",
        "train_steps=200",
        "log_every=1",
        "eval_every=1000",
        "plot_every=1000",
        "eval.n_fake=200",
        "optimizer.d.learning_rate=1e10",
        "optimizer.g.learning_rate=1e10",
    ]
    out = run_cli(args, tmp_path)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("gan_runner:")]
    assert out.returncode == 3 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    run = _the_run(client)
    step = int(run.data.tags["divergence"].removeprefix("step "))
    assert 1 <= step < 200 and f"diverged at step {step}" in lines[0]
    assert run.info.status == "FAILED" and "Diverged" in run.data.tags["error"]
    history = metric_history(client, run.info.run_id, "train/d_loss")
    assert [s for s, _ in history] == list(range(1, step))  # up to the step before, never NaN
    for key in run.data.metrics:
        assert all(math.isfinite(m.value) for m in client.get_metric_history(run.info.run_id, key)), key
    assert "error.log" in {a.path for a in client.list_artifacts(run.info.run_id)}

    # on_divergence=penalty: the sweeper gets a finite penalty instead of an exception.
    cfg = compose_cfg(
        ["tracking=none", *args[1:], "on_divergence=penalty", "sweep.penalty=123", f"checkpoint.dir={tmp_path}"]
    )
    assert train.run(cfg, []) == 123.0


def test_early_stop_needs_patience_values_in_a_row(store, client):
    """early_stop.patience logged values in a row at or above the threshold end the run FINISHED,
    with a tag saying why; a value below it starts the count again. Off by default. A first run
    without the rule gives the logged train/d_acc sequence; the threshold is picked from it so
    that the values go met, missed, met, met: patience 2 must stop at the second of those last two,
    not at the second value met overall."""
    assert compose_cfg([]).early_stop.patience == 0
    # random batches of 32: a noisy d_acc, logged at every step
    args = [
        f"tracking.uri={store}",
        *TINY_1D,
        "train_steps=60",
        "log_every=1",
        "eval_every=1000",
        "batch.order=random",
        "batch.size=32",
        "batch.reuse_noise=false",
    ]
    train.run(compose_cfg([*args, "tracking.run_name=free"]), args)
    (free,) = all_runs(client, "gaussian1d")
    history = metric_history(client, free.info.run_id, "train/d_acc")
    assert [s for s, _ in history] == list(range(1, 61))
    values = [v for _, v in history]

    def first_pair(threshold):  # index of the first value met right after another met one
        met = [v >= threshold for v in values]
        return next((i for i in range(1, len(met)) if met[i] and met[i - 1]), None), met

    chosen = None
    for threshold in sorted(set(values), reverse=True):
        stop, met = first_pair(threshold)
        if stop is not None and stop >= 3 and met.index(True) < stop - 1 and not all(met[met.index(True) : stop + 1]):
            chosen = threshold, stop
            break
    assert chosen, [round(v, 3) for v in values]
    threshold, stop = chosen
    expected_step = history[stop][0]
    rule = ["early_stop.patience=2", "early_stop.metric=train/d_acc", f"early_stop.threshold={threshold!r}"]
    train.run(compose_cfg([*args, *rule, "tracking.run_name=stopped"]), [*args, *rule])
    (run,) = [r for r in all_runs(client, "gaussian1d") if r.info.run_name == "stopped"]
    assert run.info.status == "FINISHED" and run.data.tags["early_stop"].startswith(f"step {expected_step}:")
    stopped = metric_history(client, run.info.run_id, "train/d_acc")
    assert stopped == history[: stop + 1]  # the same values up to the stop, none after
    met = [v >= threshold for _, v in stopped]
    assert met[-2:] == [True, True] and True in met[:-2] and False in met[met.index(True) : -2]  # met, missed, met, met


def test_any_exception_fails_the_run_with_the_error_and_traceback(tmp_path, store, client):
    """A real error after training started (an objective that is never logged)."""
    args = [f"tracking.uri={store}", *TINY_1D, "train_steps=20", "objective=eval/nope"]
    with pytest.raises(ConfigError, match="eval/nope"):
        train.run(compose_cfg(args), args)
    run = _the_run(client)
    assert run.info.status == "FAILED" and "ConfigError: objective: 'eval/nope'" in run.data.tags["error"]
    log = Path(client.download_artifacts(run.info.run_id, "error.log", str(tmp_path))).read_text()
    assert (
        log.startswith("Traceback")
        and "gan_runner/train.py" in log
        and log.rstrip().splitlines()[-1].startswith("gan_runner.errors.ConfigError")
    )

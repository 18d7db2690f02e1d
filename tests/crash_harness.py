"""Fault injection: kill -9 a real run at points drawn from a seeded RNG, resume it, repeat, and
check that the finished run's store equals an uninterrupted run's (issue 18's property).

    python tests/crash_harness.py --runs 20 --kills 5 --seed 0     # what `make crash` runs
    run_suite(...)                                                # tests/test_crash.py

Each run of a small config (gaussian1d; a tiny dcgan on real MNIST) is killed `kills` times,
each kill drawn from the seeded RNG: either at a named point of the code (GAN_RUNNER_FAULT=
"<phase>:<n>", gan_runner/faults.py: start-up, first trace, compiled chunks, evaluation, picture
upload, metric flush, checkpoint between temp file and rename, final weights, model upload,
just before FINISHED; and the store's creation) or after a random time. After every kill the SQLite store must pass
`PRAGMA integrity_check`; a run killed before its first checkpoint must be refused by `resume=`
in one line and ended KILLED (then started afresh). Then the run is resumed to the end and
compared with the uninterrupted run of the same config and seed: every (metric, step, value)
once, no gaps; the same artifacts (one sample grid per key and step); final weights bit for
bit; one logged model; status FINISHED.

Processes are forked from a "zygote" that has imported TensorFlow, Keras and MLflow once (the
imports take 5-13 s on a loaded 2-core machine, a tiny run 1-2 s): each launch is still a
separate process running the real CLI (`gan_runner.__main__.cli`) and dying by a real SIGKILL.
Only third-party modules are preloaded: gan_runner itself (and so GAN_RUNNER_FAULT) is imported
fresh in every child.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # snapshot() downloads weights quietly
ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("GAN_RUNNER_MNIST", ROOT.parent / "shared" / "datasets" / "mnist"))
FAULT_PHASES = (
    "store",
    "startup",
    "trace",
    "chunk",
    "eval",
    "picture",
    "flush",
    "ckpt_tmp",
    "weights",
    "model",
    "finish",
)

# Small configs that pass through every phase several times; flushes happen at checkpoints (and
# every 0.3 s, so some metrics reach the store ahead of the checkpoint, as in a long run).
MODELS = {
    "gaussian1d": [
        "model=gaussian1d",
        "train_steps=60",
        "log_every=10",
        "eval_every=20",
        "plot_every=30",
        "eval.n_fake=500",
        "checkpoint.every=20",
        "tracking.flush_every_s=0.3",
    ],
    "dcgan": [
        "model=dcgan",
        f"data.path={MNIST}",
        "data.n=256",
        "batch.size=16",
        "model.latent_dim=8",
        "model.g_filters=[16,8,8,1]",
        "model.d_filters=[8,8,8,8]",
        "train_steps=12",
        "log_every=2",
        "eval_every=4",
        "sample_every=4",
        "plot_every=6",
        "eval.n_fake=64",
        "checkpoint.every=4",
        "eval.classifier.train_steps=20",
        "tracking.log_model=true",
        "tracking.flush_every_s=0.3",
    ],
}
# How often a fresh run of each config reaches each point (a larger count lets the run finish).
REACHED = {
    "gaussian1d": {
        "store": 1,
        "startup": 1,
        "trace": 1,
        "chunk": 8,
        "eval": 3,
        "picture": 2,
        "flush": 4,
        "ckpt_tmp": 3,
        "weights": 2,
        "model": 0,
        "finish": 1,
    },
    "dcgan": {
        "store": 1,
        "startup": 1,
        "trace": 1,
        "chunk": 8,
        "eval": 3,
        "picture": 6,
        "flush": 4,
        "ckpt_tmp": 3,
        "weights": 2,
        "model": 1,
        "finish": 1,
    },
}
IGNORED_METRICS = re.compile(r"^perf/|_s$|^classifier/cached$")  # wall-clock times; the cache's state
IMAGE = re.compile(
    r"^images/(?P<key>.+)\+step\+(?P<step>\d+)\+timestamp\+\d+\+[0-9a-f-]+(?P<kind>\+compressed\.webp|\.png)$"
)


# ---- launching real runs from a zygote -------------------------------------------------------

ZYGOTE = r"""
import json, os, sys
import tensorflow, keras, mlflow, mlflow.keras, seaborn, hydra, omegaconf  # noqa: the slow imports, once
from mlflow.tracking import MlflowClient  # noqa
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.update(job["env"])
        os.chdir(job["cwd"])
        out = os.open(job["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.argv = ["gan_runner", *job["args"]]
        code = 1
        try:
            from gan_runner.__main__ import cli
            cli()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    print("pid", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exit", pid, os.waitstatus_to_exitcode(status), flush=True)
"""


class Zygote:
    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            cwd=ROOT,
            env=env,
            text=True,
            bufsize=1,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout.readline().strip() == "ready", "the zygote did not start"

    def launch(
        self, args: list[str], cwd: Path, out: Path, env: dict[str, str], kill_after: float | None = None
    ) -> int:
        """Run the CLI in a forked child; SIGKILL it after `kill_after` s if still running.
        Returns its exit code (-9 when killed)."""
        self.proc.stdin.write(json.dumps({"args": args, "cwd": str(cwd), "out": str(out), "env": env}) + "\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline().split()[1])
        if kill_after is not None:
            ready, _, _ = select.select([self.proc.stdout], [], [], kill_after)
            if not ready:
                os.kill(pid, signal.SIGKILL)
        word, done, code = self.proc.stdout.readline().split()
        assert word == "exit" and int(done) == pid
        return int(code)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ---- what a finished run holds -----------------------------------------------------------------


@dataclass
class Snapshot:
    status: str
    params: dict
    metrics: dict  # key -> sorted [(step, value)], duplicates kept
    artifacts: set  # paths, images reduced to (key, step, kind) and counted separately
    images: collections.Counter
    weights: dict  # artifact path -> {dataset name: bytes}
    models: list  # (name, status) of the run's logged models
    run_id: str = ""


def snapshot(uri: str, run_id: str, tmp: Path) -> Snapshot:
    import h5py
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    metrics = {
        k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
        for k in run.data.metrics
        if not IGNORED_METRICS.search(k)
    }
    paths, stack = [], [""]
    while stack:
        for item in client.list_artifacts(run_id, stack.pop() or None):
            (stack if item.is_dir else paths).append(item.path)
    images = collections.Counter()
    artifacts = set()
    for path in paths:
        found = IMAGE.match(path)
        if found:
            images[(found["key"], int(found["step"]), found["kind"])] += 1
        elif not re.fullmatch(r"config_resume_step\d+\.yaml", path):  # a resume's own config: expected extra
            artifacts.add(path)
    weights = {}
    for path in sorted(p for p in paths if p.endswith(".weights.h5")):
        local = client.download_artifacts(run_id, path, str(tmp))
        with h5py.File(local) as f:
            arrays = {}
            f.visititems(
                lambda name, obj: arrays.update({name: obj[()].tobytes()}) if isinstance(obj, h5py.Dataset) else None
            )
        weights[path] = arrays
    models = sorted(
        (m.name, str(m.status))
        for m in client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    )
    return Snapshot(run.info.status, dict(run.data.params), metrics, artifacts, images, weights, models, run_id)


def differences(expected: Snapshot, got: Snapshot) -> list[str]:
    out = []
    if got.status != "FINISHED":
        out.append(f"status {got.status}")
    params = [
        k
        for k in set(got.params) | set(expected.params)
        if got.params.get(k) != expected.params.get(k) and k != "tracking.uri"
    ]  # each run its own store
    if params:
        out.append(f"params differ: {sorted(params)}")
    for key in sorted(set(expected.metrics) | set(got.metrics)):
        want, have = expected.metrics.get(key, []), got.metrics.get(key, [])
        if want != have:
            steps = collections.Counter(s for s, _ in have)
            doubled = sorted(s for s, n in steps.items() if n > 1)
            missing = sorted({s for s, _ in want} - set(steps))
            out.append(
                f"{key}: missing steps {missing[:5]}, doubled {doubled[:5]}, values differ"
                if not (missing or doubled)
                else f"{key}: missing steps {missing[:5]}, doubled {doubled[:5]}"
            )
    if got.artifacts != expected.artifacts:
        out.append(
            f"artifacts: missing {sorted(expected.artifacts - got.artifacts)}, extra {sorted(got.artifacts - expected.artifacts)}"
        )
    if got.images != expected.images:
        out.append(f"images: expected {sorted(expected.images.items())}, got {sorted(got.images.items())}")
    if got.weights != expected.weights:
        out.append(
            "final weights differ: "
            + ", ".join(
                sorted(
                    p for p in set(got.weights) | set(expected.weights) if got.weights.get(p) != expected.weights.get(p)
                )
            )
        )
    if got.models != expected.models or any(status != "READY" for _, status in got.models):
        out.append(f"logged models: expected {expected.models}, got {got.models}")
    return out


def integrity(db: Path) -> str:
    if not db.exists():
        return "ok"
    with sqlite3.connect(db) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


# ---- one killed-and-resumed run ----------------------------------------------------------------


@dataclass
class Outcome:
    model: str
    plan: list
    kills: int = 0  # launches that really died by SIGKILL
    orphans: int = 0  # kills before the first checkpoint: refused by resume=, ended KILLED, started afresh
    problems: list = field(default_factory=list)
    log: list = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


def draw_plan(rng: random.Random, model: str, kills: int, wall_s: float) -> list[tuple]:
    """`kills` kill points: 70% at a named point (the n-th time it is reached), 30% after a
    random time within a run's length."""
    plan = []
    for _ in range(kills):
        if rng.random() < 0.7:
            phase = rng.choice([p for p in FAULT_PHASES if REACHED[model][p]])
            plan.append(("at", f"{phase}:{rng.randint(1, REACHED[model][phase])}"))
        else:
            plan.append(("after", round(rng.uniform(0.05, wall_s), 2)))
    return plan


class Harness:
    def __init__(self, workdir: Path, classifier_cache: Path | None = None):
        self.workdir = workdir
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "GAN_RUNNER_CACHE": str(classifier_cache or workdir / "cache"),
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("GAN_RUNNER_FAULT", None)
        env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # one setting for every process, as the tests use
        self.zygote = Zygote(env)
        self.references: dict[str, tuple[Snapshot, float]] = {}
        self.n = 0

    def launch(self, args, cwd, fault=None, kill_after=None) -> tuple[int, str, float]:
        self.n += 1
        out = cwd / f"out-{self.n}.txt"
        started = time.perf_counter()
        code = self.zygote.launch(args, cwd, out, {"GAN_RUNNER_FAULT": fault or ""}, kill_after)
        return code, out.read_text(errors="replace"), time.perf_counter() - started

    def reference(self, model: str) -> tuple[Snapshot, float]:
        if model not in self.references:
            folder = self.workdir / f"reference-{model}"
            folder.mkdir()
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            code, text, wall = self.launch([*MODELS[model], f"tracking.uri={uri}"], folder)
            assert code == 0, text[-3000:]
            (run_id,) = self._run_ids(uri)
            self.references[model] = snapshot(uri, run_id, folder), wall
        return self.references[model]

    @staticmethod
    def _run_ids(uri: str) -> list[str]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], order_by=["attributes.start_time ASC"]
        )
        return [r.info.run_id for r in runs]

    def crash_run(self, model: str, rng: random.Random, kills: int, plan: list[tuple] | None = None) -> Outcome:
        """One run killed at `kills` points drawn from `rng` (or at the given `plan`), resumed
        after each, compared with the uninterrupted reference."""
        try:
            return self._crash_run(model, rng, kills, plan)
        except Exception as err:  # e.g. a store that cannot be opened after a kill: a finding, not the end
            return Outcome(model, [], problems=[f"{type(err).__name__}: {str(err)[:800]}"])

    def _crash_run(self, model: str, rng: random.Random, kills: int, plan: list[tuple] | None) -> Outcome:
        expected, wall = self.reference(model)
        folder = Path(tempfile.mkdtemp(prefix=f"crash-{model}-", dir=self.workdir))
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        base = [*MODELS[model], f"tracking.uri={uri}"]
        outcome = Outcome(model, plan or draw_plan(rng, model, kills, wall))
        run_id = None
        for how, value in outcome.plan:
            args = base + ([f"resume={run_id}"] if run_id else [])
            code, text, wall_s = self.launch(
                args, folder, value if how == "at" else None, value if how == "after" else None
            )
            outcome.log.append((how, value, code, round(wall_s, 1)))
            if code == -signal.SIGKILL:
                outcome.kills += 1
            elif code == 0:
                break  # finished (the point was not reached again): the end below resumes a finished run
            else:
                outcome.problems.append(f"{how} {value}: exit {code}: {text[-1500:]}")
                return outcome
            if (check := integrity(folder / "mlflow.db")) != "ok":
                outcome.problems.append(f"{how} {value}: integrity_check: {check}")
            known = self._run_ids(uri) if (folder / "mlflow.db").exists() else []
            run_id = run_id or (known[-1] if known else None)
            if run_id and code == -signal.SIGKILL and not list((folder / "checkpoints" / run_id).glob("ckpt-*.npz")):
                self._check_orphan(uri, folder, base, run_id, outcome)
                run_id = None
        code, text, wall_s = self.launch(base + ([f"resume={run_id}"] if run_id else []), folder)  # to the end
        outcome.log.append(("end", None, code, round(wall_s, 1)))
        if code != 0:
            outcome.problems.append(f"final resume: exit {code}: {text[-1500:]}")
            return outcome
        run_id = run_id or self._run_ids(uri)[-1]
        got = snapshot(uri, run_id, folder)
        outcome.problems += differences(expected, got)
        return outcome

    def _check_orphan(self, uri, folder, base, run_id, outcome) -> None:
        """Killed before its first checkpoint: resume= says so in one line and ends the run KILLED."""
        from mlflow.tracking import MlflowClient

        outcome.orphans += 1
        code, text, _ = self.launch(base + [f"resume={run_id}"], folder)
        lines = [ln for ln in text.splitlines() if ln.startswith("gan_runner: error:")]
        status = MlflowClient(tracking_uri=uri).get_run(run_id).info.status
        if code != 2 or len(lines) != 1 or "nothing to resume" not in lines[0] or status != "KILLED":
            outcome.problems.append(f"orphan {run_id}: exit {code}, status {status}: {text[-800:]}")

    def close(self) -> None:
        self.zygote.close()


def run_suite(
    harness: Harness, models: list[str], runs: int, kills: int, seed: int, progress=None, max_s: float = float("inf")
) -> list[Outcome]:
    """`runs` killed-and-resumed runs per model, the kill points drawn from `seed`; stops
    starting new runs after `max_s` seconds."""
    rng, started, outcomes = random.Random(seed), time.monotonic(), []
    for i in range(runs):
        for model in models:
            if time.monotonic() - started > max_s:
                return outcomes
            outcomes.append(harness.crash_run(model, rng, kills))
            if progress:
                progress(i, outcomes[-1])
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="killed-and-resumed runs per model")
    parser.add_argument("--kills", type=int, default=5, help="kill points drawn per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--max-minutes", type=float, default=float("inf"), help="start no new run after this")
    args = parser.parse_args()
    started = time.perf_counter()

    def progress(i, outcome):
        print(
            f"{outcome.model:10s} run {i + 1:3d}: {outcome.kills} kills ({outcome.orphans} before a checkpoint) "
            f"{'held' if outcome.held else 'BROKEN: ' + '; '.join(outcome.problems)[:400]}  plan {outcome.log}",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(Path(tmp))
        try:
            outcomes = run_suite(
                harness, args.models.split(","), args.runs, args.kills, args.seed, progress, args.max_minutes * 60
            )
        finally:
            harness.close()
    for model in args.models.split(","):
        mine = [o for o in outcomes if o.model == model]
        print(
            f"{model}: {sum(o.held for o in mine)}/{len(mine)} runs held over {sum(o.kills for o in mine)} kills "
            f"({sum(o.orphans for o in mine)} before the first checkpoint)"
        )
    print(
        f"total: {sum(o.held for o in outcomes)}/{len(outcomes)} runs held, {sum(o.kills for o in outcomes)} kills "
        f"landed of {len(outcomes) * args.kills} drawn (a drawn point past the end lets the run finish), "
        f"seed {args.seed}, {time.perf_counter() - started:.0f} s"
    )
    sys.exit(0 if all(o.held for o in outcomes) else 1)


if __name__ == "__main__":
    main()

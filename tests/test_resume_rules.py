"""Where checkpoints go by default, and the resume rules that hold today (issue 19, items 7-8),
on tiny 1-D runs, a real SQLite MLflow store and real checkpoint files. Each place is checked
against a literal path, not found through store.checkpoint_root (the function under test)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import all_runs, compose_cfg, metric_history
from gan_runner import checkpoint, train
from gan_runner.config import ConfigError

TINY = ["log_every=10", "eval_every=10", "plot_every=1000", "eval.n_fake=500", "checkpoint.every=10"]


def _run(overrides: list[str]) -> float:
    return train.run(compose_cfg(overrides), overrides)


def _ckpts(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("ckpt-*.npz"))


def test_default_checkpoint_folder_is_beside_the_sqlite_store_else_in_the_working_dir(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # an absolute SQLite store elsewhere: <its folder>/checkpoints/<run id>/
    absolute = tmp_path / "stores" / "a" / "mlflow.db"
    _run([f"tracking.uri=sqlite:///{absolute}", *TINY, "train_steps=20"])
    (run,) = all_runs(MlflowClient(tracking_uri=f"sqlite:///{absolute}"), "gaussian1d")
    rid = run.info.run_id
    assert _ckpts(tmp_path) == [
        f"stores/a/checkpoints/{rid}/ckpt-000000010.npz",
        f"stores/a/checkpoints/{rid}/ckpt-000000020.npz",
    ]
    assert run.data.tags["checkpoint.dir"] == str(tmp_path / "stores" / "a" / "checkpoints" / rid)
    # a relative SQLite URI (MLflow's own default form): beside the store, under the working dir
    # (this crashed: a relative artifact folder has no file:// URI)
    _run(["tracking.uri=sqlite:///rel/mlflow.db", *TINY, "train_steps=10"])
    (rel,) = all_runs(MlflowClient(tracking_uri=f"sqlite:///{work / 'rel' / 'mlflow.db'}"), "gaussian1d")
    assert _ckpts(work) == [f"rel/checkpoints/{rel.info.run_id}/ckpt-000000010.npz"]
    # no store (tracking=none): <working dir>/checkpoints/local-<YYYYmmdd-HHMMSS>/
    before = time.strftime("local-%Y%m%d-%H%M%S")
    _run(["tracking=none", *TINY, "train_steps=10"])
    after = time.strftime("local-%Y%m%d-%H%M%S")
    (local,) = [p for p in (work / "checkpoints").iterdir()]
    assert before <= local.name <= after and len(local.name) == len(before)
    assert [p.name for p in checkpoint.checkpoints(local)] == ["ckpt-000000010.npz"] and (local / "run.json").is_file()


def test_cosine_without_decay_steps_refuses_another_train_steps(tmp_path):
    """Cosine without decay_steps decays over train_steps, so a resume may not change it; with
    decay_steps set (or another schedule) train_steps may change."""
    base = ["tracking=none", f"checkpoint.dir={tmp_path}", *TINY, "schedule=cosine"]
    _run([*base, "train_steps=10"])
    (folder,) = list(tmp_path.iterdir())
    with pytest.raises(ConfigError) as err:
        _run([*base, "train_steps=20", f"resume={folder}"])
    assert "train_steps: 10 -> 20" in str(err.value) and str(err.value).count("->") == 1
    assert [p.name for p in checkpoint.checkpoints(folder)] == ["ckpt-000000010.npz"]  # nothing written

    _run([*base, "schedule.decay_steps=50", "train_steps=10", f"checkpoint.dir={tmp_path / 'fixed'}"])
    (fixed,) = list((tmp_path / "fixed").iterdir())
    more = [
        *base,
        "schedule.decay_steps=50",
        "train_steps=20",
        f"checkpoint.dir={tmp_path / 'fixed'}",
        f"resume={fixed}",
    ]
    resumed, cfg, changes = checkpoint.load_for_resume(compose_cfg(more), tmp_path / "fixed", more)
    assert resumed.step == 10 and cfg.train_steps == 20 and changes == ["train_steps: 10 -> 20"]


def test_resume_allows_thread_and_onednn_changes_and_logs_its_config(store, client, tmp_path):
    """Thread pools and oneDNN change float round-off only: allowed. The resumed run logs the
    config it continued with as config_resume_step<N>.yaml beside the first config.yaml."""
    args = [f"tracking.uri={store}", *TINY]
    _run([*args, "train_steps=20"])
    (run,) = all_runs(client, "gaussian1d")
    rid = run.info.run_id
    more = [
        *args,
        "train_steps=30",
        "trainer.intra_op_threads=1",
        "trainer.inter_op_threads=1",
        "trainer.onednn=true",
        f"resume={rid}",
    ]
    _run(more)
    (run,) = all_runs(client, "gaussian1d")
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "from step 20 (ckpt-000000020.npz)"
    assert sorted(a.path for a in client.list_artifacts(rid) if a.path.endswith(".yaml")) == [
        "config.yaml",
        "config_resume_step0000020.yaml",
    ]
    first = OmegaConf.load(client.download_artifacts(rid, "config.yaml", str(tmp_path)))
    resumed = OmegaConf.load(client.download_artifacts(rid, "config_resume_step0000020.yaml", str(tmp_path)))
    assert (first.train_steps, first.resume, first.trainer.intra_op_threads) == (20, None, 0)
    assert first.trainer.onednn in (None, False)  # conftest pins TF_ENABLE_ONEDNN_OPTS=0
    assert resumed.train_steps == 30
    assert (resumed.trainer.intra_op_threads, resumed.trainer.inter_op_threads, resumed.trainer.onednn) == (1, 1, True)
    for change in ("train_steps: 20 -> 30", "trainer.intra_op_threads: 0 -> 1", "trainer.onednn: "):
        assert change in run.data.tags["resume.changes"], (change, run.data.tags["resume.changes"])
    assert run.data.params["train_steps"] == "20"  # params are immutable in MLflow: the first config's
    assert [s for s, _ in metric_history(client, rid, "train/d_loss")] == [10, 20, 30]


def test_resume_from_a_checkpoint_file_continues_from_that_step(store, client, tmp_path):
    """resume=<ckpt-...npz> (not the newest) continues from that file's step: 10 -> 30 ends in the
    state of a straight 30-step run, bit for bit."""
    base = [*TINY, "checkpoint.keep=5"]
    _run([f"tracking.uri={store}", *base, "train_steps=20"])
    (run,) = all_runs(client, "gaussian1d")
    folder = tmp_path / "checkpoints" / run.info.run_id
    assert [p.name for p in checkpoint.checkpoints(folder)] == ["ckpt-000000010.npz", "ckpt-000000020.npz"]
    _run([f"tracking.uri={store}", *base, "train_steps=30", f"resume={folder / 'ckpt-000000010.npz'}"])
    (run,) = all_runs(client, "gaussian1d")
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "from step 10 (ckpt-000000010.npz)"
    assert "config_resume_step0000010.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    _run(["tracking=none", *base, "train_steps=30", f"checkpoint.dir={tmp_path / 'straight'}"])
    (straight,) = list((tmp_path / "straight").iterdir())
    resumed, expected = checkpoint.newest(folder), checkpoint.newest(straight)
    assert resumed.step == expected.step == 30
    assert resumed.arrays.keys() == expected.arrays.keys()
    for name in expected.arrays:
        np.testing.assert_array_equal(resumed.arrays[name], expected.arrays[name], err_msg=name)

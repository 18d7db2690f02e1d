"""The MLflow Model Registry (tracking.register=<name>) on real tiny runs in a SQLite store: a
sweep registers its best job, a worse run becomes a version without the `champion` alias, a
better one takes it; `gan_runner.sample` / `gan_runner.evaluate` load models:/<name>@champion
and models:/<name>/<version> and give the run's own samples and score bit for bit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from test_sample import TINY_DCGAN, assert_grid_is_the_runs_own

from conftest import SWEEP_1D, compose_cfg, run_cli

OBJECTIVE = "eval/kl_target"
ONE_D = [*SWEEP_1D, "tracking.log_model=true", "tracking.register=gauss"]  # seed 1: 3.35, seed 2: 1.55
BETTER = [*ONE_D, "train_steps=60", "seed=2"]  # 0.56: 60 steps learn more than 30


def _config_sha256(client, run_id: str, tmp_path) -> str:
    with open(client.download_artifacts(run_id, "config.yaml", str(tmp_path)), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_the_champion_moves_to_a_better_run_only(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from gan_runner import train

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    # a sweep registers its best job at its end (and its jobs register nothing themselves)
    proc = run_cli(
        ["-m", f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path / 'multirun'}", *ONE_D, "seed=1,2"], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("gaussian1d").experiment_id])
        if "mlflow.parentRunId" in r.data.tags
    ]
    best = min(jobs, key=lambda r: r.data.metrics[OBJECTIVE])
    champion = client.get_model_version_by_alias("gauss", "champion")
    assert [str(v.version) for v in client.search_model_versions("name = 'gauss'")] == ["1"]
    assert str(champion.version) == "1" and champion.run_id == best.info.run_id and best.data.params["seed"] == "2"
    value = best.data.metrics[OBJECTIVE]
    assert champion.tags == {
        "objective": OBJECTIVE,
        "objective_mode": "min",
        "value": repr(value),
        "run_id": best.info.run_id,
        "config_sha256": _config_sha256(client, best.info.run_id, tmp_path / "c1"),
    }
    assert f"registered models:/gauss/1 ({OBJECTIVE}={value:.6g}) as models:/gauss@champion" in proc.stdout
    # a worse run (seed 1 again, on its own): version 2, the champion stays version 1
    worse = [*ONE_D, f"tracking.uri={store}", "seed=1", f"checkpoint.dir={tmp_path / 'ckpt'}"]
    worse_value = train.run(compose_cfg(worse), worse)
    assert worse_value > best.data.metrics[OBJECTIVE]
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == (
        f"registered models:/gauss/2 ({OBJECTIVE}={worse_value:.6g}); 'champion' stays version 1 "
        f"({OBJECTIVE}={best.data.metrics[OBJECTIVE]:.6g})"
    )
    assert client.get_model_version("gauss", "2").tags["value"] == repr(worse_value)
    assert str(client.get_model_version_by_alias("gauss", "champion").version) == "1"
    # a better run: version 3 takes the alias
    better = [*BETTER, f"tracking.uri={store}", f"checkpoint.dir={tmp_path / 'ckpt'}"]
    better_value = train.run(compose_cfg(better), better)
    assert better_value < best.data.metrics[OBJECTIVE]
    assert (
        capsys.readouterr().out.rstrip().splitlines()[-1]
        == f"registered models:/gauss/3 ({OBJECTIVE}={better_value:.6g}) as models:/gauss@champion"
    )
    champion = client.get_model_version_by_alias("gauss", "champion")
    assert str(champion.version) == "3" and champion.tags["value"] == repr(better_value)
    # the champion is the better run's generator: its 1-D samples, from the alias and the version
    from gan_runner import sample

    run_id = champion.run_id
    sources = {"run": run_id, "alias": "models:/gauss@champion", "version": "models:/gauss/3"}
    for name, source in sources.items():
        sample.main([source, "n=1000", f"out={tmp_path / name}", f"tracking.uri={store}"])
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"] == run_id
    with (
        np.load(tmp_path / "run" / "samples.npz") as a,
        np.load(tmp_path / "alias" / "samples.npz") as b,
        np.load(tmp_path / "version" / "samples.npz") as c,
    ):
        assert np.abs(a["x"] - b["x"]).max() == 0 and np.abs(a["x"] - c["x"]).max() == 0


def test_the_champion_gives_the_runs_own_digits_and_fd(tmp_path, capsys):
    """A DCGAN registered as `digits`: models:/digits@champion samples the run's last sample grid
    (the uint8 image it logged) bit for bit, and evaluate gives the run's last eval/fd."""
    from mlflow.tracking import MlflowClient

    from gan_runner import evaluate, sample, train

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    extra = [*TINY_DCGAN, f"tracking.uri={store}", f"checkpoint.dir={tmp_path / 'ckpt'}", "tracking.register=digits"]
    train.run(compose_cfg(extra), extra)
    assert capsys.readouterr().out.rstrip().splitlines()[-1].endswith("as models:/digits@champion")
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    rid = run.info.run_id
    sample.main(["models:/digits@champion", "n=16", f"out={tmp_path / 'grid'}", f"tracking.uri={store}"])
    assert_grid_is_the_runs_own(client, rid, tmp_path / "grid" / "samples.png", tmp_path)
    capsys.readouterr()
    result = evaluate.main(["models:/digits/1", f"tracking.uri={store}", "--json"])
    assert result["fd"] == pytest.approx(run.data.metrics["eval/fd"], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    "source, words",
    [
        ("models:/nope@champion", ["models:/nope@champion", "not in the registry of sqlite:///"]),
        ("models:/nope", ["models:/nope", "expected models:/<name>@<alias> or models:/<name>/<version>"]),
    ],
)
def test_a_registered_model_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys, source, words):
    from mlflow.tracking import MlflowClient

    from gan_runner import sample

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=store).search_experiments()  # an empty store
    capsys.readouterr()  # MLflow's lines about making it
    with pytest.raises(SystemExit) as exit_:
        sample.main([source, f"tracking.uri={store}", f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and all(w in err for w in words), err

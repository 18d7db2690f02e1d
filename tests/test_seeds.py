"""Seeds as a dimension (gan_runner/seeds.py): grouping and mean +- std by hand, then a real
2 x 3 sweep (2 learning rates x 3 seeds, tiny gaussian1d jobs): the parent run's
agg/<group>/<metric>_mean/_std, `compare --by-seed` (on by default here) and its band chart."""

from __future__ import annotations

import math
import statistics

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli
from gan_runner import seeds

TINY = ["train_steps=20", "eval_every=10", "log_every=10", "plot_every=20", "eval.n_fake=500", "checkpoint.every=0"]


def test_groups_are_runs_differing_only_in_seed_with_their_mean_and_sample_std():
    params = [
        {"seed": "0", "lr": "1", "tracking.run_name": "a"},
        {"seed": "1", "lr": "1", "tracking.run_name": "b"},
        {"seed": "0", "lr": "2", "tracking.run_name": "c"},
        {"seed": "2", "lr": "1", "tracking.run_name": "d"},
    ]
    groups = seeds.group_runs(params)
    assert [(g.label, g.indices) for g in groups] == [("lr:1", [0, 1, 3]), ("lr:2", [2])]
    assert seeds.seeds_repeat(params) and not seeds.seeds_repeat(params[:1] + params[2:3])
    # values 1, 2, 6: mean 3, sample variance ((-2)^2 + (-1)^2 + 3^2) / 2 = 7
    metrics = [{"eval/kl": 1.0, "train/x": 5.0}, {"eval/kl": 2.0}, {"eval/kl": 9.0}, {"eval/kl": 6.0}]
    agg = seeds.aggregate(params, metrics)
    assert agg == {
        "agg/lr:1/eval/kl_mean": 3.0,
        "agg/lr:1/eval/kl_std": pytest.approx(math.sqrt(7)),
        "agg/lr:1/eval/kl_n": 3.0,
        "agg/lr:2/eval/kl_mean": 9.0,
        "agg/lr:2/eval/kl_n": 1.0,
    }
    assert seeds.mean_std([1.0, math.nan, 3.0]) == (2.0, pytest.approx(math.sqrt(2)), 2)
    assert seeds.group_label({"optimizer.d.learning_rate": "1e-3", "x": None}) == "learning_rate:1e-3 x:-"
    assert seeds.group_label({"a": "[1,2]"}) == "a:_1_2_"  # only MLflow's metric-name characters


@pytest.fixture(scope="module")
def sweep_2x3(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    proc = run_cli(
        [
            "-m",
            f"tracking.uri={store}",
            f"hydra.sweep.dir={tmp / 'multirun'}",
            *TINY,
            "optimizer.d.learning_rate=1e-3,3e-3",
            "seed=1,2,3",
        ],
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    return tmp, store, client, parent, [r for r in runs if r is not parent]


def test_the_parent_run_gets_mean_and_std_per_group_of_seeds(sweep_2x3):
    _, _, _, parent, children = sweep_2x3
    assert len(children) == 6
    for lr in ("0.001", "0.003"):
        group = [c for c in children if c.data.params["optimizer.d.learning_rate"] == lr]
        assert sorted(c.data.params["seed"] for c in group) == ["1", "2", "3"]
        values = [c.data.metrics["eval/kl_target"] for c in group]
        key = f"agg/learning_rate:{lr}/eval/kl_target"
        assert parent.data.metrics[f"{key}_mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert parent.data.metrics[f"{key}_std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
        assert parent.data.metrics[f"{key}_n"] == 3
        assert f"agg/learning_rate:{lr}/best/kl_target_mean" in parent.data.metrics


def test_compare_groups_the_seeds_by_default_and_draws_bands(sweep_2x3, capsys, monkeypatch):
    from gan_runner import compare

    # one table row per group on one line: rich reads the width from COLUMNS, which pytest-xdist's
    # workers have (80) and a plain pytest run does not (compare then uses 160)
    monkeypatch.setenv("COLUMNS", "200")

    tmp, store, _, parent, children = sweep_2x3
    out = tmp / "band.png"
    assert (
        compare.main(
            ["--sweep", parent.info.run_id, "--tracking-uri", store, "--plot", "eval/kl_target", "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "by seed" in text and text.count("(n=3)") >= 4, text  # final and best for each of 2 groups
    for lr in ("0.001", "0.003"):
        values = [
            c.data.metrics["eval/kl_target"] for c in children if c.data.params["optimizer.d.learning_rate"] == lr
        ]
        line = next(ln for ln in text.splitlines() if f"learning_rate:{lr}" in ln)
        assert f"{statistics.fmean(values):.4g} +- {statistics.stdev(values):.2g} (n=3)" in line, line
        assert "1,2,3" in line or all(s in line for s in "123")
    assert out.is_file() and out.stat().st_size > 10_000
    assert compare.main(["--sweep", parent.info.run_id, "--tracking-uri", store, "--no-by-seed"]) == 0
    assert "by seed" not in capsys.readouterr().out

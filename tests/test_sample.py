"""`python -m gan_runner.sample` (gan_runner/sample.py) on real tiny runs: a DCGAN run's own
samples come back bit for bit from its run id, its checkpoint folder, its .weights.h5 with its
config and the MLflow model it logged; interpolation strips; --log; a 1-D run's histogram;
bad input in one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import MNIST, compose_cfg

TINY_DCGAN = [
    "model=dcgan",
    f"data.path={MNIST}",
    "batch.size=16",
    "data.n=512",
    "eval.n_fake=200",
    "train_steps=4",
    "eval_every=2",
    "log_every=2",
    "sample_every=4",
    "model.g_filters=[16,8,8,1]",
    "model.d_filters=[8,8,16,16]",
    "tracking.log_model=true",
    "checkpoint.every=2",
]


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    from gan_runner import train

    tmp = tmp_path_factory.mktemp("sampled_run")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    extra = [*TINY_DCGAN, f"tracking.uri={store}", f"checkpoint.dir={tmp / 'ckpt'}"]
    train.run(compose_cfg(extra), extra)
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    return run, client, store, tmp


def _sample(capsys, *argv) -> dict:
    from gan_runner import sample

    sample.main([str(a) for a in argv])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def assert_grid_is_the_runs_own(client, rid: str, grid_png: Path, tmp_path: Path) -> None:
    """The PNG grid `sample` wrote equals, pixel for pixel, the 4x4 grid the run logged at its
    last step (step 4 of TINY_DCGAN)."""
    from PIL import Image

    (logged,) = [
        a.path
        for a in client.list_artifacts(rid, "images")
        if a.path.startswith("images/samples+step+4+") and a.path.endswith(".png")
    ]
    theirs = np.asarray(Image.open(client.download_artifacts(rid, logged, str(tmp_path))))
    ours = np.asarray(Image.open(grid_png))
    assert theirs.shape == ours.shape and np.abs(theirs.astype(int) - ours.astype(int)).max() == 0


def test_every_source_gives_the_runs_own_samples_bit_for_bit(dcgan_run, tmp_path, capsys):

    from gan_runner.metrics import classifier
    from gan_runner.metrics.image import frechet_distance_features

    run, client, store, tmp = dcgan_run
    rid = run.info.run_id
    uri = f"tracking.uri={store}"
    # n = 16: the run's 4x4 grid at its last step, as the uint8 image it logged
    _sample(capsys, rid, "n=16", f"out={tmp_path / 'grid'}", uri)
    assert_grid_is_the_runs_own(client, rid, tmp_path / "grid" / "samples.png", tmp_path)

    # n = eval.n_fake: the run's evaluation fakes; from all four kinds of source, identical
    folder = tmp / "ckpt" / rid
    client.download_artifacts(rid, "config.yaml", str(tmp_path))
    client.download_artifacts(rid, "weights", str(tmp_path))
    sources = {
        "run": [rid],
        "checkpoint": [folder],
        "model": [rid, "--model"],
        "weights": [tmp_path / "weights" / "generator.weights.h5", "--config", tmp_path / "config.yaml"],
    }
    xs = {}
    for name, source in sources.items():
        out = _sample(capsys, *source, "n=200", f"out={tmp_path / name}", uri)
        assert out["run_id"] == (None if name == "weights" else rid)
        with np.load(tmp_path / name / "samples.npz") as npz:
            xs[name] = npz["x"]
            assert npz["z"].shape == (200, 100) and npz["x"].shape == (200, 28, 28, 1)
    for name, x in xs.items():
        assert np.abs(x - xs["run"]).max() == 0, name
    # ... and they are the run's: its last eval/fd from them, to the last bit of the judge's float64
    cfg = compose_cfg(TINY_DCGAN)
    judge = classifier.judge_for(cfg.data, cfg.eval)
    fd = frechet_distance_features(judge.classifier.logits(xs["run"]), judge.reference_logits[:200])
    assert fd == pytest.approx(run.data.metrics["eval/fd"], rel=1e-12, abs=1e-12)
    # seed= draws other noise; --best loads the best step's weights
    other = _sample(capsys, rid, "n=16", "seed=7", f"out={tmp_path / 'seed7'}", uri)
    assert other["run_id"] == rid
    with np.load(tmp_path / "seed7" / "samples.npz") as a, np.load(tmp_path / "run" / "samples.npz") as b:
        assert not np.array_equal(a["z"], b["z"][:16])
    _sample(capsys, rid, "--best", "n=4", f"out={tmp_path / 'best'}", uri)
    assert (tmp_path / "best" / "samples.npz").is_file()


def test_interpolation_strips_and_log_add_them_to_the_run(dcgan_run, tmp_path, capsys):
    from PIL import Image

    run, client, store, _ = dcgan_run
    rid = run.info.run_id
    _sample(
        capsys,
        rid,
        "n=8",
        f"out={tmp_path}",
        f"tracking.uri={store}",
        "--interpolate",
        "slerp",
        "--steps",
        "5",
        "--pairs",
        "2",
        "--log",
    )
    with np.load(tmp_path / "interpolation_slerp.npz") as strip, np.load(tmp_path / "samples.npz") as plain:
        assert strip["z"].shape == (10, 100) and strip["x"].shape == (10, 28, 28, 1)
        # each strip starts at z[2p] and ends at z[2p+1]; so do its samples
        np.testing.assert_allclose(strip["z"][[0, 4, 5, 9]], plain["z"][[0, 1, 2, 3]], atol=1e-6)
        np.testing.assert_allclose(strip["x"][[0, 4, 5, 9]], plain["x"][[0, 1, 2, 3]], atol=1e-4)
    assert np.asarray(Image.open(tmp_path / "interpolation_slerp.png")).shape == (2 * 30 + 2, 5 * 30 + 2)
    logged = {a.path for a in client.list_artifacts(rid, "samples")}
    assert logged == {
        f"samples/{f}" for f in ("samples.png", "samples.npz", "interpolation_slerp.png", "interpolation_slerp.npz")
    }


def test_slerp_and_lerp_by_hand():
    from gan_runner.sample import lerp, slerp

    a, b, t = np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(lerp(a, b, t), [[1, 0], [0.5, 1], [0, 2]])
    # a quarter circle: halfway is at 45 degrees, with the norm halfway between 1 and 2
    np.testing.assert_allclose(slerp(a, b, t), [[1, 0], [1.5 / np.sqrt(2), 1.5 / np.sqrt(2)], [0, 2]], atol=1e-12)
    np.testing.assert_allclose(slerp(a, 3 * a, t), lerp(a, 3 * a, t))  # parallel: lerp


def test_a_1d_run_gives_a_histogram_and_interpolation_lines(tmp_path, capsys):
    from gan_runner import train

    extra = [
        "train_steps=3",
        "eval_every=3",
        "log_every=3",
        "eval.n_fake=200",
        "tracking=none",
        f"checkpoint.dir={tmp_path / 'ckpt'}",
    ]
    train.run(compose_cfg(extra), extra)
    (folder,) = (tmp_path / "ckpt").iterdir()
    out = _sample(capsys, folder, "n=64", f"out={tmp_path / 'out'}", "--interpolate", "lerp", "--steps", "3")
    assert {p.rsplit("/", 1)[1] for p in out["written"]} == {
        "samples.png",
        "samples.npz",
        "interpolation_lerp.png",
        "interpolation_lerp.npz",
    }
    with np.load(tmp_path / "out" / "samples.npz") as npz:
        assert npz["x"].shape == (64, 1) and np.isfinite(npz["x"]).all()
    with np.load(tmp_path / "out" / "interpolation_lerp.npz") as npz:
        np.testing.assert_allclose(npz["z"][1], (npz["z"][0] + npz["z"][2]) / 2, atol=1e-6)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["0123456789abcdef0123456789abcdef"], "no MLflow store at sqlite:///{tmp}/db.sqlite"),
        (["{tmp}/nope.weights.h5"], "nope.weights.h5: no such file"),
        (["{tmp}/notes.txt"], "not an MLflow run id"),
        (["{tmp}", "n=0"], "n=0: expected an integer >= 1"),
        (["{tmp}", "--best"], "--best and --model need an MLflow run id"),
        (["{tmp}"], "no readable checkpoint in"),
        (["{tmp}/x.weights.h5", "--log", "--config", "{tmp}/config.yaml"], "--log"),
        (["{tmp}", "--interpolate", "cubic"], "invalid choice: 'cubic'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    from gan_runner import sample

    (tmp_path / "notes.txt").write_text("notes\n")
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "x.weights.h5").write_bytes(b"not weights")
    assert not (tmp_path / "db.sqlite").exists()
    with pytest.raises(SystemExit) as exit_:
        sample.main([a.format(tmp=tmp_path) for a in argv] + [f"tracking.uri=sqlite:///{tmp_path / 'db.sqlite'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("gan_runner.sample: error: "), err
    assert words.format(tmp=tmp_path) in err[0], err
    assert not (tmp_path / "db.sqlite").exists()  # no store made by a failed look-up


def test_evaluate_checkpoints_scores_each_kept_checkpoint_and_logs_the_curve_at_its_steps(dcgan_run, capsys):
    from gan_runner import evaluate

    run, client, store, _ = dcgan_run
    rid = run.info.run_id
    result = evaluate.main([rid, "--checkpoints", "--json", f"tracking.uri={store}", "eval.metrics=[fd,kid,recall]"])
    capsys.readouterr()
    assert [row["step"] for row in result["curve"]] == [2, 4]
    fds = dict((m.step, m.value) for m in client.get_metric_history(rid, "eval/fd"))
    for row in result["curve"]:  # the checkpoint at step s holds the generator eval/fd judged at s
        assert row["fd"] == pytest.approx(fds[row["step"]], rel=1e-12), row
        assert set(row) == {"step", "fd", "kid", "kid_std", "recall"}
    for name in ("fd", "kid", "kid_std", "recall"):
        history = [(m.step, m.value) for m in client.get_metric_history(rid, f"ckpt/{name}")]
        assert history == [(row["step"], pytest.approx(row[name])) for row in result["curve"]], name
    assert [m.step for m in client.get_metric_history(rid, "ckpt/kid_floor")] == [0]
    assert client.get_run(rid).data.metrics["ckpt/recall_floor"] == pytest.approx(result["floors"]["recall_floor"])
    # a run without checkpoints, or not a run id: one line, status 2
    for argv, words in (([str(Path("/nonexistent")), "--checkpoints"], "not an MLflow run id"),):
        with pytest.raises(SystemExit) as exit_:
            evaluate.main(argv + [f"tracking.uri={store}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and words in err[0], err

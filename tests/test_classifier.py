"""The digit classifier and the judge behind eval/fd, eval/mnist_score, eval/coverage
(gan_runner/classifier.py), on the real MNIST test digits: the split, held-out accuracy, FD of
real vs real vs noise, a one-digit "generator", the weight cache; then a DCGAN run that logs it
all and `python -m gan_runner.evaluate` reproducing its number.

Speed: the real classifier (the default architecture) is trained once per session into a temp
cache dir and shared; the cache tests use a tiny architecture on 600 digits."""

from __future__ import annotations

import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import FASHION, MNIST, compose_cfg

pytestmark = pytest.mark.skipif(not (MNIST / "t10k-labels-idx1-ubyte.gz").is_file(), reason=f"no MNIST in {MNIST}")
TINY_CLASSIFIER = [
    "eval.classifier.filters=[4]",
    "eval.classifier.dense=8",
    "eval.classifier.train_steps=5",
    "eval.classifier.batch_size=32",
]


def _cfg(cache: Path, *extra: str):
    return compose_cfg(["model=dcgan", f"data.path={MNIST}", f"eval.classifier.cache_dir={cache}", *extra])


@pytest.fixture(scope="session")
def judge_cache(classifier_cache) -> Path:
    """conftest's session cache ($GAN_RUNNER_CACHE), the one every dcgan run of the session uses."""
    return classifier_cache


@pytest.fixture(scope="session")
def judge(judge_cache):
    """The default classifier on the 5,000 training-half digits (trained at most once per session)."""
    from gan_runner.metrics import classifier

    cfg = _cfg(judge_cache)
    return classifier.judge_for(cfg.data, cfg.eval)


def _unit(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32)[..., None] / 255.0


# ---- the split ---------------------------------------------------------------------------------


def test_one_set_is_halved_into_disjoint_reference_and_classifier_digits(judge):
    from gan_runner.metrics import classifier

    sets = classifier.labelled_sets(_cfg(Path("unused")).data)
    assert [(len(s.labels), s.kind) for s in sets] == [(10000, "test")]
    again = classifier.split(sets)
    np.testing.assert_array_equal(again.reference.labels, judge.split.reference.labels)  # fixed, not per run
    assert len(judge.split.train.labels) == len(judge.split.reference.labels) == 5000
    train_rows = {row.tobytes() for row in judge.split.train.images}
    assert not any(row.tobytes() in train_rows for row in judge.split.reference.images)
    # together they are the whole set, every digit class in both
    assert sorted(np.concatenate([judge.split.train.labels, judge.split.reference.labels])) == sorted(sets[0].labels)
    assert set(judge.split.reference.labels) == set(judge.split.train.labels) == set(range(10))


def test_a_training_and_a_test_set_split_as_train_vs_test():
    from gan_runner.metrics import classifier

    rng = np.random.default_rng(0)

    def labelled(n, kind):
        return classifier.LabelledSet(
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.uint8),
            f"{kind}-images",
            kind,
        )

    test, train = labelled(30, "test"), labelled(70, "train")
    split = classifier.split([test, train])  # order found does not matter
    assert split.train is train and split.reference is test and "70 training digits" in split.rule


@pytest.mark.usefixtures("fashion_mnist")
def test_a_folder_with_both_sets_gives_60000_classifier_and_10000_reference_images():
    """The full 70,000 case, on Debian's Fashion-MNIST (the offline MNIST has only the test set)."""
    from gan_runner.metrics import classifier

    cfg = compose_cfg(["model=dcgan", "data=fashion_mnist", f"data.path={FASHION}"])
    split = classifier.split(classifier.labelled_sets(cfg.data))
    assert (len(split.train.labels), len(split.reference.labels)) == (60000, 10000)
    assert split.train.source.endswith("train-images-idx3-ubyte.gz") and split.reference.kind == "test"


# ---- the real classifier -------------------------------------------------------------------------


def test_classifier_reaches_97_percent_on_the_held_out_reference_digits(judge, judge_cache):
    assert judge.classifier.path.parent == judge_cache  # trained here, or by an earlier dcgan run of the session
    assert judge.accuracy >= 0.97, judge.accuracy
    meta = json.loads(judge.classifier.path.with_suffix("").with_suffix(".json").read_text())
    assert meta["n_train"] == 5000 and meta["data_key"] == judge.split.data_key()


def test_fd_of_real_digits_is_near_the_floor_and_noise_is_far(judge):
    reference = _unit(judge.split.reference.images)
    n = 1000
    floor = judge.floor(n)  # reference[:1000] vs reference[1000:2000]
    other_real = judge.scores(reference[2000:3000])  # disjoint from both
    noise = judge.scores(np.random.default_rng(0).uniform(0, 1, (n, 28, 28, 1)))
    assert 0 < floor < 5
    assert other_real["fd"] < 3 * floor, (other_real["fd"], floor)
    assert noise["fd"] > 50 * floor, (noise["fd"], floor)
    assert other_real["mnist_score"] > 9 and other_real["coverage"] == 10


def test_a_generator_of_one_digit_scores_1_with_coverage_1(judge):
    one = np.repeat(_unit(judge.split.reference.images[:1]), 1000, axis=0)
    scores = judge.scores(one)
    assert scores["mnist_score"] == pytest.approx(1.0, abs=1e-6)
    assert scores["coverage"] == 1 and scores["histogram"].max() == 1.0
    assert math.isfinite(scores["fd"]) and scores["fd"] > 50 * judge.floor(1000)


def test_kid_and_prdc_of_real_digits_sit_at_their_floors_noise_and_one_digit_far_from_them(judge):
    """Real vs real: KID near 0 (either sign: the estimate is unbiased), PRDC near 1; uniform
    noise: KID far above it, recall and coverage near 0 (not precision: its logits land in one
    confident region that some wide real ball holds); a one-digit "generator": the same image
    1000 times sits in a few real balls and recalls nothing."""
    reference = _unit(judge.split.reference.images)
    n = 1000
    floors = judge.floors(n)
    assert set(floors) == {f"{m}_floor" for m in ("fd", "kid", "precision", "recall", "density", "coverage_nn")}
    assert floors["fd_floor"] == pytest.approx(judge.floor(n), rel=1e-9)
    real = judge.scores(reference[2000:3000])
    noise = judge.scores(np.random.default_rng(0).uniform(0, 1, (n, 28, 28, 1)))
    one = judge.scores(np.repeat(reference[:1], n, axis=0))
    for got in (floors["kid_floor"], real["kid"]):  # measured: 159 and 244 (+- 183) vs noise 5092
        assert abs(got) < 0.1 * noise["kid"], (got, noise["kid"])
    assert noise["kid"] > 5 * noise["kid_std"] > 0
    for name in ("precision", "recall", "coverage_nn"):
        assert floors[f"{name}_floor"] > 0.9 and real[name] > 0.9, (name, floors, real)
    assert 0.8 < floors["density_floor"] < 1.2 and 0.8 < real["density"] < 1.2
    assert noise["recall"] < 0.02 and noise["coverage_nn"] < 0.05
    assert one["recall"] == 0.0 and one["coverage_nn"] < 0.02
    assert one["kid"] > 5 * noise["kid"]


def test_nan_images_and_too_many_samples_give_one_clear_line(judge):
    from gan_runner.config import ConfigError

    images = _unit(judge.split.reference.images[:10])
    images[3, 5, 5, 0] = np.nan
    with pytest.raises(ValueError, match="1 of 10 images hold NaN or inf"):
        judge.scores(images)
    with pytest.raises(ConfigError, match=r"eval.n_fake: .*2600 samples need 5200 reference digits.*eval.n_fake<=2500"):
        judge.check_n(2600)


# ---- the cache (tiny architecture, 600 digits) ------------------------------------------------


def _idx(path: Path, payload: np.ndarray, magic: int) -> None:
    header = struct.pack(">II", magic, len(payload)) + (struct.pack(">II", 28, 28) if payload.ndim == 3 else b"")
    path.write_bytes(gzip.compress(header + payload.astype(np.uint8).tobytes()))


def _digits_file(folder: Path, start: int, n: int = 600) -> Path:
    """n real digits and their labels under non-official names (no official checksum applies)."""
    from gan_runner.data import images

    spec = images.IMAGE_SETS["mnist"]
    pixels = images.read_images(MNIST / "t10k-images-idx3-ubyte.gz", spec)[start : start + n]
    labels = images.read_labels(MNIST / "t10k-labels-idx1-ubyte.gz", spec)[start : start + n]
    folder.mkdir()
    _idx(folder / "digits-images-idx3-ubyte.gz", pixels, 0x803)
    _idx(folder / "digits-labels-idx1-ubyte.gz", labels, 0x801)
    return folder / "digits-images-idx3-ubyte.gz"


def test_cache_reuses_the_weights_and_retrains_for_other_data_or_architecture(tmp_path):
    from gan_runner.metrics import classifier

    cache = tmp_path / "cache"
    first, second = _digits_file(tmp_path / "a", 0), _digits_file(tmp_path / "b", 600)

    def load(data_file: Path, *extra: str):
        cfg = compose_cfg(
            ["model=dcgan", f"data.path={data_file}", f"eval.classifier.cache_dir={cache}", *TINY_CLASSIFIER, *extra]
        )
        return classifier.load_or_train(cfg.eval.classifier, classifier.split(classifier.labelled_sets(cfg.data)))

    trained = load(first)
    again = load(first)
    other_data = load(second)
    other_arch = load(first, "eval.classifier.filters=[6]")
    assert trained.trained and not again.trained and again.path == trained.path
    for a, b in zip(trained.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the very weights, read back
    assert other_data.trained and other_data.path != trained.path
    assert other_arch.trained and other_arch.path != trained.path
    assert len(list(cache.glob("classifier-*.weights.h5"))) == 3
    # the key is the data's content, not its file name: the same digits elsewhere hit the cache
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in first.parent.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert not load(copy / first.name).trained


def test_the_first_classifier_cached_wins_so_parallel_runs_judge_alike(tmp_path):
    """Runs started together on a cold cache (a sweep's parallel jobs) each train a classifier;
    the first to finish caches it and a later one never replaces it (it judges with the cached
    one: load_or_train), so their eval/fd compare. Only a damaged file is replaced."""
    import hashlib

    from gan_runner.metrics import classifier

    cfg = compose_cfg(["model=dcgan", *TINY_CLASSIFIER])
    path = tmp_path / "cache" / "classifier-x.weights.h5"
    first, second = classifier.build_model(cfg.eval.classifier), classifier.build_model(cfg.eval.classifier)
    second.set_weights([w + 1.0 for w in second.get_weights()])  # another run's, surely different

    def digest() -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert classifier._save(first, path, {"run": 1})
    kept = digest()
    assert not classifier._save(second, path, {"run": 2})  # too late: the first one stays
    assert digest() == kept and not list(path.parent.glob("tmp*"))
    loaded = classifier.build_model(cfg.eval.classifier)
    loaded.load_weights(path)
    for a, b in zip(first.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert classifier._save(second, path, {"run": 2}, replace=True) and digest() != kept  # damaged: replaced


def test_a_damaged_cached_classifier_is_retrained_and_replaced(tmp_path):
    from gan_runner.metrics import classifier

    cache = tmp_path / "cache"
    cfg = compose_cfg(
        [
            "model=dcgan",
            f"data.path={_digits_file(tmp_path / 'a', 0)}",
            f"eval.classifier.cache_dir={cache}",
            *TINY_CLASSIFIER,
        ]
    )
    the_split = classifier.split(classifier.labelled_sets(cfg.data))
    path = classifier.cache_path(cfg.eval.classifier, the_split)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an HDF5 file")
    fresh = classifier.load_or_train(cfg.eval.classifier, the_split)
    assert fresh.trained and path.read_bytes() != b"not an HDF5 file"
    again = classifier.load_or_train(cfg.eval.classifier, the_split)  # the replacement is the cache now
    assert not again.trained
    for a, b in zip(fresh.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    from gan_runner.metrics import classifier

    cfg = compose_cfg(["model=dcgan"])
    monkeypatch.setenv("GAN_RUNNER_CACHE", str(tmp_path / "mine"))
    assert classifier.cache_dir(cfg.eval.classifier) == tmp_path / "mine"
    monkeypatch.delenv("GAN_RUNNER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert classifier.cache_dir(cfg.eval.classifier) == tmp_path / "gan_runner"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert classifier.cache_dir(cfg.eval.classifier) == Path.home() / ".cache" / "gan_runner"
    set_explicitly = compose_cfg(["model=dcgan", f"eval.classifier.cache_dir={tmp_path / 'x'}"])
    assert classifier.cache_dir(set_explicitly.eval.classifier) == tmp_path / "x"


def test_missing_or_wrong_labels_fail_with_one_line(tmp_path):
    from gan_runner.errors import DataError
    from gan_runner.metrics import classifier

    data_file = _digits_file(tmp_path / "d", 0, n=50)
    labels = data_file.parent / "digits-labels-idx1-ubyte.gz"
    labels.write_bytes(data_file.read_bytes())  # an image file where the labels should be
    cfg = compose_cfg(["model=dcgan", f"data.path={data_file}"])
    with pytest.raises(DataError, match="holds images .* not labels"):
        classifier.labelled_sets(cfg.data)
    labels.unlink()
    with pytest.raises(DataError, match="no labels beside it .*digits-labels-idx1-ubyte.gz"):
        classifier.labelled_sets(cfg.data)


# ---- a DCGAN run and python -m gan_runner.evaluate ------------------------------------------------


TINY_DCGAN = [
    "batch.size=16",
    "data.n=512",
    "eval.n_fake=200",
    "train_steps=4",
    "eval_every=2",
    "log_every=2",
    "model.g_filters=[16,8,8,1]",
    "model.d_filters=[8,8,16,16]",
    "tracking.log_model=false",
]


@pytest.fixture(scope="module")
def dcgan_run(judge, judge_cache, tmp_path_factory):
    """A tiny DCGAN run in this process, judged by the session's classifier (a cache hit). The
    best step is the one with the highest eval/fd (objective_mode=max), so that it is step 2, not
    the last step, and --best must read other weights than the final ones."""
    from mlflow.tracking import MlflowClient

    from gan_runner import train

    tmp = tmp_path_factory.mktemp("judged_run")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    extra = [*TINY_DCGAN, f"tracking.uri={store}", f"checkpoint.dir={tmp / 'ckpt'}", "objective_mode=max"]
    value = train.run(_cfg(judge_cache, *extra), extra)
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    return run, client, store, value


def test_dcgan_run_logs_fd_score_coverage_floor_and_the_best_step(dcgan_run, judge):
    run, client, _, value = dcgan_run
    rid, metrics = run.info.run_id, run.data.metrics
    assert run.info.status == "FINISHED" and run.data.tags["objective"] == "eval/fd"
    for key in ("eval/fd", "eval/mnist_score", "eval/coverage"):
        assert [m.step for m in client.get_metric_history(rid, key)] == [2, 4], key
    assert value == metrics["eval/fd"] and math.isfinite(value)
    assert metrics["eval/coverage"] == int(metrics["eval/coverage"])  # reproduced by evaluate: below
    # once per run, at step 0: the real-vs-real floor at N=200 and the cached classifier's accuracy
    assert [m.step for m in client.get_metric_history(rid, "eval/fd_floor")] == [0]
    assert metrics["eval/fd_floor"] == pytest.approx(judge.floor(200), rel=1e-9)
    assert metrics["classifier/accuracy"] == pytest.approx(judge.accuracy) and metrics["classifier/cached"] == 1.0
    # the best step by eval/fd (here the highest: objective_mode=max): tagged, its value logged,
    # its generator kept
    fds = {m.step: m.value for m in client.get_metric_history(rid, "eval/fd")}
    best_step = max(fds, key=fds.get)
    assert best_step == 2 and fds[2] > fds[4]
    assert run.data.tags["best_step"] == str(best_step) and metrics["best/fd"] == pytest.approx(fds[best_step])
    artifacts = {a.path for a in client.list_artifacts(rid, "weights/best")}
    assert artifacts == {"weights/best/generator.weights.h5"}
    assert [a.path for a in client.list_artifacts(rid, "plots")] == ["plots/classes_step0000004.png"]


def test_dcgan_run_logs_kid_and_prdc_with_their_floors_and_only_the_chosen_metrics(
    dcgan_run, judge, judge_cache, tmp_path
):
    from mlflow.tracking import MlflowClient

    from gan_runner import train

    run, client, _, _ = dcgan_run
    rid, metrics = run.info.run_id, run.data.metrics
    for key in ("eval/kid", "eval/kid_std", "eval/precision", "eval/recall", "eval/density", "eval/coverage_nn"):
        assert [m.step for m in client.get_metric_history(rid, key)] == [2, 4], key
        assert math.isfinite(metrics[key])
    floors = judge.floors(200)
    for key, value in floors.items():
        assert [m.step for m in client.get_metric_history(rid, f"eval/{key}")] == [0], key
        assert metrics[f"eval/{key}"] == pytest.approx(value, rel=1e-9), key
    assert set(floors) == {
        "fd_floor",
        "kid_floor",
        "precision_floor",
        "recall_floor",
        "density_floor",
        "coverage_nn_floor",
    }

    # eval.metrics=[fd, recall] and prdc_k=3: only those (and their floors) are logged, with that k
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    extra = [
        *TINY_DCGAN,
        "train_steps=2",
        "eval.metrics=[fd,recall]",
        "eval.prdc_k=3",
        f"tracking.uri={store}",
        f"checkpoint.dir={tmp_path / 'ckpt'}",
    ]
    train.run(_cfg(judge_cache, *extra), extra)
    other = MlflowClient(tracking_uri=store)
    (small,) = other.search_runs([other.get_experiment_by_name("dcgan").experiment_id])
    logged = {k for k in small.data.metrics if k.startswith("eval/")}
    assert logged == {"eval/fd", "eval/recall", "eval/fd_floor", "eval/recall_floor"}
    assert small.data.metrics["eval/recall_floor"] == pytest.approx(judge.floors(200, ["recall"], 3)["recall_floor"])


def test_evaluate_cli_reproduces_the_runs_fd_and_refuses_bad_input(dcgan_run, judge_cache, tmp_path, capsys):
    from gan_runner import evaluate

    run, client, store, _ = dcgan_run
    common = [f"tracking.uri={store}", f"eval.classifier.cache_dir={judge_cache}", f"data.path={MNIST}"]
    result = evaluate.main([run.info.run_id, *common, "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert result["n"] == 200 and result["fd"] == pytest.approx(run.data.metrics["eval/fd"], rel=1e-5)
    assert result["fd_floor"] == pytest.approx(run.data.metrics["eval/fd_floor"], rel=1e-9)
    assert result["mnist_score"] == pytest.approx(run.data.metrics["eval/mnist_score"], rel=1e-5)
    assert result["coverage"] == run.data.metrics["eval/coverage"]

    # --best: the generator of the best step reproduces best/fd; a saved .weights.h5 with the
    # run's config.yaml (--config) reproduces the final eval/fd
    best = evaluate.main([run.info.run_id, *common, "--best", "--json"])
    capsys.readouterr()
    assert best["fd"] == pytest.approx(run.data.metrics["best/fd"], rel=1e-5)
    fds = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval/fd")}
    assert run.data.tags["best_step"] == "2" and fds[2] == pytest.approx(best["fd"], rel=1e-5)
    assert best["fd"] != pytest.approx(result["fd"], rel=1e-5)  # other weights than the final ones
    weights = client.download_artifacts(run.info.run_id, "weights/generator.weights.h5", str(tmp_path / "w"))
    config = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "c"))
    saved = evaluate.main([weights, "--config", config, *common[1:], "--json"])
    capsys.readouterr()
    assert (saved["fd"], saved["mnist_score"], saved["coverage"]) == (
        result["fd"],
        result["mnist_score"],
        result["coverage"],
    )
    for key in ("kid", "precision", "recall", "density", "coverage_nn", "kid_floor", "coverage_nn_floor"):
        assert result[key] == pytest.approx(run.data.metrics[f"eval/{key}"], rel=1e-4, abs=1e-6), key

    # a .npy of 1000 real uint8 digits (N, 28, 28), disjoint from the 2 x 1000 of the floor: FD near it
    from gan_runner.metrics import classifier

    split = classifier.split(classifier.labelled_sets(compose_cfg(["model=dcgan", f"data.path={MNIST}"]).data))
    np.save(tmp_path / "real.npy", split.reference.images[2000:3000])
    real = evaluate.main([str(tmp_path / "real.npy"), "eval.n_fake=1000", *common[1:], "--json"])
    capsys.readouterr()
    assert real["n"] == 1000 and real["fd"] < 3 * real["fd_floor"] and real["coverage"] == 10

    bad = {
        "nan.npy": np.full((200, 28, 28), np.nan, np.float32),
        "range.npy": np.full((200, 28, 28), 2.0),
        "shape.npy": np.zeros((200, 32, 32), np.uint8),
        "few.npy": np.zeros((10, 28, 28), np.uint8),
    }
    expected = {
        "nan.npy": "200 of 200 images hold NaN or inf",
        "range.npy": "float pixels must be in [0, 1]",
        "shape.npy": "expected (N, 28, 28)",
        "few.npy": "10 images, eval.n_fake=200",
    }
    for name, array in bad.items():
        np.save(tmp_path / name, array)
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main([str(tmp_path / name), "eval.n_fake=200", *common[1:]])
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(lines) == 1, (name, lines)
        assert lines[0].startswith("gan_runner.evaluate: error:") and expected[name] in lines[0], (name, lines)
    with pytest.raises(SystemExit):
        evaluate.main(["0" * 32, *common])  # a run id that is not in the store
    assert "run 00000000000000000000000000000000" in capsys.readouterr().err

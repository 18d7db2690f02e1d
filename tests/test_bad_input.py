"""Bad input, driven from one table: each case is the real CLI in a fresh process, and must end
with exit status 2, exactly one line on stderr naming the key (or file) and what is allowed, no
traceback, no MLflow store or run, no outputs/ or multirun/ folder, and without TensorFlow ever being imported (seen through
Python's own `-X importtime` trace, not a clock)."""

import importlib.util
import socket
import struct
import time

import numpy as np
import pytest

from conftest import MNIST, run_cli


def _driver_or_server(module: str, package: str) -> list[str]:
    """A database URI: without its driver the message names the pip package; with it, the
    server that does not answer (nothing listens on {port})."""
    if importlib.util.find_spec(module) is None:
        return ["tracking.uri", f"driver '{module}'", f"pip install {package}"]
    return ["tracking.uri", "no database server answers at 127.0.0.1:{port}"]


# (overrides, words the one-line message must contain). In overrides, {tmp} is the test's
# folder (holding the files made by _make_files), {mnist} the MNIST test digits, {port} a
# loopback port nobody listens on.
BAD = [
    # unknown names: a choice in every config group, a key in every kind of node
    (["model=nope"], ["model", "nope", "gaussian1d", "dcgan"]),
    (["data=cifar"], ["data", "cifar", "normal1d", "mnist"]),
    (["optimizer=adamw"], ["optimizer", "adamw", "rmsprop", "adam", "sgd"]),
    (["schedule=linear"], ["schedule", "linear", "cosine", "inverse_time"]),
    (["tracking=wandb"], ["tracking", "wandb", "mlflow", "none"]),
    (["experiment=nope"], ["experiment", "nope", "seed_gaussian1d"]),
    (["hparams_search=nope"], ["hparams_search", "nope", "gaussian1d_optuna"]),
    (["hydra/launcher=nope"], ["hydra/launcher", "nope", "joblib"]),
    (["not_a_key=3"], ["not_a_key"]),
    (["+model.nope=1"], ["model.nope", "unknown key", "noise_dim"]),
    (["+optimizer.nope=1"], ["optimizer.nope", "unknown key", "params"]),
    (["+data.nope=1"], ["data.nope", "unknown key", "std"]),
    (["+schedule.nope=1"], ["schedule.nope", "not a parameter of schedule 'constant'"]),
    (["on_divergence=ignore"], ["on_divergence", "ignore", "raise", "penalty"]),
    (
        ["optimizer.lr=0.1"],
        ["optimizer.lr", "unknown key", "did you mean optimizer.d.learning_rate or optimizer.g.learning_rate"],
    ),
    (["+optimizer.params.beta_1=0.5"], ["optimizer.params.beta_1", "not a parameter of optimizer 'rmsprop'", "rho"]),
    # the GAN techniques (loss, penalty, trainer.d_steps, ema): names, ranges, combinations
    (["loss=wgan"], ["loss", "wgan", "ns", "hinge", "wasserstein", "lsgan"]),
    (["penalty=gp", "+penalty.gamma=1"], ["penalty.gamma", "unknown key", "weight"]),
    (["trainer.d_steps=5", "trainer.update=simultaneous"], ["trainer.d_steps", "trainer.update=alternating"]),
    (["loss=hinge", "labels.real=0.9"], ["labels.real", "no effect with loss=hinge", "lsgan"]),
    (["ema.start_step=100"], ["ema.start_step", "no effect", "ema.decay"]),
    (["ema.decay=1.0"], ["ema.decay", "[0, 1)"]),
    # trainer.precision / jit_compile: names, types, and what XLA or loss scaling cannot take
    (["trainer.precision=float16"], ["trainer.precision", "float16", "float32, mixed_float16, mixed_bfloat16"]),
    (["trainer.jit_compile=maybe"], ["trainer.jit_compile", "true/false", "maybe"]),
    (["trainer.jit_compile=true"], ["trainer.jit_compile", "batch.order=random", "333, 333, 334"]),
    (
        ["trainer.precision=mixed_float16", "+optimizer.params.loss_scale_factor=128"],
        ["optimizer.params.loss_scale_factor", "no effect with trainer.precision=mixed_float16"],
    ),
    # a value that could not take effect; a search without -m
    (
        ["model=dcgan", "schedule.decay_rate=0.5"],
        ["schedule.decay_rate", "schedule.d.decay_rate", "schedule.g.decay_rate"],
    ),
    (["hparams_search=gaussian1d_optuna"], ["hparams_search=gaussian1d_optuna", "add -m"]),
    (["experiment=dcgan_optuna"], ["hparams_search=dcgan_optuna", "add -m"]),
    # a multirun: every job is checked before the first starts
    (["-m", "train_steps=abc", "seed=0,1"], ["train_steps", "integer", "abc", "no job was started"]),
    (["-m", "seed=0,1", "batch.size=100,0"], ["batch.size", "positive", "batch.size=0", "no job was started"]),
    (
        ["-m", "hparams_search=gaussian1d_optuna", "model.hidden=choice(8,0)"],
        ["model.hidden", "positive", "no job was started"],
    ),
    # wrong types
    (["train_steps=abc"], ["train_steps", "integer", "abc"]),
    (["train_steps=1.5"], ["train_steps", "integer", "1.5"]),
    (["optimizer.d.learning_rate=fast"], ["optimizer.d.learning_rate", "number", "fast"]),
    (["batch.reuse_noise=maybe"], ["batch.reuse_noise", "true/false", "maybe"]),
    # out of range
    (["train_steps=0"], ["train_steps", "positive"]),
    (["train_steps=-5"], ["train_steps", "positive"]),
    (["checkpoint.every=-1"], ["checkpoint.every", ">= 0"]),
    (["optimizer.d.learning_rate=0"], ["optimizer.d.learning_rate", "> 0"]),
    (["optimizer.g.learning_rate=-1e-3"], ["optimizer.g.learning_rate", "> 0"]),
    (["model.noise_dim=0"], ["model.noise_dim", "positive"]),
    (["model=dcgan", "model.latent_dim=0"], ["model.latent_dim", "positive"]),
    (["labels.real=1.5"], ["labels.real", "[0, 1]"]),
    (["data.std=-1"], ["data.std", "> 0"]),
    (["schedule=cosine", "schedule.alpha=2"], ["schedule.alpha", "[0, 1]"]),
    (["batch.size=5000"], ["batch.size", "larger than the data", "data.n=1000"]),
    (["model=dcgan", "data.path={mnist}", "batch.size=20000"], ["batch.size", "larger than the data", "10000"]),
    # data files
    (["model=dcgan", "data.path={tmp}/nowhere"], ["data.path", "nowhere", "does not exist"]),
    (["model=dcgan", "data.path={tmp}/notes.txt"], ["notes.txt", "not an IDX image file"]),
    (["model=dcgan", "data.path={tmp}/t10k-images-idx3-ubyte.gz"], ["t10k-images-idx3-ubyte.gz", "truncated gzip"]),
    (["model=dcgan", "data.path={tmp}/big-images-idx3-ubyte"], ["big-images-idx3-ubyte", "32x32", "expected 28x28"]),
    (["model=dcgan", "data.path={tmp}/big.npz"], ["big.npz", "(3, 32, 32)", "expected (N, 28, 28)"]),
    # the conditional model: how D sees the label, acgan's weight, images without labels
    (["model=cdcgan", "model.cond=film"], ["model.cond", "'film'", "allowed: projection, concat, acgan"]),
    (["model=cdcgan", "model.class_loss_weight=2"], ["model.class_loss_weight", "no effect", "model.cond=acgan"]),
    (["model=cdcgan", "model.cond=acgan", "model.class_loss_weight=0"], ["model.class_loss_weight", "> 0"]),
    (["model=cdcgan", "eval.n_fake=10"], ["eval.n_fake", "eval/fd_intra", "eval.n_fake>=20"]),
    (
        ["model=cdcgan", "data.path={tmp}/unlabelled"],
        ["t10k-images-idx3-ubyte.gz: no labels beside it", "t10k-labels-idx1-ubyte.gz", "model=cdcgan"],
    ),
    (["model=cdcgan", "data.path={tmp}/nolabels.npz"], ["nolabels.npz: no y_train", "model=cdcgan"]),
    # where things go
    (["tracking.uri=ftp://host/runs"], ["tracking.uri", "unknown scheme 'ftp://'", "sqlite://", "http://"]),
    (["tracking.uri=http://127.0.0.1:{port}"], ["tracking.uri", "no MLflow server answers at http://127.0.0.1:{port}"]),
    (["tracking.uri=sqlite:///{tmp}/a_file/sub/mlflow.db"], ["tracking.uri", "cannot write", "a_file/sub"]),
    (["checkpoint.dir={tmp}/a_file/sub"], ["checkpoint.dir", "cannot write checkpoints", "a_file/sub"]),
    # stores MLflow would refuse with a long traceback after TensorFlow loaded
    (
        ["tracking.uri=file://{tmp}/mlruns"],
        ["tracking.uri", "MLflow 3 refuses file: stores", "sqlite:///", "MLFLOW_ALLOW_FILE_STORE=true"],
    ),
    (["tracking.uri=postgresql://me:pw@127.0.0.1:{port}/runs"], _driver_or_server("psycopg", "'psycopg[binary]'")),
    (["tracking.uri=mysql+pymysql://me:pw@127.0.0.1:{port}/runs"], _driver_or_server("pymysql", "PyMySQL")),
    # tracking.register: registers the logged generator, so it needs an MLflow store and log_model
    (["tracking.register=gauss"], ["tracking.register=gauss", "add tracking.log_model=true"]),
    (
        ["tracking=none", "tracking.register=gauss", "tracking.log_model=true"],
        ["tracking.register=gauss", "needs tracking=mlflow"],
    ),
    (["tracking.register=a/b", "tracking.log_model=true"], ["tracking.register", "'a/b' is not a model name"]),
    # weights.load= a run id that is not there (the store does not even exist)
    (["weights.load=0123456789abcdef0123456789abcdef"], ["weights.load", "no MLflow store at", "mlflow.db"]),
    # resume= pointing at nothing
    (["resume="], ["resume", "empty", "run id", "last"]),
    (["resume={tmp}/nowhere"], ["resume=", "nowhere", "no checkpoint found"]),
    (["resume=0123456789abcdef0123456789abcdef"], ["resume=0123456789abcdef0123456789abcdef", "no checkpoint found"]),
    (["resume=last"], ["resume=last", "nothing to resume: no checkpoint of a run in", "{tmp}/checkpoints"]),
    # resume= a real run with a config that changes training ({run}: a finished 1-D run in {store})
    (
        ["tracking.uri={store}", "resume={run}", "model.hidden=64"],
        [
            "resume: the config differs from",
            "ckpt-000000010.npz",
            "in ways that change training: model.hidden: 32 -> 64",
        ],
    ),
    # eval.metrics: known names only, image models only, the objective among them
    (
        ["model=dcgan", "eval.metrics=[fd,fid]"],
        ["eval.metrics", "'fid'", "allowed: fd, mnist_score", "kid", "coverage_nn"],
    ),
    (["eval.metrics=[kid]"], ["eval.metrics", "only image models", "'gaussian1d'"]),
    (["model=dcgan", "eval.metrics=[kid,precision]"], ["objective: eval/fd is not computed", "'fd'", "eval.metrics"]),
    (["model=dcgan", "eval.prdc_k=0"], ["eval.prdc_k", "1..eval.n_fake-1 (1999)", "got 0"]),
]


def _free_port() -> int:
    """A loopback port that was free a moment ago: nothing listens on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_files(tmp) -> None:
    (tmp / "notes.txt").write_text("these are notes, not digits\n")
    (tmp / "a_file").write_text("a regular file: nothing can be created under it, even by root\n")
    real = (MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()
    (tmp / "t10k-images-idx3-ubyte.gz").write_bytes(real[: len(real) // 3])  # a download cut short
    header = struct.pack(">IIII", 0x00000803, 2, 32, 32)  # a valid IDX file of 32x32 images
    (tmp / "big-images-idx3-ubyte").write_bytes(header + bytes(2 * 32 * 32))
    np.savez(tmp / "big.npz", x_train=np.zeros((3, 32, 32), np.uint8))
    (tmp / "unlabelled").mkdir()  # MNIST's test digits without their label file
    (tmp / "unlabelled" / "t10k-images-idx3-ubyte.gz").symlink_to(MNIST / "t10k-images-idx3-ubyte.gz")
    np.savez(tmp / "nolabels.npz", x_train=np.zeros((100, 28, 28), np.uint8))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> dict:
    """A real 10-step 1-D run with its checkpoint beside its SQLite store, for the resume= rows."""
    from conftest import compose_cfg
    from gan_runner import train

    folder = tmp_path_factory.mktemp("finished_run")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    args = [f"tracking.uri={store}", "train_steps=10", "eval_every=10", "log_every=10", "eval.n_fake=200"]
    train.run(compose_cfg(args), args)
    (run_folder,) = (folder / "checkpoints").iterdir()
    return {"store": store, "run": run_folder.name, "folder": run_folder}


@pytest.mark.parametrize("overrides,words", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_input_one_line_exit_2_no_run_no_tensorflow(tmp_path, overrides, words, request):
    _make_files(tmp_path)
    fill = {"tmp": tmp_path, "mnist": MNIST, "port": _free_port()}
    finished = request.getfixturevalue("finished_run") if any("{run}" in o for o in overrides) else None
    if finished:
        from mlflow.tracking import MlflowClient

        fill.update(store=finished["store"], run=finished["run"])
        client = MlflowClient(tracking_uri=finished["store"])
        before = (client.get_run(finished["run"]).to_dictionary(), sorted(finished["folder"].iterdir()))
    args = [o.format(**fill) for o in overrides]
    started = time.monotonic()
    result = run_cli(args, tmp_path, timeout=120, python_flags=("-X", "importtime"))
    elapsed = time.monotonic() - started
    imported = {ln.split("|")[-1].strip() for ln in result.stderr.splitlines() if ln.startswith("import time:")}
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("import time:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("gan_runner: error: "), lines
    for word in words:
        assert word.format(**fill) in lines[0], (word, lines[0])
    assert "tensorflow" not in imported and "keras" not in imported  # found before TensorFlow loads
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # no store, so no run
    assert not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()  # no Hydra run folder
    assert elapsed < 30, elapsed  # seconds, not a TensorFlow import and a training run
    if finished:  # the run and its checkpoints are as they were
        assert (client.get_run(finished["run"]).to_dictionary(), sorted(finished["folder"].iterdir())) == before


def test_weights_load_of_a_run_that_is_not_in_the_store_fails_before_any_run(tmp_path):
    """The store exists (one real run without weights in it), the id is not there or has no
    weights: one line, exit 2, no new run, before TensorFlow (it used to leave a FAILED run)."""
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("gaussian1d", artifact_location=(tmp_path / "mlartifacts").as_uri())
    weightless = client.create_run(experiment).info.run_id
    client.set_terminated(weightless, "KILLED")
    for run_id, words in (
        ("0123456789abcdef0123456789abcdef", "no run 0123456789abcdef0123456789abcdef in"),
        (weightless, f"run {weightless} in {store} has no weights/ artifacts (its status: KILLED)"),
    ):
        result = run_cli(
            [f"tracking.uri={store}", f"weights.load={run_id}"],
            tmp_path,
            timeout=120,
            python_flags=("-X", "importtime"),
        )
        imported = {ln.split("|")[-1].strip() for ln in result.stderr.splitlines() if ln.startswith("import time:")}
        lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("import time:")]
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
        assert lines[0].startswith("gan_runner: error: weights.load: ") and words in lines[0], lines[0]
        assert "tensorflow" not in imported
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [weightless]


def test_an_unreachable_server_is_found_in_the_connect_timeout():
    """The tracking server check itself (tracking.preflight): a refused port fails at once; a host
    that drops packets (here: a loopback listener whose accept queue is full, so the kernel drops
    the SYN) fails when the 3 s connect timeout runs out, not after MLflow's minutes of retries.
    The whole command adds Python's start-up and the config (README: measured 1.4-1.8 s)."""
    from omegaconf import OmegaConf

    from gan_runner import tracking
    from gan_runner.config import ConfigError

    def check(port: int) -> tuple[float, str]:
        started = time.monotonic()
        with pytest.raises(ConfigError) as err:
            tracking.preflight(OmegaConf.create({"name": "mlflow", "uri": f"http://127.0.0.1:{port}"}))
        return time.monotonic() - started, str(err.value)

    elapsed, message = check(_free_port())
    assert elapsed < 0.5 and message.endswith("(Connection refused)"), (elapsed, message)
    with socket.socket() as server, socket.socket() as first:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        first.connect(server.getsockname())  # fills the queue; nothing ever accepts
        elapsed, message = check(server.getsockname()[1])
    assert 2.9 < elapsed < 3.5 and message.endswith("(timed out)"), (elapsed, message)

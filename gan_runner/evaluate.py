"""`python -m gan_runner.evaluate SOURCE [key=value ...]`: score generated digits the way a
dcgan run's evaluation does (eval/fd, eval/mnist_score, eval/coverage, eval/kid, eval/precision,
recall, density, coverage_nn as its eval.metrics choose, and their real-vs-real floors), for
comparing with other tools.

SOURCE is one of
  * a .npy of images, shape (N, 28, 28) or (N, 28, 28, 1), floats in [0, 1] or uint8 0-255
    (the first eval.n_fake are scored);
  * a generator's .weights.h5 (the architecture from --config, e.g. a run's config.yaml
    artifact, else from model=dcgan plus the overrides);
  * an MLflow run id: its config.yaml and weights/generator.weights.h5 (--best:
    weights/best/generator.weights.h5) from tracking.uri;
  * a registered model version, models:/<name>@champion or models:/<name>/<version>
    (tracking.register=<name>): its generator with the config of the run it came from.
A generator's N fakes come from the same fixed noise as the run's evaluations, so the final
weights reproduce its last eval/fd.
--checkpoints with a run id: every checkpoint the run kept (its checkpoint.dir tag) is scored
the same way and the curve is logged back onto the run as ckpt/<metric> at the checkpoints'
steps (ckpt/<name>_floor at step 0), so a run evaluated cheaply while training (a short
eval.metrics list) can be judged thoroughly afterwards.
key=value are config overrides (data.path=..., eval.n_fake=..., eval.classifier.cache_dir=...,
tracking.uri=..., seed=...). Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gan_runner.errors import EXIT_BAD_INPUT, BadInput, ConfigError, DataError
from gan_runner.store import RUN_ID


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gan_runner.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source",
        help="images .npy | generator .weights.h5 | MLflow run id | models:/<name>@<alias> | models:/<name>/<version>",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    parser.add_argument("--config", help="with a .weights.h5: the run's config.yaml (default: model=dcgan + overrides)")
    parser.add_argument("--best", action="store_true", help="with a run id: the weights of the run's best step")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--checkpoints",
        action="store_true",
        help="with a run id: score every kept checkpoint and log ckpt/<metric> at their steps",
    )
    return parser.parse_intermixed_args(argv)  # overrides may also follow --config X


def compose(overrides: list[str], base: str | None = None) -> DictConfig:
    """The validated config of image data: a saved config.yaml plus the overrides, or the
    composed model=dcgan."""
    from gan_runner import registry

    cfg = config_from(overrides, base)
    if registry.DATA_KINDS.get(cfg.data.name) != "image":
        raise BadInput(f"data '{cfg.data.name}' is not images: only image models (model=dcgan) are judged here")
    return cfg


def config_from(overrides: list[str], base: str | dict | None) -> DictConfig:
    """The validated config of any model: `base` (a saved config.yaml, or a checkpoint's config
    dict) plus the overrides, or the composed model=dcgan plus the overrides."""
    from gan_runner.config import validate, with_defaults

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise BadInput(f"'{bad[0]}': overrides are key=value (e.g. data.path=/data/mnist)")
    if base is None:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from gan_runner.config import compose

        try:
            return validate(compose(["model=dcgan", *overrides]))
        except (HydraException, OmegaConfBaseException) as err:
            raise BadInput(str(err).splitlines()[0]) from None
    try:
        saved = OmegaConf.create(base) if isinstance(base, dict) else OmegaConf.load(base)
    except (OSError, ValueError) as err:
        raise BadInput(f"--config {base}: cannot read it as YAML ({str(err).splitlines()[0]})") from None
    return validate(OmegaConf.merge(with_defaults(saved), OmegaConf.from_dotlist(overrides)))


def load_images(path: Path, n: int) -> np.ndarray:
    """The first n images of a .npy as float32 (n, 28, 28, 1) in [0, 1]."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: not a readable .npy file ({str(err).splitlines()[0]})") from None
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise BadInput(f"{path}: images have shape {x.shape}, expected (N, 28, 28) or (N, 28, 28, 1)")
    if len(x) < n:
        raise BadInput(
            f"{path}: {len(x)} images, eval.n_fake={n}; pass eval.n_fake={len(x)} (compare FDs only at equal N)"
        )
    x = x[:n]
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / 255.0)[..., None]
    if not np.issubdtype(x.dtype, np.floating):
        raise BadInput(f"{path}: pixels are {x.dtype}; expected floats in [0, 1] or uint8 0-255")
    finite = np.isfinite(x.reshape(n, -1)).all(axis=1)
    if not finite.all():
        raise BadInput(f"{path}: {int((~finite).sum())} of {n} images hold NaN or inf")
    if x.min() < 0 or x.max() > 1:
        raise BadInput(
            f"{path}: float pixels must be in [0, 1], got {x.min():.4g}..{x.max():.4g} (uint8 0-255 is also accepted)"
        )
    return x.astype(np.float32)[..., None]


def load_generator(cfg: DictConfig, weights: Path | dict[str, np.ndarray]):
    """The run's generator (a keras.Model) with weights from a .weights.h5, or from a checkpoint's
    arrays (`generator.<i>`, or `generator_ema.<i>` when the run had the EMA on; positional as
    models/gan.py's state_variables)."""
    from gan_runner import registry

    generator = registry.get_model(cfg.model.name).build_generator(cfg.model)
    where = weights if isinstance(weights, Path) else "checkpoint"
    try:
        if isinstance(weights, Path):
            generator.load_weights(weights)
        else:
            # a run with the EMA on: its EMA generator is the one evaluated and sampled
            group = "generator_ema." if any(k.startswith("generator_ema.") for k in weights) else "generator."
            saved = sorted((k for k in weights if k.startswith(group)), key=lambda k: int(k.split(".")[1]))
            if len(saved) != len(generator.weights):
                raise ValueError(f"{len(saved)} generator arrays, the model has {len(generator.weights)}")
            for var, key in zip(generator.weights, saved):
                if tuple(var.shape) != weights[key].shape:
                    raise ValueError(f"{key} has shape {weights[key].shape}, the model {tuple(var.shape)}")
                var.assign(weights[key])
    except ValueError as err:
        raise BadInput(f"{where}: does not fit model {cfg.model.name} ({str(err).splitlines()[0][:200]})") from None
    return generator


def eval_noise(cfg: DictConfig, n: int, seed: int | None = None) -> np.ndarray:
    """The noise a run's evaluation of n fakes uses (train.eval_noise), seed the run's unless
    given; a conditional model's with the one-hot classes i % K joined (gan_runner/labels.py)."""
    from gan_runner import registry
    from gan_runner.train import eval_noise as draw

    model = registry.get_model(cfg.model.name)
    k = model.num_classes(cfg.model) if registry.MODELS[cfg.model.name].conditional else 0
    return draw(cfg.seed if seed is None else seed, n, model.latent_dim(cfg.model), k)


def eval_classes(cfg: DictConfig, n: int) -> np.ndarray | None:
    """The classes a conditional model's evaluation fakes were made for (eval_noise: i % K), so
    that they are scored for obeying them too; None for an unconditional model."""
    from gan_runner import labels, registry

    if not registry.MODELS[cfg.model.name].conditional:
        return None
    return labels.eval_labels(n, registry.get_model(cfg.model.name).num_classes(cfg.model))


def run_generator(generator, z: np.ndarray, where: object = "the generator") -> np.ndarray:
    """generator(z) as train.Trainer.generate computes it (one traced function, the same
    chunks), so a reloaded generator gives the run's samples bit for bit."""
    import tensorflow as tf

    from gan_runner.train import generate_chunked

    call = tf.function(
        lambda x: generator(x, training=False), input_signature=[tf.TensorSpec((None, z.shape[1]), tf.float32)]
    )
    fakes = generate_chunked(call, z, generator.output_shape[1:])
    if not np.isfinite(fakes).all():
        raise BadInput(f"{where}: the generator outputs NaN or inf")
    return fakes


def generate(cfg: DictConfig, weights: Path, n: int) -> np.ndarray:
    """n fakes from the generator's weights, with the noise a run's evaluation uses (seed, n)."""
    return run_generator(load_generator(cfg, weights), eval_noise(cfg, n), weights)


def run_files(run_id: str, uri: str | None, best: bool, tmp: Path) -> tuple[Path, Path]:
    """(config.yaml, generator.weights.h5) of a run, downloaded into tmp."""
    from gan_runner import tracking

    artifact = "weights/best" if best else "weights"
    try:
        config = tracking.download_artifacts(OmegaConf.create({"uri": uri}), run_id, "config.yaml", tmp / "config")
        folder = tracking.download_artifacts(OmegaConf.create({"uri": uri}), run_id, artifact, tmp / "weights")
    except LookupError as err:
        raise BadInput(f"run {run_id}: {err}") from None
    weights = Path(folder) / "generator.weights.h5"
    if not weights.is_file():
        raise BadInput(f"run {run_id}: no {artifact}/generator.weights.h5 among its artifacts")
    return Path(config), weights


def resolve(args: argparse.Namespace, tmp: Path) -> tuple[DictConfig, np.ndarray, str]:
    """(config, the images to score, a description of the source). A generator's images are made
    from the run's evaluation noise (eval_noise), a conditional model's for the classes i % K."""
    source = args.source
    path = Path(source).expanduser()
    if path.suffix == ".npy" or (path.is_file() and not source.endswith(".weights.h5")):
        if not path.is_file():
            raise BadInput(f"{source}: no such file")
        cfg = compose(args.overrides)
        return cfg, load_images(path, int(cfg.eval.n_fake)), f"{path} (images)"
    if source.endswith(".weights.h5"):
        if not path.is_file():
            raise BadInput(f"{source}: no such file")
        cfg = compose(args.overrides, args.config)
        return cfg, generate(cfg, path, int(cfg.eval.n_fake)), f"{path} (generator)"
    if RUN_ID.fullmatch(source):
        return from_run(args, tmp)
    if source.startswith("models:/"):
        generator, run_id, _, config = from_registry(source, args.overrides, tmp)
        cfg = compose(args.overrides, str(config))
        fakes = run_generator(generator, eval_noise(cfg, int(cfg.eval.n_fake)), source)
        return cfg, fakes, f"{source} (run {run_id})"
    raise BadInput(f"{source}: not a .npy file, a .weights.h5 file, or an MLflow run id (32 hex characters)")


def from_registry(source: str, overrides: list[str], tmp: Path):
    """(generator, run id, tracking URI, the run's config.yaml) of a registered model version:
    the generator as the run logged it (its LoggedModel), the config of the run it came from."""
    from gan_runner import tracking

    uri = tracking.resolve_uri(override_uri(overrides))
    run_id, generator = tracking.load_registered(uri, source)
    return generator, run_id, uri, run_config(run_id, uri, tmp)


def run_config(run_id: str, uri: str | None, tmp: Path) -> Path:
    """A run's config.yaml artifact, downloaded into tmp."""
    from gan_runner import tracking

    try:
        return tracking.download_artifacts(OmegaConf.create({"uri": uri}), run_id, "config.yaml", tmp / "config")
    except LookupError as err:
        raise BadInput(f"run {run_id}: {err}") from None


def score_checkpoints(args: argparse.Namespace, tmp: Path) -> dict:
    """Every kept checkpoint of a run scored with the run's eval.n_fake and eval noise, and the
    curve logged back onto the run: ckpt/<metric> at each checkpoint's step, ckpt/<name>_floor
    at step 0. The run's training-time eval/* stay as they were."""
    from gan_runner import checkpoint, tracking
    from gan_runner.metrics import classifier

    if not RUN_ID.fullmatch(args.source):
        raise BadInput(f"--checkpoints: {args.source} is not an MLflow run id (32 hex characters)")
    uri = tracking.resolve_uri(override_uri(args.overrides))
    run = tracking.get_run(uri, args.source)
    folder = Path(run.data.tags.get("checkpoint.dir", ""))
    paths = checkpoint.checkpoints(folder) if run.data.tags.get("checkpoint.dir") else []
    if not paths:
        raise BadInput(
            f"--checkpoints: run {args.source} has no kept checkpoints (checkpoint.dir tag: "
            f"{run.data.tags.get('checkpoint.dir', 'none')})"
        )
    cfg = compose(args.overrides, str(run_config(args.source, uri, tmp)))
    n = int(cfg.eval.n_fake)
    judge = classifier.judge_for(cfg.data, cfg.eval)
    judge.check_n(n)
    metrics, k = classifier.chosen_metrics(cfg.eval)
    curve = []
    for path in paths:
        try:
            ckpt = checkpoint.read(path)
        except ConfigError as err:
            raise BadInput(str(err).removeprefix("resume: ")) from None
        fakes = run_generator(load_generator(cfg, ckpt.arrays), eval_noise(cfg, n), path)
        scores = judge.scores(fakes, metrics, k, labels=eval_classes(cfg, n))
        scores.pop("histogram")
        curve.append((ckpt.step, {name: float(value) for name, value in scores.items()}))
    floors = judge.floors(n, metrics, k)
    tracking.log_metrics_at(
        uri,
        args.source,
        [(0, {f"ckpt/{name}": v for name, v in floors.items()})]
        + [(step, {f"ckpt/{name}": v for name, v in named.items()}) for step, named in curve],
    )
    return {
        "n": n,
        "run_id": args.source,
        "floors": floors,
        "curve": [{"step": step, **named} for step, named in curve],
    }


def print_curve(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    names = list(result["curve"][0]) if result["curve"] else []
    table = Table(
        title=f"run {result['run_id']}: {len(result['curve'])} checkpoints, {result['n']} samples each "
        f"(logged as ckpt/<metric>)"
    )
    for name in names:
        table.add_column(name, justify="right")
    for row in result["curve"]:
        table.add_row(*(str(row[c]) if c == "step" else f"{row[c]:.4g}" for c in names))
    table.add_row(
        *("floor" if c == "step" else f"{result['floors'].get(c + '_floor', float('nan')):.4g}" for c in names)
    )
    Console().print(table)


def override_uri(overrides: list[str]) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("tracking.uri=")), None)


def from_run(args: argparse.Namespace, tmp: Path) -> tuple[DictConfig, np.ndarray, str]:
    config, weights = run_files(args.source, override_uri(args.overrides), args.best, tmp)
    cfg = compose(args.overrides, str(config))
    artifact = "weights/best" if args.best else "weights"
    return cfg, generate(cfg, weights, int(cfg.eval.n_fake)), f"run {args.source} ({artifact})"


def score(cfg: DictConfig, fakes: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """The images' scores; with `labels` (the classes a conditional generator made them for) also
    class_accuracy, class_xent and fd_intra."""
    from gan_runner.metrics import classifier

    judge = classifier.judge_for(cfg.data, cfg.eval)
    n = len(fakes)
    judge.check_n(n)
    metrics, k = classifier.chosen_metrics(cfg.eval)
    scores = judge.scores(fakes, metrics, k, labels=labels)
    histogram = scores.pop("histogram")
    return {
        "n": n,
        **scores,
        **judge.floors(n, metrics, k),
        "histogram": [round(float(h), 4) for h in histogram],
        "classifier_accuracy": judge.accuracy,
        "classifier_cached": not judge.classifier.trained,
        "classifier": str(judge.classifier.path),
        "split": judge.split.rule,
    }


def print_table(result: dict, source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{source}: {result['n']} samples vs {result['n']} reference digits")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    meanings = {
        "fd": "Frechet distance of the classifier's logits (lower is better)",
        "mnist_score": "exp E KL(p(y|x) || p(y)): 10 ideal, 1 one class",
        "coverage": "digit classes with >= the coverage threshold of the samples",
        "kid": "kernel distance (unbiased MMD^2, cubic kernel) of the logits; 0 = real",
        "kid_std": "eval/kid's standard error over its blocks",
        "precision": "fakes inside a real sample's k-NN ball (Naeem et al. 2020)",
        "recall": "reals inside a fake sample's k-NN ball",
        "density": "real balls per fake / k (1 ~ real)",
        "coverage_nn": "reals whose k-NN ball holds a fake",
        "class_accuracy": "fakes the classifier puts in the class they were made for",
        "class_xent": "the classifier's cross-entropy against those classes (lower is better)",
        "fd_intra": "mean over classes of the FD between the class's fakes and real digits",
    }
    for name, meaning in meanings.items():
        if name in result:
            value = result[name]
            table.add_row(f"eval/{name}", str(value) if name == "coverage" else f"{value:.4f}", meaning)
            if f"{name}_floor" in result:
                table.add_row(
                    f"eval/{name}_floor",
                    f"{result[name + '_floor']:.4f}",
                    f"the same for two disjoint real sets of {result['n']}",
                )
    table.add_row("class histogram", " ".join(f"{h:.2f}" for h in result["histogram"]), "fraction per digit 0-9")
    table.add_row(
        "classifier accuracy",
        f"{result['classifier_accuracy']:.4f}",
        "on the reference digits (held out) " + ("(cached)" if result["classifier_cached"] else "(trained now)"),
    )
    Console().print(table)
    print(f"split: {result['split']}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.checkpoints:
                result = score_checkpoints(args, Path(tmp))
            else:
                cfg, fakes, source = resolve(args, Path(tmp))
                from_images = source.endswith("(images)")  # a .npy of images: no classes they were made for
                result = score(cfg, fakes, None if from_images else eval_classes(cfg, len(fakes)))
    except (BadInput, ConfigError, DataError, LookupError) as err:
        print(f"gan_runner.evaluate: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if args.json:
        print(json.dumps(result))
    elif args.checkpoints:
        print_curve(result)
    else:
        print_table(result, source)
    return result


if __name__ == "__main__":
    main()

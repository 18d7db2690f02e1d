"""`python -m gan_runner.sample SOURCE [n=64] [out=DIR] [seed=S] [label=3 | labels=0..9] [key=value ...]`:
samples of a trained generator as a picture and as raw numbers.

SOURCE is one of
  * an MLflow run id: its config.yaml and final weights (--best: the best step's; --model: the
    generator it logged as an MLflow model) from tracking.uri=...;
  * a checkpoint folder (<checkpoint.dir>/<run id>/, its newest ckpt-*.npz) or one ckpt-*.npz;
  * a generator's .weights.h5 with --config (a run's config.yaml; else model=dcgan + overrides);
  * a registered model version, models:/<name>@champion or models:/<name>/<version>
    (tracking.register=<name>), with the config of the run it came from.

Writes into `out` (default ./samples): samples.png (a digit grid, or a histogram + KDE of 1-D
samples) and samples.npz (z: the noise, x: the samples). The noise is the run's evaluation noise
for n (default_rng([seed, n]), seed the run's unless seed= is given), so a run's own samples come
back bit for bit. A conditional model (model=cdcgan) draws the classes i % 10 as its evaluation
does; label=3 makes all n of class 3 (the same noise), labels=0..9 (or 1,4,7) one grid row per
class with the same n noise vectors in every row (n defaults to 10 then; npz y: the classes).
An unconditional model refuses label= and labels= by name. --interpolate lerp|slerp [--steps 10] [--pairs 4] adds interpolation_<mode>.png
and .npz: `steps` samples along the path between each of `pairs` pairs of noise vectors.
--log adds the files to the run (artifact folder samples/). Bad input: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gan_runner import evaluate
from gan_runner.errors import EXIT_BAD_INPUT, BadInput, ConfigError, DataError

OWN_KEYS = ("n", "out", "seed", "label", "labels")  # the rest of key=value are config overrides


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line like every other bad input, not usage + error
        raise BadInput(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m gan_runner.sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source",
        help="MLflow run id | checkpoint folder or ckpt-*.npz | generator .weights.h5 "
        "| models:/<name>@<alias> or models:/<name>/<version>",
    )
    parser.add_argument("settings", nargs="*", help="n=64 out=DIR seed=S, and config overrides key=value")
    parser.add_argument("--config", help="with a .weights.h5: the run's config.yaml (default: model=dcgan + overrides)")
    parser.add_argument("--best", action="store_true", help="with a run id: the weights of the run's best step")
    parser.add_argument(
        "--model", action="store_true", help="with a run id: the generator it logged as an MLflow model"
    )
    parser.add_argument(
        "--interpolate", choices=("lerp", "slerp"), help="also the interpolation strips between noise pairs"
    )
    parser.add_argument("--steps", type=int, default=10, help="samples per interpolation strip (>= 2)")
    parser.add_argument("--pairs", type=int, default=4, help="interpolation strips (pairs of noise vectors)")
    parser.add_argument("--log", action="store_true", help="add the files to the run's artifacts (samples/)")
    args = parser.parse_intermixed_args(argv)  # flags may come after key=value
    own, args.overrides = {}, []
    for item in args.settings:
        if "=" not in item:
            raise BadInput(f"'{item}': settings are key=value (n=64, out=DIR, seed=S, or a config override)")
        key, value = item.split("=", 1)
        if key in OWN_KEYS:
            own[key] = value
        else:
            args.overrides.append(item)
    args.out = Path(own.get("out", "samples")).expanduser()
    if "label" in own and "labels" in own:
        raise BadInput("label= and labels=: one class for every sample, or one row per class; choose one")
    args.classes = ("label", own["label"]) if "label" in own else ("labels", own["labels"]) if "labels" in own else None
    default_n = "10" if "labels" in own else "64"  # labels=: n is the columns of each class's row
    args.n = _int("n", own.get("n", default_n), 1)
    args.seed = _int("seed", own["seed"], 0) if "seed" in own else None
    if args.steps < 2 or args.pairs < 1:
        raise BadInput(f"--steps must be >= 2 and --pairs >= 1, got {args.steps} and {args.pairs}")
    if args.log and args.source.endswith(".weights.h5"):
        raise BadInput(f"--log: {args.source} belongs to no run; give the run id or its checkpoint folder")
    if args.best and args.model:
        raise BadInput("--best and --model: the logged model is the final generator; choose one")
    return args


def _int(key: str, value: str, least: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = least - 1
    if number < least:
        raise BadInput(f"{key}={value}: expected an integer >= {least}")
    return number


def load(args: argparse.Namespace, tmp: Path) -> tuple[DictConfig, object, str | None, str | None]:
    """(config, generator, run id, tracking URI) of the source; the run id is None when unknown."""
    from gan_runner import checkpoint, tracking

    source, path = args.source, Path(args.source).expanduser()
    uri = evaluate.override_uri(args.overrides)
    if (args.best or args.model) and not evaluate.RUN_ID.fullmatch(source):
        raise BadInput(f"{source}: --best and --model need an MLflow run id as SOURCE")
    if source.startswith("models:/"):
        generator, run_id, uri, config = evaluate.from_registry(source, args.overrides, tmp)
        return evaluate.config_from(args.overrides, str(config)), generator, run_id, uri
    if evaluate.RUN_ID.fullmatch(source) and not path.exists():
        uri = tracking.resolve_uri(uri)
        tracking.get_run(uri, source)  # reading only: a wrong store is never created
        if args.model:
            config = evaluate.run_config(source, uri, tmp)
            try:
                generator = tracking.load_keras_model(uri, source)
            except LookupError as err:
                raise BadInput(str(err)) from None
            return evaluate.config_from(args.overrides, str(config)), generator, source, uri
        config, weights = evaluate.run_files(source, uri, args.best, tmp)
        cfg = evaluate.config_from(args.overrides, str(config))
        return cfg, evaluate.load_generator(cfg, weights), source, uri
    if path.is_dir() or path.suffix == ".npz":
        if not path.exists():
            raise BadInput(f"{source}: no such checkpoint file")
        try:
            ckpt = checkpoint.newest(path) if path.is_dir() else checkpoint.read(path)
        except ConfigError as err:
            raise BadInput(str(err).removeprefix("resume: ")) from None
        cfg = evaluate.config_from(args.overrides, ckpt.meta["config"])
        return cfg, evaluate.load_generator(cfg, ckpt.arrays), ckpt.meta.get("run_id"), ckpt.meta.get("tracking_uri")
    if source.endswith(".weights.h5"):
        if not path.is_file():
            raise BadInput(f"{source}: no such file")
        cfg = evaluate.config_from(args.overrides, args.config)
        return cfg, evaluate.load_generator(cfg, path), None, None
    raise BadInput(
        f"{source}: not an MLflow run id (32 hex characters), a checkpoint folder or .npz, or a .weights.h5 file"
    )


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN noise) at each t in [0, 1]:
    along the great circle with the norm interpolated linearly; lerp for (anti)parallel a, b."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    omega = np.arccos(np.clip(a @ b / max(na * nb, 1e-12), -1, 1))
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    direction = (np.sin((1 - t) * omega)[:, None] * ua + np.sin(t * omega)[:, None] * ub) / np.sin(omega)
    return direction * ((1 - t) * na + t * nb)[:, None]


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (1 - t)[:, None] * a + t[:, None] * b


def interpolation_noise(z: np.ndarray, mode: str, steps: int, pairs: int) -> np.ndarray:
    """(pairs * steps, latent): row p walks from z[2p] to z[2p + 1] (pairs taken from the noise)."""
    if len(z) < 2 * pairs:
        raise BadInput(f"--pairs {pairs} needs n >= {2 * pairs} noise vectors, got n={len(z)}")
    t = np.linspace(0.0, 1.0, steps)
    walk = slerp if mode == "slerp" else lerp
    return np.concatenate(
        [walk(z[2 * p].astype(np.float64), z[2 * p + 1].astype(np.float64), t) for p in range(pairs)]
    ).astype(np.float32)


def write_picture(x: np.ndarray, path: Path, rows: int, cols: int, title: str, strips: bool = False) -> None:
    """A digit grid (rows x cols) for images (n, 28, 28, 1); for 1-D (n, 1) a histogram + KDE,
    or with `strips` one line per row: the sample along each interpolation path."""
    from gan_runner import plots

    if x.ndim == 4:
        from PIL import Image

        Image.fromarray(plots.image_grid(x, rows, cols)).save(path)
        return
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if not strips:
        sns.histplot(x=x[:, 0].astype(np.float64), stat="density", kde=True, ax=ax, color="red")
        ax.set(xlabel="x", title=title)
    else:
        for r, row in enumerate(x[:, 0].reshape(rows, cols)):
            ax.plot(np.linspace(0, 1, cols), row, marker="o", label=f"pair {r}")
        ax.set(xlabel="t (noise a -> b)", ylabel="G(z)", title=title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plots.close(fig)


def grid_shape(n: int) -> tuple[int, int]:
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def main(argv: list[str] | None = None) -> list[Path]:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        with tempfile.TemporaryDirectory() as tmp:
            cfg, generator, run_id, uri = load(args, Path(tmp))
        if args.log and run_id is None:
            raise BadInput(f"--log: {args.source} belongs to no tracked run (give its run id or checkpoint folder)")
        written = sample(cfg, generator, args)
        if args.log:
            from gan_runner import tracking

            for path in written:
                tracking.log_file(uri, run_id, path, "samples")
    except (BadInput, ConfigError, DataError, LookupError) as err:
        print(f"gan_runner.sample: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    print(json.dumps({"written": [str(p) for p in written], "run_id": run_id}))
    return written


def with_classes(cfg: DictConfig, z: np.ndarray, classes, rows: int, cols: int):
    """(G's inputs, their classes or None, grid rows, cols) for label= / labels= (module docstring)."""
    from gan_runner import labels, registry

    if not registry.MODELS[cfg.model.name].conditional:
        if classes is not None:
            raise BadInput(
                f"{classes[0]}={classes[1]}: model '{cfg.model.name}' is not class-conditional; "
                "label= and labels= need a conditional model (model=cdcgan)"
            )
        return z, None, rows, cols
    k = registry.get_model(cfg.model.name).num_classes(cfg.model)
    if classes is None:
        return z, labels.eval_labels(len(z), k), rows, cols
    try:
        wanted = labels.parse(classes[1], k, classes[0])
    except ValueError as err:
        raise BadInput(str(err)) from None
    if classes[0] == "label":
        if len(wanted) != 1:
            raise BadInput(f"label={classes[1]}: one class; for several use labels={classes[1]}")
        return labels.relabel(z, np.full(len(z), wanted[0]), k), np.full(len(z), wanted[0]), rows, cols
    y = np.repeat(wanted, len(z))  # row c: the same n noise vectors, class c
    return labels.relabel(np.tile(z, (len(wanted), 1)), y, k), y, len(wanted), len(z)


def sample(cfg: DictConfig, generator, args: argparse.Namespace) -> list[Path]:
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInput(f"out={args.out}: cannot create it ({err.strerror})") from None
    image = len(generator.output_shape) == 4
    z = evaluate.eval_noise(cfg, args.n, args.seed)
    rows, cols = grid_shape(args.n) if image else (1, args.n)
    z, y, rows, cols = with_classes(cfg, z, getattr(args, "classes", None), rows, cols)
    x = evaluate.run_generator(generator, z)
    written = [args.out / "samples.png", args.out / "samples.npz"]
    write_picture(x, written[0], rows, cols, f"{len(x)} samples of {cfg.model.name}")
    np.savez(written[1], z=z, x=x, **({"y": y} if y is not None else {}))
    if args.interpolate:
        zi = interpolation_noise(z, args.interpolate, args.steps, args.pairs)
        xi = evaluate.run_generator(generator, zi)
        png, npz = (
            args.out / f"interpolation_{args.interpolate}.png",
            args.out / f"interpolation_{args.interpolate}.npz",
        )
        write_picture(
            xi, png, args.pairs, args.steps, f"{args.interpolate} between {args.pairs} noise pairs", strips=True
        )
        np.savez(npz, z=zi, x=xi)
        written += [png, npz]
    return written


if __name__ == "__main__":
    main()

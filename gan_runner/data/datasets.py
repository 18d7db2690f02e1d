"""Real data for the GANs, as float32 numpy arrays (N, ...). No TensorFlow: IDX and .npz files
are read with gzip + numpy (images.py); only the last-resort download imports Keras.

Image data (mnist, fashion_mnist) comes from the first of these places that holds it:
  1. `data.path` (a folder, or one file). When set it is the only place looked: a path that
     does not hold the images is an error, never a silent fallback to other data.
  2. the Keras cache: $KERAS_HOME/datasets, ~/.keras/datasets, /tmp/.keras/datasets
     (where `keras.datasets.*.load_data()` keeps what it downloaded)
  3. system folders (Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist)
  4. `keras.datasets.<name>.load_data()`, which downloads (skipped with data.download=false)
In a folder the training images are taken (as the seed does); the test images if only they
are there. Nothing found: DataError, one line naming every place looked and `data.path=`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from gan_runner.data import images
from gan_runner.data.images import IMAGE_SETS
from gan_runner.errors import DataError

log = logging.getLogger(__name__)
N_CLASSES = 10  # MNIST's digits, Fashion-MNIST's garments


def load(data_cfg, seed: int) -> np.ndarray:
    loader = LOADERS.get(data_cfg.name)
    if loader is None:
        raise DataError(f"data: unknown choice '{data_cfg.name}'; known: {', '.join(sorted(LOADERS))}")
    return loader(data_cfg, seed)


def normal1d(data_cfg, seed: int) -> np.ndarray:
    """n samples of N(mean, std), shape (n, 1): the seed's np.random.normal(size=1000)."""
    rng = np.random.default_rng(seed)
    return rng.normal(data_cfg.mean, data_cfg.std, size=(data_cfg.n, 1)).astype(np.float32)


def keras_cache_dirs(subdir: str) -> list[Path]:
    """Where Keras' get_file() keeps downloads: $KERAS_HOME, ~/.keras, and /tmp/.keras (its
    fallback when home is not writable), each under datasets/<subdir>."""
    homes = [os.environ.get("KERAS_HOME"), os.path.expanduser("~/.keras"), "/tmp/.keras"]
    out: list[Path] = []
    for home in filter(None, homes):
        folder = Path(home) / "datasets" / subdir
        if folder not in out:
            out.append(folder)
    return out


def find_images(name: str, path: str | None) -> tuple[Path | None, list[Path]]:
    """(the image file to read or None, the places looked), in the module's search order."""
    spec = IMAGE_SETS[name]
    places = [Path(path).expanduser()] if path else [*keras_cache_dirs(spec.cache_subdir), *map(Path, spec.system_dirs)]
    for place in places:
        if place.is_file():
            return place, places
        for file_name in spec.candidates():
            if (place / file_name).is_file():
                return place / file_name, places
    return None, places


def image_data(data_cfg, seed: int) -> np.ndarray:
    """MNIST-style images, float32 in [0, 1], shape (N, 28, 28, 1); the first data.n if set."""
    spec = IMAGE_SETS[data_cfg.name]
    found, places = find_images(data_cfg.name, data_cfg.path)
    if found is not None:
        raw = images.read_images(found, spec)
        log.info("data: %d %s images from %s", len(raw), spec.title, found)
    elif data_cfg.path:
        raise DataError(
            f"data.path={data_cfg.path}: no {spec.title} images there; "
            f"expected a folder with {spec.expected()}, or one such file"
        )
    else:
        raw = _download(data_cfg, spec, places)
    if data_cfg.n:
        raw = raw[: data_cfg.n]
    return (raw.astype(np.float32) / 255.0)[..., None]  # (N, 28, 28, 1)


def _download(data_cfg, spec: images.ImageSet, places: list[Path]) -> np.ndarray:
    looked = ", ".join(str(p) for p in places)
    hint = f"pass data.path=<a folder with {spec.expected()}, or one such file>"
    if not data_cfg.download:
        raise DataError(f"data: no {spec.title} images found (looked in {looked}; data.download=false); {hint}")
    try:
        import keras  # imports TensorFlow: only here, as the last resort

        (x_train, _), _ = getattr(keras.datasets, data_cfg.name).load_data()
    except Exception as err:  # offline: URL fetch failure; a bad download: hash mismatch
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DataError(
            f"data: no {spec.title} images found (looked in {looked}) and the download failed ({reason}); {hint}"
        ) from None
    return images.check_shape(np.asarray(x_train, np.uint8), f"keras.datasets.{data_cfg.name}")


def label_files(image_file: Path) -> list[Path]:
    """Where the labels of an IDX image file are looked for: the same name with
    `images-idx3` -> `labels-idx1` (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz),
    gzipped or not."""
    base = image_file.name.replace("images-idx3", "labels-idx1").removesuffix(".gz")
    if base == image_file.name.removesuffix(".gz"):  # not an official-style name
        base = image_file.name.removesuffix(".gz") + "-labels"
    return [image_file.parent / (base + ".gz"), image_file.parent / base]


def image_labels(data_cfg) -> np.ndarray:
    """The class labels (N,) uint8 of the images image_data() reads (the same file, the same
    first data.n; the caller compares the counts), for the conditional models: the IDX label
    file beside the images, or the .npz's y_train (y_test with x_test). None: DataError, one line."""
    spec = IMAGE_SETS[data_cfg.name]
    found, places = find_images(data_cfg.name, data_cfg.path)
    need = "a conditional model (model=cdcgan) trains on images with their labels"
    if found is None and (data_cfg.path or not data_cfg.download):
        looked = ", ".join(str(p) for p in places)
        raise DataError(f"data: no {spec.title} images with labels found (looked in {looked}); {need}")
    if found is None:
        import keras  # imports TensorFlow: only here, as the last resort (image_data downloaded them)

        (_, labels), _ = getattr(keras.datasets, data_cfg.name).load_data()
    elif found.suffix == ".npz":
        labels = images.read_npz_labels(found)
        if labels is None:
            raise DataError(f"{found}: no y_train (or y_test) beside the images; {need}")
    else:
        label_file = next((p for p in label_files(found) if p.is_file()), None)
        if label_file is None:
            looked = " or ".join(p.name for p in label_files(found))
            raise DataError(f"{found}: no labels beside it (looked for {looked} in {found.parent}); {need}")
        labels = images.read_labels(label_file, spec)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataError(f"data: labels must be 0-{N_CLASSES - 1}, got {labels.min()}-{labels.max()}")
    return (labels[: data_cfg.n] if data_cfg.n else labels).astype(np.uint8)


LOADERS = {"normal1d": normal1d, "mnist": image_data, "fashion_mnist": image_data}

"""The MNIST classifier behind eval/fd, eval/mnist_score and eval/coverage, and the real
reference set the fakes are compared with. TF-GAN downloads a pretrained classifier from a
hub; gan_runner trains its own the first time it is needed and caches the weights.

Which real digits do what (the two sets never share an image):
  * Both the training and the test set of the data are there (`train-*` and `t10k-*` IDX
    files with their labels, or mnist.npz: the full 70,000): the classifier trains on the
    60,000 training digits; the 10,000 test digits are the reference set.
  * Only one set is there (e.g. the 10,000 offline test digits): it is shuffled with a fixed
    seed (SPLIT_SEED, the same for every run) and cut in two halves: the first half is the
    reference set, the second half trains the classifier (5,000 / 5,000 for the test digits).
The classifier's held-out accuracy is measured on the reference set, which it never sees in
training. eval/fd compares N fakes with the first N reference digits; eval/fd_floor compares
those with the next N, so eval.n_fake may be at most half the reference set. The reference
set may overlap with the GAN's own training images (as FID's usually does); data.n does not
change any of this.

The labels come from the label files beside the images (`*-labels-idx1-ubyte[.gz]`, IDX
magic 0x801) or the npz's y_train / y_test, read and checked by gan_runner/data/images.py.

Cache: <dir>/classifier-<data key>-<arch key>.weights.h5 (+ .json with how it was made), dir =
eval.classifier.cache_dir, else $GAN_RUNNER_CACHE, else $XDG_CACHE_HOME/gan_runner, else
~/.cache/gan_runner. The data
key is a sha256 of the classifier's training images and labels, the arch key one of
eval.classifier (all but cache_dir) and ARCH_VERSION: other data or another architecture train
a new classifier, the same ones load the file.

Only `Classifier` / `load_or_train` import TensorFlow; finding and splitting the data is numpy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_runner import data, stopping, store
from gan_runner.data import images
from gan_runner.data.images import IMAGE_SETS
from gan_runner.errors import ConfigError, DataError
from gan_runner.metrics import image as image_metrics

log = logging.getLogger(__name__)

CACHE_ENV = store.CACHE_ENV  # the cache dir when eval.classifier.cache_dir is null (tests set it)
SPLIT_SEED = 0  # the one-set split is the same for every run and every seed
ARCH_VERSION = 1  # bump when build_model or the training recipe changes: old cache files are then unused
PREDICT_BATCH = 1000  # images per classifier call (bounds memory at any N)


@dataclass(frozen=True)
class LabelledSet:
    images: np.ndarray  # (n, 28, 28) uint8
    labels: np.ndarray  # (n,) uint8
    source: str  # where it was read, for messages and the cache's .json
    kind: str  # "train" or "test": which set of the data set it is


@dataclass(frozen=True)
class Split:
    """The classifier's training digits and the reference digits; disjoint by construction."""

    train: LabelledSet
    reference: LabelledSet
    rule: str  # which of the two rules of the module docstring made it, in words

    def data_key(self) -> str:
        digest = hashlib.sha256()
        for array in (self.train.images, self.train.labels):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]


# ---- the labelled digits ---------------------------------------------------------------------


def labelled_sets(data_cfg) -> list[LabelledSet]:
    """The labelled sets where the GAN's images are found (data.find_images' search): a folder
    gives its training and its test set (whichever are there); a file given as data.path only
    itself. The set of the images the GAN uses must have its labels; the other set is optional."""
    spec = IMAGE_SETS[data_cfg.name]
    found, places = data.find_images(data_cfg.name, data_cfg.path)
    if found is None:
        looked = ", ".join(str(p) for p in places)
        raise DataError(
            f"data: no {spec.title} images found for the classifier (looked in {looked}); "
            f"pass data.path=<a folder with {spec.expected()} and their label files>"
        )
    if found.suffix == ".npz":
        return _npz_sets(found, spec)
    only_this = bool(data_cfg.path) and Path(data_cfg.path).expanduser().is_file()
    siblings = [] if only_this else [found.parent / name for name in _sibling_names(found.name)]
    sets = [_idx_set(found, spec, required=True)]
    for image_file in siblings:
        if image_file.is_file():
            extra = _idx_set(image_file, spec, required=False)
            if extra is not None:
                sets.append(extra)
    return sets


def _sibling_names(name: str) -> list[str]:
    """The other set's image file names: train-* <-> t10k-*, gzipped or not."""
    for mine, other in (("train-", "t10k-"), ("t10k-", "train-")):
        if name.startswith(mine):
            base = other + name[len(mine) :].removesuffix(".gz")
            return [base + ".gz", base]
    return []


label_files = data.label_files  # the one naming rule, shared with the conditional models' data


def _idx_set(image_file: Path, spec: images.ImageSet, required: bool) -> LabelledSet | None:
    label_file = next((p for p in label_files(image_file) if p.is_file()), None)
    if label_file is None:
        if required:
            looked = " or ".join(p.name for p in label_files(image_file))
            raise DataError(
                f"{image_file}: no labels beside it (looked for {looked} in {image_file.parent}); "
                "eval/fd, eval/mnist_score and eval/coverage need them to train their digit classifier"
            )
        return None
    pixels, labels = images.read_images(image_file, spec), images.read_labels(label_file, spec)
    kind = "test" if image_file.name.startswith("t10k") else "train"
    return LabelledSet(pixels, _check_labels(labels, len(pixels), label_file), str(image_file), kind)


def _npz_sets(path: Path, spec: images.ImageSet) -> list[LabelledSet]:
    images.read_images(path, spec)  # checks the archive and its checksum
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    sets = []
    for part in ("train", "test"):
        if f"x_{part}" in arrays and f"y_{part}" in arrays:
            pixels = images.check_shape(arrays[f"x_{part}"], f"{path}:x_{part}")
            labels = np.asarray(arrays[f"y_{part}"]).reshape(-1)
            sets.append(
                LabelledSet(pixels, _check_labels(labels, len(pixels), f"{path}:y_{part}"), f"{path}:x_{part}", part)
            )
    if not sets:
        raise DataError(f"{path}: no labelled set in it (needs x_train + y_train or x_test + y_test)")
    return sets


def _check_labels(labels: np.ndarray, n_images: int, where) -> np.ndarray:
    if len(labels) != n_images:
        raise DataError(f"{where}: {len(labels)} labels for {n_images} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= image_metrics.N_CLASSES):
        raise DataError(f"{where}: labels must be 0-{image_metrics.N_CLASSES - 1}, got {labels.min()}-{labels.max()}")
    return labels.astype(np.uint8)


def split(sets: list[LabelledSet]) -> Split:
    """The module docstring's rule: a training and a test set -> (train, test); one set ->
    a fixed shuffle cut in half (first half: reference, second half: classifier)."""
    by_kind = {s.kind: s for s in sets}
    if set(by_kind) == {"train", "test"}:
        train, test = by_kind["train"], by_kind["test"]
        return Split(
            train,
            test,
            f"classifier: the {len(train.labels)} training digits; reference: the {len(test.labels)} test digits",
        )
    only = sets[0]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(only.labels))
    half = len(order) // 2
    ref, rest = order[:half], order[half:]  # shuffled order kept: the file's halves differ (writers)
    return Split(
        LabelledSet(only.images[rest], only.labels[rest], only.source, only.kind),
        LabelledSet(only.images[ref], only.labels[ref], only.source, only.kind),
        f"one set of {len(order)} digits, shuffled (seed {SPLIT_SEED}) and halved: "
        f"reference {len(ref)}, classifier {len(rest)}",
    )


# ---- the cache ---------------------------------------------------------------------------------


def cache_dir(classifier_cfg) -> Path:
    """eval.classifier.cache_dir, else $GAN_RUNNER_CACHE, else $XDG_CACHE_HOME/gan_runner, else
    ~/.cache/gan_runner."""
    if classifier_cfg.cache_dir:
        return Path(classifier_cfg.cache_dir).expanduser()
    return store.cache_root()


def arch_config(classifier_cfg) -> dict:
    """Everything that shapes the weights (not where they are kept)."""
    keys = ("filters", "dense", "dropout", "train_steps", "batch_size", "learning_rate", "seed")
    return {"version": ARCH_VERSION, **{k: _plain(classifier_cfg[k]) for k in keys}}


def _plain(value):
    return (
        [_plain(v) for v in value] if not isinstance(value, (str, int, float)) and hasattr(value, "__iter__") else value
    )


def arch_key(classifier_cfg) -> str:
    return hashlib.sha256(json.dumps(arch_config(classifier_cfg), sort_keys=True).encode()).hexdigest()[:16]


def cache_path(classifier_cfg, the_split: Split) -> Path:
    return cache_dir(classifier_cfg) / f"classifier-{the_split.data_key()}-{arch_key(classifier_cfg)}.weights.h5"


# ---- the network -------------------------------------------------------------------------------


def build_model(classifier_cfg):
    """x (B, 28, 28, 1) in [0, 1] -> per filter f: Conv2D(f, 3, same, relu) -> MaxPool(2) ->
    Flatten -> Dropout -> Dense(dense, relu) -> Dropout -> Dense(10): logits (B, 10).
    Seeded initializers and dropout: no global RNG is touched (the GAN's stays as it was)."""
    import keras

    seed = int(classifier_cfg.seed)
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + i)  # noqa: E731
    layers: list = [keras.Input((28, 28, 1))]
    for i, filters in enumerate(classifier_cfg.filters):
        layers += [
            keras.layers.Conv2D(int(filters), 3, padding="same", activation="relu", kernel_initializer=init(i)),
            keras.layers.MaxPooling2D(),
        ]
    rate = float(classifier_cfg.dropout)
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(rate, seed=seed),
        keras.layers.Dense(int(classifier_cfg.dense), activation="relu", kernel_initializer=init(100)),
        keras.layers.Dropout(rate, seed=seed + 1),
        keras.layers.Dense(image_metrics.N_CLASSES, kernel_initializer=init(101)),
    ]
    return keras.Sequential(layers, name="digit_classifier")


def _fit(model, classifier_cfg, train: LabelledSet) -> None:
    """train_steps Adam updates (cosine-decayed rate) on shuffled batches of the training digits:
    the same cost for 5,000 or 60,000 digits."""
    import keras
    import tensorflow as tf

    steps, batch = int(classifier_cfg.train_steps), int(classifier_cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(float(classifier_cfg.learning_rate), steps, alpha=0.05)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels))
        .shuffle(len(train.labels), seed=int(classifier_cfg.seed))
        .repeat()
        .batch(batch)
        .map(lambda x, y: (tf.cast(x, tf.float32)[..., None] / 255.0, y))
        .prefetch(2)
    )

    class StopCheck(keras.callbacks.Callback):
        """Ctrl-C / SIGTERM stop the training after the current batch, also when TensorFlow
        swallowed the KeyboardInterrupt (seen: a run went on to FINISHED)."""

        def on_train_batch_end(self, batch, logs=None):
            stopping.phase("classifier")

    model.fit(
        batches,
        steps_per_epoch=steps,
        epochs=1,
        shuffle=False,
        verbose=0,  # shuffled above
        callbacks=[StopCheck()],
    )


class Classifier:
    """A trained digit classifier: `logits(images)` (n, 28, 28, 1) in [0, 1] -> (n, 10) float64.
    `trained` says whether this object trained it (False: loaded from the cache)."""

    def __init__(self, model, path: Path, trained: bool, train_s: float):
        import tensorflow as tf

        self.model, self.path, self.trained, self.train_s = model, path, trained, train_s
        # one trace for every batch size
        self._call = tf.function(
            lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)]
        )

    def logits(self, images_01: np.ndarray) -> np.ndarray:
        x = np.asarray(images_01, np.float32).reshape(-1, 28, 28, 1)
        out = [self._call(x[i : i + PREDICT_BATCH]).numpy() for i in range(0, len(x), PREDICT_BATCH)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, image_metrics.N_CLASSES))


def load_or_train(classifier_cfg, the_split: Split) -> Classifier:
    """The cached classifier for this training set and architecture, or a new one trained and
    cached (written under a temporary name, then renamed: parallel runs never read half a file)."""
    path = cache_path(classifier_cfg, the_split)
    model = build_model(classifier_cfg)
    damaged = False  # the cached file was unreadable: this run's classifier replaces it
    if path.is_file():
        try:
            model.load_weights(path)
            log.info("classifier: cached weights %s", path)
            return Classifier(model, path, trained=False, train_s=0.0)
        except (OSError, ValueError) as err:  # damaged or foreign file: train again, replace it
            log.warning("classifier: %s unreadable (%s); training a new one", path, str(err).splitlines()[0][:200])
            model = build_model(classifier_cfg)
            damaged = True
    started = time.perf_counter()
    _fit(model, classifier_cfg, the_split.train)
    train_s = time.perf_counter() - started
    log.info("classifier: trained on %d digits in %.1f s -> %s", len(the_split.train.labels), train_s, path)
    cached = _save(
        model,
        path,
        {
            "arch": arch_config(classifier_cfg),
            "data_key": the_split.data_key(),
            "n_train": len(the_split.train.labels),
            "train_source": the_split.train.source,
            "split": the_split.rule,
            "train_s": round(train_s, 2),
        },
        replace=damaged,
    )
    if not cached:  # another run cached its classifier while this one trained: every run judges with that one
        model.load_weights(path)
        log.info("classifier: another run cached %s first; judging with that one", path)
        return Classifier(model, path, trained=False, train_s=0.0)
    return Classifier(model, path, trained=True, train_s=train_s)


def _save(model, path: Path, meta: dict, replace: bool = False) -> bool:
    """Cache `model`'s weights at `path`: False when another process put its own there first.
    The first writer wins (a hard link never replaces a file): runs started together on a cold
    cache, e.g. a sweep's parallel jobs, then all judge with one classifier, and their eval/fd
    compare. `replace`: a damaged file is replaced. Also True when the cache is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            model.save_weights(staged)
            if replace:
                os.replace(staged, path)
            else:
                try:
                    os.link(staged, path)
                except FileExistsError:
                    return False
        path.with_suffix("").with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as err:  # a read-only cache costs a retraining next time, never the run
        log.warning("classifier: cannot cache the weights in %s (%s)", path.parent, err.strerror or err)
    return True


# ---- the judge: classifier + reference set -----------------------------------------------------


class Judge:
    """Scores N images against the first N reference digits; everything in float64.

    scores(images) -> fd, mnist_score, coverage, histogram; floor(n) -> eval/fd_floor."""

    def __init__(
        self, classifier: Classifier, the_split: Split, coverage_threshold: float = image_metrics.COVERAGE_THRESHOLD
    ):
        self.classifier, self.split, self.coverage_threshold = classifier, the_split, coverage_threshold
        reference = the_split.reference.images.astype(np.float32)[..., None] / 255.0
        self.reference_logits = classifier.logits(reference)  # (R, 10)
        self.accuracy = float(np.mean(self.reference_logits.argmax(axis=1) == the_split.reference.labels))
        self._stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def n_reference(self) -> int:
        return len(self.reference_logits)

    def check_n(self, n: int, key: str = "eval.n_fake", floor: bool = True) -> None:
        """eval/fd needs n reference digits, eval/fd_floor 2n: one clear line when there are fewer."""
        need = 2 * n if floor else n
        most = self.n_reference // (2 if floor else 1)
        if n < 2:
            raise ConfigError(f"{key}: needs at least 2 samples for a covariance, got {n}")
        if need > self.n_reference:
            what = f"eval/fd against the first {n}" + (f", eval/fd_floor against the next {n}" if floor else "")
            raise ConfigError(
                f"{key}: {n} samples need {need} reference digits ({what}); this data has "
                f"{self.n_reference} ({self.split.rule}); use {key}<={most}"
            )

    def reference_stats(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n not in self._stats:
            self._stats[n] = image_metrics.gaussian_stats(self.reference_logits[:n])
        return self._stats[n]

    def floor(self, n: int) -> float:
        """FD between the first n and the next n reference digits: what real images score at n."""
        self.check_n(n)
        return image_metrics.frechet_distance(
            *self.reference_stats(n), *image_metrics.gaussian_stats(self.reference_logits[n : 2 * n])
        )

    def floors(self, n: int, metrics=image_metrics.FLOOR_METRICS, k: int = image_metrics.PRDC_K) -> dict[str, float]:
        """<name>_floor for the chosen metrics that have one: the next n reference digits scored
        against the first n, as fakes are (what real images score at this n)."""
        self.check_n(n)
        chosen = [m for m in metrics if m in image_metrics.FLOOR_METRICS]
        got = image_metrics.feature_scores(self.reference_logits[n : 2 * n], self.reference_logits[:n], chosen, k)
        return {f"{m}_floor": got[m] for m in chosen}

    def scores(
        self, images_01: np.ndarray, metrics=image_metrics.IMAGE_METRICS, k: int = image_metrics.PRDC_K, labels=None
    ) -> dict:
        """The chosen metrics (image_metrics.feature_scores) of the images against the first n
        reference digits, and the class histogram; with the classes the images were made for
        (`labels`, a conditional model's), also image_metrics.class_scores against the labelled
        reference digits."""
        x = np.asarray(images_01)
        if not np.isfinite(x).all():
            raise ValueError(
                f"{int((~np.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())} of {len(x)} images hold NaN or inf"
            )
        n = len(x)
        self.check_n(n, "n", floor=False)
        logits = self.classifier.logits(x)
        out = image_metrics.feature_scores(logits, self.reference_logits[:n], metrics, k, self.coverage_threshold)
        if labels is not None:
            out.update(image_metrics.class_scores(logits, labels, self.reference_logits, self.split.reference.labels))
        return out


def chosen_metrics(eval_cfg) -> tuple[list[str], int]:
    """(eval.metrics, eval.prdc_k); null (a run's config saved before they existed): all, k=5."""
    metrics, k = eval_cfg.get("metrics"), eval_cfg.get("prdc_k")
    return (
        list(metrics) if metrics is not None else list(image_metrics.IMAGE_METRICS),
        int(k) if k is not None else image_metrics.PRDC_K,
    )


def judge_for(data_cfg, eval_cfg) -> Judge:
    """Find the labelled digits, split them, load or train the classifier, score the reference."""
    the_split = split(labelled_sets(data_cfg))
    classifier = load_or_train(eval_cfg.classifier, the_split)
    return Judge(classifier, the_split, float(eval_cfg.coverage_threshold))

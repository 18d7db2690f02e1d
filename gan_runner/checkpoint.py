"""Checkpoints: the whole training state of a run in one .npz file, written atomically.

Layout: <root>/<run id>/ckpt-<step:09d>.npz, plus run.json (run id, tracking URI) for people.
A file holds every variable of the GanStep (G, D, both optimizers, `step`, which fixes the
position in the data, and the tf.random.Generator state) under stable positional names, the
numpy / Python global RNG states, and `__meta__`: JSON with the step, the run id and the
resolved config that resume compares against.

A file is written under a hidden temporary name, fsynced, then os.replace'd into place: readers
(and a resume after kill -9) see the previous set of checkpoints or the new one, never half a
file. Only numpy here: `resume=` is found and checked before TensorFlow loads.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gan_runner import faults
from gan_runner.config import flatten
from gan_runner.errors import ConfigError
from gan_runner.store import check_writable as probe_folder

log = logging.getLogger(__name__)

FORMAT = 1
NAME = re.compile(r"^ckpt-(\d{9})\.npz$")
# Keys that may differ between a checkpoint and the run resuming it: they change what is logged
# or how long it runs, never what is trained. The execution settings (thread pools, oneDNN, XLA) change
# float round-off only: the continuation is then valid but not bit for bit.
HARMLESS = (
    "train_steps",
    "log_every",
    "eval_every",
    "sample_every",
    "plot_every",
    "objective",
    "objective_mode",
    "eval.",
    "tracking.",
    "checkpoint.",
    "resume",
    "on_divergence",
    "early_stop.",
    "sweep.",
    "weights.",
    "trainer.intra_op_threads",
    "trainer.inter_op_threads",
    "trainer.onednn",
    "trainer.jit_compile",
)


class Variable(Protocol):  # a tf.Variable or a keras Variable; duck-typed so TF loads later
    def numpy(self) -> np.ndarray: ...
    def assign(self, value: Any) -> Any: ...


@dataclass
class Checkpoint:
    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def step(self) -> int:
        return int(self.meta["step"])


# ---- where checkpoints live ----------------------------------------------------------------


def check_writable(folder: Path) -> None:
    """Fail before training (and before any MLflow run) if checkpoints cannot be written."""
    probe_folder(folder, f"checkpoint.dir: cannot write checkpoints to {folder}")


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in a folder, oldest step first (temporary files never match)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if NAME.match(p.name)), key=lambda p: p.name)


# ---- write -----------------------------------------------------------------------------------


def write_atomic(path: Path, write) -> None:
    """`write(file)` into a hidden temp file beside `path`, fsync, then rename over `path`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if NAME.match(path.name):
            faults.point("ckpt_tmp")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def host_random_state() -> tuple:
    """numpy's and Python's global random states, as a checkpoint keeps them."""
    return np.random.get_state(), random.getstate()


class Checkpointer:
    """Writes the checkpoints of one run into `folder` and keeps the newest `keep`."""

    def __init__(
        self,
        folder: Path,
        keep: int,
        run_id: str | None,
        tracking_uri: str | None,
        config: dict,
        overrides: list[str] | None = None,
    ):
        self.folder, self.keep = folder, keep
        self.meta = {
            "format": FORMAT,
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "config": config,
            "overrides": list(overrides or []),
        }

    def save(
        self,
        step: int,
        variables: dict[str, Variable],
        trainer: dict | None = None,
        trainer_arrays: dict[str, np.ndarray] | None = None,
        host_random: tuple | None = None,
    ) -> Path:
        """`variables`: the variables, or copies of their values (arrays) taken at `step`.
        `trainer` (JSON) and `trainer_arrays` (saved as host.trainer.<name>): the loop's own
        state besides the variables (last values, best evaluation), which a resume restores.
        `host_random`: host_random_state() taken at `step` (default: now)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "run.json").exists():
            info = json.dumps({k: self.meta[k] for k in ("run_id", "tracking_uri")}, indent=1).encode()
            write_atomic(self.folder / "run.json", lambda f: f.write(info))
        arrays = {
            name: np.asarray(var if isinstance(var, np.ndarray) else var.numpy()) for name, var in variables.items()
        }
        arrays.update({f"host.trainer.{name}": np.asarray(value) for name, value in (trainer_arrays or {}).items()})
        # numpy's: ('MT19937', keys, pos, has_gauss, cached_gaussian)
        np_state, py_state = host_random or host_random_state()
        arrays["host.numpy_keys"] = np_state[1]
        meta = {
            **self.meta,
            "step": int(step),
            "saved_at": time.time(),
            "numpy_random": [int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python_random": _jsonable(py_state),
            "trainer": trainer or {},
        }
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path = self.folder / f"ckpt-{step:09d}.npz"
        write_atomic(path, lambda f: np.savez(f, **arrays))
        self._prune()
        return path

    def _prune(self) -> None:
        for old in checkpoints(self.folder)[: -self.keep]:
            old.unlink(missing_ok=True)
        for stale in self.folder.glob(".ckpt-*.tmp-*"):  # left by a process killed mid-write
            if not stale.name.endswith(f".tmp-{os.getpid()}"):
                stale.unlink(missing_ok=True)


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


# ---- read ------------------------------------------------------------------------------------


def read(path: Path) -> Checkpoint:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays.pop("__meta__").tobytes())
    except Exception as err:  # truncated, not a zip, no __meta__: damaged, or not a checkpoint
        raise ConfigError(
            f"resume: {path} is not a readable checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''})"
        ) from None
    return Checkpoint(path, meta, arrays)


def newest(folder: Path) -> Checkpoint:
    """The newest checkpoint that reads back; an unreadable one is skipped with a warning."""
    for path in reversed(checkpoints(folder)):
        try:
            return read(path)
        except Exception as err:  # damaged on disk: fall back to the one before
            log.warning("checkpoint %s unreadable (%s); trying an older one", path, err)
    raise ConfigError(f"resume: no readable checkpoint in {folder}")


def store_of(folder: Path) -> str | None:
    """The tracking URI a checkpoint folder's run logs to (run.json; None for tracking=none)."""
    try:
        return json.loads((folder / "run.json").read_text()).get("tracking_uri")
    except (OSError, ValueError):
        return None


def locate(resume: str, root: Path, uri: str | None = None) -> Path:
    """resume=<run id | checkpoint folder | .npz file | last> -> a folder or a file. `last` is the
    newest checkpoint of a run in the store `uri` (None: tracking=none): a checkpoint.dir shared
    by several stores never hands over another store's run."""
    if resume == "last":
        folders = [f for f in root.iterdir() if checkpoints(f)] if root.is_dir() else []
        mine = [f for f in folders if store_of(f) == uri]
        if not mine:
            others = f" ({len(folders)} there belong to other stores: give a run id or folder)" if folders else ""
            raise ConfigError(
                f"resume=last: nothing to resume: no checkpoint of a run in "
                f"{uri or 'tracking=none'} under {root}{others}"
            )
        return max(mine, key=lambda f: checkpoints(f)[-1].stat().st_mtime)
    path = Path(resume).expanduser()
    if path.is_file() and NAME.match(path.name):
        return path.resolve()
    places = list(dict.fromkeys([path.resolve(), (root / resume).resolve()]))  # an absolute path: one place
    for folder in places:
        if checkpoints(folder):
            return folder
    raise ConfigError(
        f"resume={resume}: no checkpoint found (looked in {' and '.join(map(str, places))}); "
        "give a run id, a checkpoint folder or 'last'"
    )


def load_for_resume(cfg, root: Path, overrides: list[str], uri: str | None = None):
    """The checkpoint `cfg.resume` names and the config to continue with: the run's own stored
    config, changed only by the keys set on this command line (`overrides`). Refused if a change
    matters to training. Returns (checkpoint, config, changes as 'key: old -> new')."""
    where = locate(str(cfg.resume), root, uri)
    ckpt = read(where) if where.is_file() else newest(where)
    saved = ckpt.meta["config"]
    merged = resume_config(saved, cfg, overrides, ckpt.meta.get("overrides"))
    changes = differences(flatten(saved), flatten(_container(merged)), ("resume",))
    diffs = differences(flatten(saved), flatten(_container(merged)), harmless_keys(saved))
    if diffs:
        raise ConfigError(
            f"resume: the config differs from {ckpt.path} in ways that change training: "
            f"{'; '.join(diffs)} (only {', '.join(HARMLESS)} may differ)"
        )
    return ckpt, merged, changes


_ABSENT = object()


def resume_config(saved: dict, now, overrides: list[str], saved_overrides: list[str] | None):
    """`saved` with every key that `overrides` sets taken from `now` (the config this command
    line composes): a group choice (optimizer=adam) brings its whole subtree. A resume typed
    without the original overrides therefore continues the run as it was planned, not as
    today's defaults would plan it. Validated again."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from gan_runner.config import CONF_DIR, validate, with_defaults

    out = with_defaults(saved)  # keys added since the run started: today's defaults for its choices
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key in groups and key not in now:  # experiment=, hparams_search=: set many keys at once
            if override.input_line in (saved_overrides or []):
                continue  # the run's own command line said the same
            raise ConfigError(
                f"resume: {override.input_line} was not part of the run's command line; a resume "
                "continues the run's stored config: set the keys to change instead"
            )
        value = OmegaConf.select(now, key, default=_ABSENT)
        if override.is_delete() or value is _ABSENT:
            raise ConfigError(f"resume: {override.input_line}: cannot remove or add keys when resuming")
        OmegaConf.update(out, key, value, merge=False)
    return validate(out)


def _container(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg


def harmless_keys(saved_cfg: dict) -> tuple[str, ...]:
    # A cosine schedule without decay_steps decays over train_steps: then the length matters.
    schedule = saved_cfg.get("schedule") or {}
    if schedule.get("name") == "cosine" and not schedule.get("decay_steps"):
        return tuple(k for k in HARMLESS if k != "train_steps")
    return HARMLESS


def differences(saved: dict[str, str], now: dict[str, str], harmless: tuple[str, ...]) -> list[str]:
    """'key: saved -> now' for every flattened key that differs and is not harmless."""
    out = []
    for key in sorted(set(saved) | set(now)):
        if key.startswith(harmless) or saved.get(key) == now.get(key):
            continue
        out.append(f"{key}: {saved.get(key, '(absent)')} -> {now.get(key, '(absent)')}")
    return out


def restore(ckpt: Checkpoint, variables: dict[str, Variable]) -> None:
    """Assign every saved array to its variable, and the host RNG states; refuse a mismatch."""
    saved = {k for k in ckpt.arrays if not k.startswith("host.")}
    if saved != set(variables):
        raise ConfigError(
            f"resume: {ckpt.path} holds other variables than this model "
            f"(missing {sorted(set(variables) - saved)[:5]}, extra {sorted(saved - set(variables))[:5]})"
        )
    for name, var in variables.items():
        value = ckpt.arrays[name]
        if tuple(value.shape) != tuple(var.numpy().shape):
            raise ConfigError(f"resume: {ckpt.path}: {name} has shape {value.shape}, the model {var.numpy().shape}")
        var.assign(value)
    pos, has_gauss, cached = ckpt.meta["numpy_random"]
    np.random.set_state(("MT19937", ckpt.arrays["host.numpy_keys"], pos, has_gauss, cached))
    version, state, gauss = ckpt.meta["python_random"]
    random.setstate((version, tuple(state), gauss))

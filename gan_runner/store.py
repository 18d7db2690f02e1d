"""Where a run's records go, worked out in one place: the tracking URI, the SQLite file behind
it, the artifact root beside that file, the checkpoint root, and whether a folder can be
written. train.run resolves a `Store` once and passes it down. Imports neither MLflow nor
TensorFlow (the commands check their store before those load)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from gan_runner.errors import ConfigError

SQLITE = "sqlite:///"
CACHE_ENV = "GAN_RUNNER_CACHE"  # the cache folder (tests set it)
RUN_ID = re.compile(r"[0-9a-f]{32}")  # an MLflow run id (fullmatch)


def resolve_uri(uri: str | None) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else an absolute sqlite:///<cwd>/mlflow.db."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"{SQLITE}{Path.cwd() / 'mlflow.db'}"
    if "://" not in uri and not uri.startswith("file:"):  # a bare path means a SQLite file; make it absolute
        return f"{SQLITE}{Path(uri).resolve()}"
    path = uri[len(SQLITE) :]
    if uri.startswith(SQLITE) and ":memory:" not in uri and not os.path.isabs(path):
        # sqlite:///mlflow.db is relative to the working dir: absolute, so that its artifacts and
        # checkpoints folders can be placed beside it (a relative path has no file:// URI)
        return f"{SQLITE}{os.path.abspath(path)}"
    return uri


def sqlite_file(uri: str) -> Path | None:
    """The file of a sqlite:/// store; None for other stores and for an in-memory SQLite."""
    if uri.startswith(SQLITE) and ":memory:" not in uri:
        return Path(uri[len(SQLITE) :])
    return None


def sqlite_missing(uri: str) -> bool:
    """A sqlite:/// store with no file yet (an in-memory one too): nothing there to read."""
    file = sqlite_file(uri)
    return uri.startswith(SQLITE) and not (file and file.is_file())


def artifact_root(uri: str) -> Path | None:
    """mlartifacts/ beside a SQLite store's file (where its experiments keep artifacts and where
    `make ui` serves uploads to); None for other stores."""
    file = sqlite_file(uri)
    return file.parent / "mlartifacts" if file else None


def cache_root() -> Path:
    """What gan_runner caches (the digit classifier, the empty MLflow store): $GAN_RUNNER_CACHE,
    else $XDG_CACHE_HOME/gan_runner, else ~/.cache/gan_runner."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "gan_runner"


def checkpoint_root(checkpoint_dir: str | None, uri: str | None) -> Path:
    """checkpoint.dir, else checkpoints/ beside a SQLite store (like its mlartifacts/), else
    <cwd>/checkpoints. `uri`: the resolved tracking URI, None for tracking=none."""
    if checkpoint_dir:
        return Path(checkpoint_dir).expanduser().resolve()
    file = sqlite_file(uri) if uri else None
    if file:
        return file.resolve().parent / "checkpoints"
    return Path.cwd() / "checkpoints"


def check_writable(folder: Path, error: str, keep_folders: bool = False) -> None:
    """ConfigError(f"{error} (<why>)") unless a file can be written in `folder`. Probes by
    writing for real (permission bits do not stop root). Folders made for the probe are removed
    again unless `keep_folders` (so a command that fails later leaves nothing behind)."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # innermost first
    probe = folder / f".probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        keep_folders = False
        raise ConfigError(f"{error} ({err.strerror or err})") from None
    finally:
        for path in [] if keep_folders else made:
            try:
                path.rmdir()
            except OSError:  # not made by us after all, or no longer empty
                break


@dataclass(frozen=True)
class Store:
    """A run's places, resolved once from its config."""

    uri: str | None  # the absolute tracking URI; None for tracking=none
    checkpoints: Path  # <root>/<run id>/ckpt-*.npz

    @property
    def sqlite(self) -> Path | None:
        return sqlite_file(self.uri) if self.uri else None

    @property
    def artifacts(self) -> Path | None:
        return artifact_root(self.uri) if self.uri else None


def resolve(cfg) -> Store:
    """The store of a validated run config (its tracking and checkpoint sections)."""
    uri = resolve_uri(cfg.tracking.uri) if cfg.tracking.name == "mlflow" else None
    return Store(uri, checkpoint_root(cfg.checkpoint.dir, uri))

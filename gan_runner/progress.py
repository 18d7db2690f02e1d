"""Progress display: a rich bar with live losses on a terminal, plain log lines otherwise (CI).

While the bar is shown, log lines (Hydra's handler writes to stdout) and prints go through the
bar's console, which prints them above the bar: written straight to the terminal they would
land on the bar's line and leave stale copies of it."""

from __future__ import annotations

import logging
import sys
import time

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

SHOWN = ("train/d_loss", "train/g_loss", "train/d_acc", "eval/kl", "eval/kl_target", "eval/fd")
PLAIN_EVERY_S = 5.0  # at most one plain line per this many seconds (plus the last one)


def summary(history: dict[str, float]) -> str:
    return "  ".join(f"{k.split('/')[1]}={history[k]:.4g}" for k in SHOWN if k in history)


class Progress:
    def __init__(self, total: int, start: int = 0, stream=None):
        self.total, self.stream = total, stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._bar = None
        self._handlers: list[tuple[logging.StreamHandler, object]] = []  # (handler, its own stream)
        if self.tty:
            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"),
                transient=False,
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task("train", total=total, completed=start, stats="")

    def __enter__(self) -> Progress:
        if self._bar:
            terminal = {id(f) for f in (self.stream, sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
            for handler in logging.getLogger().handlers:  # before start(): it swaps sys.stdout
                if isinstance(handler, logging.StreamHandler) and id(handler.stream) in terminal:
                    self._handlers.append((handler, handler.setStream(FileProxy(self._bar.console, handler.stream))))
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()
            for handler, stream in self._handlers:
                handler.setStream(stream)
            self._handlers = []

    def update(self, step: int, history: dict[str, float]) -> None:
        if self._bar:
            self._bar.update(self._task, completed=step, stats=summary(history))
            return
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY_S or step == self.total:
            self._last = now
            print(f"step {step}/{self.total}  {summary(history)}", file=self.stream, flush=True)

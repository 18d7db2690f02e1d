"""Progress display: a rich bar with live losses on a terminal, plain log lines otherwise (CI)."""

from __future__ import annotations

import sys
import time

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
        if self.tty:
            self._bar = RichProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False)
            self._task = self._bar.add_task("train", total=total, completed=start, stats="")

    def __enter__(self) -> "Progress":
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()

    def update(self, step: int, history: dict[str, float]) -> None:
        if self._bar:
            self._bar.update(self._task, completed=step, stats=summary(history))
            return
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY_S or step == self.total:
            self._last = now
            print(f"step {step}/{self.total}  {summary(history)}", file=self.stream, flush=True)

"""Why a run stops early: a signal (Ctrl-C, SIGTERM), divergence, or an early-stop rule.

`SignalStop` turns the first SIGINT/SIGTERM into a flag that the training loop reads between
chunks of compiled steps (a signal cannot interrupt a running tf.function anyway), so the loop
can write a checkpoint and end the MLflow run KILLED. It then restores the OS default for both
signals: a second one ends the process at once, even inside a long TensorFlow op (the run is
left RUNNING and the last checkpoint stays valid: like kill -9, `resume=` takes it over).
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint. A KeyboardInterrupt, so that
    tracking.open_run ends the run KILLED; `exit_code` is 128 + the signal (130, 143)."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")


class Diverged(RuntimeError):
    """A loss or the generated samples became NaN or inf at `step`."""

    def __init__(self, step: int, what: str):
        self.step = step
        super().__init__(f"diverged at step {step}: {what} is not finite")


class SignalStop:
    """Context manager: while inside, SIGINT/SIGTERM set `signum` instead of stopping the
    process. Only in the main thread (Python delivers signals there; joblib workers skip it)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "SignalStop":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        for s in SIGNALS:  # the next signal takes the OS default: exit at once
            signal.signal(s, signal.SIG_DFL)
        name = signal.Signals(signum).name
        # os.write: print() is not safe inside a signal handler that may interrupt print().
        os.write(2, f"\ngan_runner: {name}: finishing the current steps, then writing a checkpoint "
                    f"(send it again to quit at once)\n".encode())

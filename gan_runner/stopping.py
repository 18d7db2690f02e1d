"""Why a run stops early: a signal (Ctrl-C, SIGTERM), divergence, or an early-stop rule.

Signals are handled in two modes, one `SignalStop` each:
  * before a run exists (imports, data, the digit classifier: `SignalStop(deferred=False)`,
    entered by the CLI first thing) the first SIGINT/SIGTERM raises `Interrupted` at once:
    there is nothing to save. The signal is also remembered, because a KeyboardInterrupt raised
    while TensorFlow's C++ code calls back into Python can be swallowed there; `phase()` and the
    classifier's Keras callback raise it again at the next named point.
  * while a run exists (`SignalStop()`, in train.run) the first one only sets a flag that the
    training loop reads between chunks of compiled steps (a signal cannot interrupt a running
    tf.function anyway), after evaluation and before each final upload, so the loop can write a
    checkpoint and end the MLflow run KILLED.
Either way the exit status is 128 + the signal (130, 143). After the first signal the OS default
is restored for both: a second one ends the process at once, even inside a long TensorFlow op
(the run is left RUNNING and the last checkpoint stays valid: like kill -9, `resume=` takes it
over).

PAUSE_ENV names a phase at which the process stops and waits for a signal (tests use it to
send a signal at a known point, with no sleeps): startup, data, tensorflow, classifier, run,
tracing, eval, upload.
"""

from __future__ import annotations

import os
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PAUSE_ENV = "GAN_RUNNER_PAUSE_AT"  # a phase name: wait there for a signal (tests only)
PAUSE_MAX_S = 120.0
_guards: list[SignalStop] = []  # the entered guards of this process, innermost last


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint. A KeyboardInterrupt, so that
    tracking.open_run ends the run KILLED; `exit_code` is 128 + the signal (130, 143)."""

    def __init__(self, signum: int, step: int | None):
        self.signum, self.step = signum, step
        self.exit_code = 128 + signum
        where = f"at step {step}" if step is not None else "before training started; no run was created"
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")


class Diverged(RuntimeError):
    """A loss or the generated samples became NaN or inf at `step`."""

    def __init__(self, step: int, what: str):
        self.step = step
        super().__init__(f"diverged at step {step}: {what} is not finite")


class SignalStop:
    """Context manager: while inside, SIGINT/SIGTERM set `signum` (and, unless `deferred`, raise
    Interrupted at once) instead of the OS default. Only in the main thread (Python delivers
    signals there; joblib workers skip it)."""

    def __init__(self, deferred: bool = True) -> None:
        self.deferred = deferred
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            outer = _guards[-1] if _guards else None
            self.signum = outer.signum if outer else None  # one that came before this guard
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
            _guards.append(self)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self._previous:
            _guards.remove(self)
            if _guards and self.signum is not None and _guards[-1].signum is None:
                _guards[-1].signum = self.signum  # the CLI's guard: the exit status
        self._previous = {}

    def check(self, step: int | None = None) -> None:
        """Interrupted if a signal came (for a point where stopping is safe)."""
        if self.signum is not None:
            raise Interrupted(self.signum, step)

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        for s in SIGNALS:  # the next signal takes the OS default: exit at once
            signal.signal(s, signal.SIG_DFL)
        if not self.deferred:  # nothing to save yet: stop now
            raise Interrupted(signum, None)
        name = signal.Signals(signum).name
        # os.write: print() is not safe inside a signal handler that may interrupt print().
        os.write(
            2,
            f"\ngan_runner: {name}: finishing the current steps, then writing a checkpoint "
            f"(send it again to quit at once)\n".encode(),
        )


def phase(name: str) -> None:
    """A named point of a run's life. Before a run exists, a signal that came (and whose
    KeyboardInterrupt may have been swallowed) stops the process here; PAUSE_ENV=name waits
    here for a signal (tests)."""
    guard = _guards[-1] if _guards else None
    if os.environ.get(PAUSE_ENV) == name:
        os.write(2, f"gan_runner: paused at phase {name} ({PAUSE_ENV})\n".encode())
        deadline = time.monotonic() + PAUSE_MAX_S
        while (guard is None or guard.signum is None) and time.monotonic() < deadline:
            time.sleep(0.02)  # an immediate guard raises from inside this sleep
    if guard is not None and not guard.deferred:
        guard.check()

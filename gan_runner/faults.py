"""Fault injection for the crash tests (tests/test_crash.py, `make crash`).

GAN_RUNNER_FAULT="<phase>:<n>" makes the process SIGKILL itself the n-th time it reaches the
named point (n defaults to 1): a kill -9 at a known instant, without timing guesses. Unset (as
always outside those tests), `point` is an empty function.
"""

from __future__ import annotations

import os
import signal

# Where the points sit, in the order a run reaches them.
PHASES = (
    "store",  # a new SQLite store's tables made under a temporary name, not yet in place
    "startup",  # the MLflow run exists, params and config logged; nothing trained yet
    "trace",  # before the first compiled chunk (it traces the step)
    "chunk",  # before every later chunk of compiled steps
    "eval",  # an evaluation computed, not yet logged
    "picture",  # after a sample grid or figure went to the store
    "flush",  # before a batch of buffered metrics is written
    "ckpt_tmp",  # a checkpoint's temp file written and fsynced, not yet renamed
    "weights",  # after one final weights file was uploaded
    "model",  # before the generator is logged as an MLflow model
    "finish",
)  # everything logged, the run not yet marked FINISHED
ENV = "GAN_RUNNER_FAULT"


def _parse(spec: str) -> tuple[str, int]:
    phase, _, count = spec.partition(":")
    if phase not in PHASES or not (count or "1").isdigit():
        raise ValueError(f"{ENV}={spec!r}: want <phase>[:<n>] with phase one of {', '.join(PHASES)}")
    return phase, int(count or 1)


if os.environ.get(ENV):
    _PHASE, _LEFT = _parse(os.environ[ENV])

    def point(phase: str) -> None:
        global _LEFT
        if phase == _PHASE:
            _LEFT -= 1
            if _LEFT <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
else:

    def point(phase: str) -> None:
        """No fault configured: nothing to do."""

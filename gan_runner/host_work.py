"""A run's host-side writing, off the training thread.

The loop hands over what it has to store (metrics, sample grids, figures to draw, checkpoint
files) and goes on training; one worker thread does it, in the order it was handed over. The
training thread spends most of its time inside TensorFlow, which releases the GIL, so on two
cores the drawing, PNG encoding, SQLite commits and fsyncs run beside the next steps instead
of stopping them (the 1-D run: see the README's Benchmarks).

The order is the crash-consistency rule: a checkpoint is written after everything handed over
before it, so a kill -9 at any instant still leaves the store holding everything up to the
newest checkpoint. After a failed job nothing more runs (a checkpoint must not follow metrics
that were never written); the error is raised in the training thread at its next hand-over,
or by drain(), and again at every later one.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class HostWork:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gan_runner-host")
        self._futures: collections.deque[Future] = collections.deque()
        self._error: BaseException | None = None
        self.seconds: collections.Counter[str] = collections.Counter()  # worker time per part

    def submit(self, fn: Callable, *args, part: str = "log", **kwargs) -> Future:
        """Run fn(*args, **kwargs) after everything handed over before it."""
        self.raise_failed()
        future = self._pool.submit(self._run, part, fn, args, kwargs)
        self._futures.append(future)
        return future

    def wait(self, future: Future) -> None:
        """Wait until `future` and everything handed over before it is done; raise an error."""
        future.exception()  # waits; the error, if any, is raised below
        self.raise_failed()

    def _run(self, part: str, fn: Callable, args: tuple, kwargs: dict) -> None:
        if self._error is not None:  # an earlier job failed: its error is on its way to the training thread
            return
        started = time.perf_counter()
        try:
            fn(*args, **kwargs)
        except BaseException as err:
            self._error = err
            raise
        finally:
            self.seconds[part] += time.perf_counter() - started

    def raise_failed(self) -> None:
        """Raise the error of a finished job, if one failed (cheap: looks at done jobs only)."""
        while self._futures and self._futures[0].done():
            self._futures.popleft().result()
        if self._error is not None:
            raise self._error

    def drain(self) -> None:
        """Wait until everything handed over is written; raise the first error."""
        while self._futures:
            self._futures.popleft().result()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Drain, then stop the thread (also after an error: the error is raised)."""
        try:
            self.drain()
        finally:
            self._futures.clear()
            self._pool.shutdown(wait=True)

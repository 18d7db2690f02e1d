"""The command's start-up without Python's cyclic garbage collector (issue 15).

Importing TensorFlow, Keras and MLflow and building the models allocates millions of objects
that live as long as the process. While they pile up, every full collection walks all of them
again: about 1 s of a default gaussian1d run's 9-10 s (measured on the 2-core AMD EPYC,
2026-12-02). So the command pauses the collector from its first line until the run's tracker is open
(TensorFlow, Keras, MLflow imported; a DCGAN's digit classifier ready), then freezes what is
alive (gc.freeze: never scanned again) and collects as usual: the models, the training loop's
garbage and a sweep's later jobs are collected as before. A joblib worker does the same around
its warm-up imports and first job (sweep.warm_worker).

Only `program()` pauses it: code that imports gan_runner keeps its collector as it was."""

from __future__ import annotations

import gc

_paused = False


def pause_collector() -> None:
    """From the command's start; a no-op where the collector is off already."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """Once the first run's imports are done: what is alive now stays, so it is frozen out of
    every later collection; then the collector runs as usual. Only after pause_collector()."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()

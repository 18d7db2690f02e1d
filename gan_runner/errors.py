"""The errors a user can cause, and the exit codes they map to. Each error's message is one
line meant for the user; the commands print it and exit with EXIT_BAD_INPUT, before TensorFlow
is imported where they can. Imports nothing from gan_runner: every layer may raise these."""

from __future__ import annotations

EXIT_JOBS_FAILED = 1  # a multirun ran to its end, but some of its jobs failed
EXIT_BAD_INPUT = 2  # a wrong value, file, run id or data: one line on stderr
EXIT_DIVERGED = 3  # a loss or the samples became NaN/inf


class ConfigError(ValueError):
    """A config value is wrong; the message is one line meant for the user."""


class DataError(ValueError):
    """The data cannot be found or read; one line for the user."""


class BadInput(ValueError):
    """A command-line argument or source (a file, a run id) cannot be used; one line for the user."""

"""The progress bar on a terminal and log lines printed while it is shown: read back through a
small terminal emulator (cursor moves and line erases as a terminal applies them), every log
line must be on a line of its own, once, and the bar on the screen once (no stale copies)."""

from __future__ import annotations

import io
import logging
import re

from gan_runner.progress import Progress

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(output: str) -> list[str]:
    """The lines a terminal shows after `output`: \\r, \\n, cursor up/down (A/B), column (G),
    erase in line (K); colours and other controls change no text."""
    lines, row, col, i = [""], 0, 0, 0
    while i < len(output):
        match = CSI.match(output, i)
        if match:
            code, arg = match.group(2), match.group(1)
            n = int(arg) if arg.isdigit() else (0 if code == "K" else 1)
            if code == "A":
                row = max(0, row - n)
            elif code == "B":
                row += n
            elif code == "G":
                col = n - 1
            elif code == "K":
                lines[row] = "" if n == 2 else lines[row][:col]
            i = match.end()
            continue
        char = output[i]
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
        else:
            while row >= len(lines):
                lines.append("")
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1 :]
            col += 1
        while row >= len(lines):
            lines.append("")
        i += 1
    return [ln.rstrip() for ln in lines if ln.strip()]


def test_log_lines_print_above_the_bar_once_and_leave_no_stale_bar():
    terminal = Terminal()
    handler = logging.StreamHandler(terminal)  # like Hydra's console handler (ext://sys.stdout)
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    root, log = logging.getLogger(), logging.getLogger("gan_runner.train")
    level = root.level
    root.setLevel(logging.WARNING)
    log.info("not shown")  # as a run earlier in this process logs: the logger caches "INFO is off"
    # setLevel, not `root.level = ...`: only setLevel clears the loggers' caches (with the plain
    # assignment this test failed whenever an earlier test in the process had logged at INFO)
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        with Progress(300, stream=terminal) as progress:
            for step in (100, 200, 300):
                progress.update(step, {"train/d_loss": 0.5, "train/g_loss": 0.7})
                progress._bar.refresh()  # the bar is on the screen when the line comes
                log.info("checkpoint %d", step)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert handler.stream is terminal  # given back
    shown = screen(terminal.getvalue())
    assert [ln for ln in shown if "checkpoint" in ln] == [
        f"[gan_runner.train] checkpoint {s}" for s in (100, 200, 300)
    ], shown
    bars = [ln for ln in shown if ln.startswith("train")]
    assert len(bars) == 1 and "300/300" in bars[0] and shown[-1] == bars[0], shown

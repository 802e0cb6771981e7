"""Progress of a batch on a stream: a live bar on a terminal, plain lines
otherwise.

On a terminal the bar is redrawn in place (``\\r``) at most
:data:`TTY_EVERY_S` apart; elsewhere (a pipe, a log file) a full line is
written at most :data:`PLAIN_EVERY_S` apart. Both always end with the final
state. The rate counts the jobs finished since this display started (a
resumed batch's earlier results are not part of it).
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from sio.workers._batch.store import Counts

TTY_EVERY_S = 0.1
PLAIN_EVERY_S = 1.0
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.start = time.monotonic()
        self.first: int | None = None  # finished when the display started
        self.shown = 0.0
        self.width = 0  # of the last bar, to blank it out
        self.ended: Counts | None = None  # the counts of the final line shown

    def text(self, c: Counts, now: float) -> str:
        if self.first is None:
            self.first = c.finished
        elapsed = now - self.start
        rate = (c.finished - self.first) / elapsed if elapsed > 0 else 0.0
        left = c.total - c.finished
        eta = _duration(left / rate) if rate > 0 and left else ("-" if left else "0:00")
        line = (f"{c.finished}/{c.total} done, {c.failed} failed, {c.running} running, "
                f"{rate:.1f}/s, {eta} left")
        if self.tty:
            filled = BAR_WIDTH * c.finished // c.total if c.total else BAR_WIDTH
            line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {line}"
        return line

    def update(self, c: Counts, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = c.finished
        if not final and now - self.shown < (TTY_EVERY_S if self.tty else PLAIN_EVERY_S):
            return
        if final and c == self.ended:
            return  # said already
        if final:
            self.ended = c
        self.shown = now
        line = self.text(c, now)
        if self.tty:
            try:  # a line longer than the terminal would wrap, and \r not undo it
                columns = os.get_terminal_size(self.stream.fileno()).columns
            except (OSError, ValueError):
                columns = 0  # unknown, as a new pseudo-terminal's
            if columns > 1:
                line = line[:columns - 1]
            pad = " " * max(0, self.width - len(line))
            self.width = len(line)
            self.stream.write(f"\r{line}{pad}" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

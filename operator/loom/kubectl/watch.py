"""--watch: draw again whenever what is shown changed, until interrupted. The objects are read again
every interval (a handful of GETs), so a frame is always whole. On a terminal each frame replaces the
last, and ages tick; elsewhere a frame follows only a change of the objects, as `kubectl get -w`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

CLEAR = "\x1b[H\x1b[2J"

# (what the frame shows, without the clock's part; the frame's text)
Frame = tuple[object, str]


def watch(draw: Callable[[], Frame], interval: float, out: TextIO) -> None:
    terminal = out.isatty()
    shown: object = None
    first = True
    while True:
        content, text = draw()
        key = text if terminal else content
        if first or key != shown:
            out.write((CLEAR if terminal else "" if first else "\n") + text)
            out.flush()
            shown, first = key, False
        time.sleep(interval)

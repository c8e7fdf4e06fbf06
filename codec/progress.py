"""A one-line progress display on stderr (step, loss, PSNR, time left); silent when disabled."""
from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one stderr line at most `rate` times a second."""

    def __init__(self, *, enabled: bool, stream=None, rate: float = 8.0):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 1.0 / rate if self.is_tty else 5.0  # a log file gets a line every few seconds
        self._last = 0.0
        self._width = 0

    def update(self, phase: str, step: int, total: int, *, loss: float, psnr: float, left: float | None, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        left_txt = f"~{left:5.0f}s left" if left is not None else ""
        line = f"[{phase:>5}] step {step:>6}/{total:<6} loss {loss:.3e}  PSNR {psnr:6.2f} dB  {left_txt}"
        if not self.is_tty:
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (ends the current progress line)."""
        if not self.enabled:
            return
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

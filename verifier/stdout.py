"""Standard output for a command whose reader may go away (`verify ... | head`): the command
must still finish and write its report files, so a closed pipe silences stdout instead of
ending the command."""

from __future__ import annotations

import contextlib
import io
import os


class ClosedPipeGuard(io.TextIOBase):
    """stdout that falls silent when its reader goes away (`verify ... | head`), instead of
    ending the command before it has written its --json and --junit files."""

    def __init__(self, stream):
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        """From now on stdout is /dev/null, also for the interpreter's flush at exit."""
        self.gone = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):  # type: ignore[override]
        return self.stream.encoding

    @property
    def errors(self):  # type: ignore[override]
        return self.stream.errors

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

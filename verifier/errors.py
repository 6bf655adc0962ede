"""The verifier's exceptions: one base, one subclass per exit code the command line maps."""

from __future__ import annotations


class VerifierError(Exception):
    """Base of every error the verifier raises on purpose."""


class InputError(VerifierError):
    """Input the verifier cannot read: a malformed maze, PRISM file, property, policy or reward.

    `source` names the file (or the flag), `place` where in it (a line, a map cell, a TOML
    key), and the message says what is wrong and, where possible, how to fix it.
    """

    def __init__(self, source: str, message: str, place: str | None = None):
        self.source = source
        self.place = place
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.place}" if self.place else self.source
        return f"{where}: {self.message}"


class ResourceLimit(VerifierError):
    """A model exceeds a limit the user set (such as --max-states)."""


class BackendError(VerifierError):
    """A failure of the machinery (Storm, z3, another backend), not of the input: exit 3."""

    def __init__(self, backend: str, message: str):
        self.backend = backend
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.backend}: {self.message}"

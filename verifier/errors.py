"""The verifier's exceptions: one base, and each class says what it means to a caller.

Every class carries `exit_code` (the `verify` command's exit code: 2 bad input or usage, 3
a limit or a failure of the machinery) and `outcome` (what a suite's row says when a check
ends in it: `error`, `limit`, `backend`, `crash`); `verify` and the suite runner read both
from here (README, "Commands"). A violated property is never an exception: it is a verdict.

    VerifierError           a failure of the verifier itself                    3  crash
      InputError            input it cannot read (file, place, problem)         2  error
      DependencyMissing     an optional package is not installed (pip command)  2  error
      ResourceLimit         a limit the user set (--max-states, --timeout)      3  limit
      BackendError          Storm, z3, HiGHS or the enumeration failed          3  backend
        SolverError         the optimal values could not be certified           3  backend
        LinearProgramError  a linear program with a solution was not solved     3  backend
        EnumerationError    an enumerated MDP differs from the real environment 3  backend
"""

from __future__ import annotations

from typing import ClassVar


class VerifierError(Exception):
    """Base of every error the verifier raises on purpose.

    Raised as such, it is a failure of the verifier's own machinery (exit 3, `crash`).
    """

    exit_code: ClassVar[int] = 3
    outcome: ClassVar[str] = "crash"
    # The words `verify` puts before the message ("verify: resource limit: ...").
    heading: ClassVar[str] = "internal error"


class InputError(VerifierError):
    """Input the verifier cannot read: a malformed maze, PRISM file, property, policy or reward.

    `source` names the file (or the flag), `place` where in it (a line, a map cell, a TOML
    key), and the message says what is wrong and, where possible, how to fix it.
    """

    exit_code = 2
    outcome = "error"
    heading = ""

    def __init__(self, source: str, message: str, place: str | None = None):
        self.source = source
        self.place = place
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.place}" if self.place else self.source
        return f"{where}: {self.message}"


class DependencyMissing(VerifierError):
    """An optional package a request needs is not installed; the message names the pip
    command (Gymnasium's `DependencyNotInstalled`).

    Exit 2, like bad input: the request cannot be served by this installation, and the fix
    is on the caller's side (install the extra, or ask for something else). It is no verdict
    and no failure of the machinery, which exit 3 would claim.
    """

    exit_code = 2
    outcome = "error"
    heading = ""

    def __init__(self, needed_for: str, package: str, extra: str, source: str | None = None):
        self.needed_for = needed_for
        self.package = package
        self.install = f"pip install 'verifier[{extra}]'" if extra else f"pip install {package}"
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.needed_for} needs {self.package}: {self.install}"


class ResourceLimit(VerifierError):
    """A model exceeds a limit the user set (such as --max-states)."""

    outcome = "limit"
    heading = "resource limit"


class BackendError(VerifierError):
    """A failure of the machinery (Storm, z3, another backend), not of the input: exit 3."""

    outcome = "backend"
    heading = "backend failure"

    def __init__(self, backend: str, message: str):
        self.backend = backend
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.backend}: {self.message}"


class SolverError(BackendError):
    """The numerics could not certify optimal values (residual too large, no convergence):
    the message says which result could not be certified."""

    heading = "could not certify"

    def __init__(self, message: str):
        super().__init__("optimal values", message)


class LinearProgramError(BackendError):
    """HiGHS failed on a linear program that has a solution (nearly-optimal policies)."""

    heading = "could not certify"

    def __init__(self, message: str):
        super().__init__("nearly-optimal policies", message)


class EnumerationError(BackendError):
    """An enumerated MDP disagrees with the real environment (MiniGrid's self-check)."""

    def __init__(self, message: str):
        super().__init__("enumeration", message)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for the
    one line an error message may take, its control characters escaped: the text may be an
    input's (a model's or a policy's own code), and must not move the cursor or colour the
    terminal."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)

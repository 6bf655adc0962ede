"""Errors carry their exit code and suite outcome; `verify` prints one line and exits with
the class's code, whatever the command."""

from __future__ import annotations

import inspect

import pytest

from verifier import errors
from verifier.cli import main
from verifier.runner import OUTCOMES

# The contract (README, "Commands"): class -> (exit code, suite outcome, what verify says).
EXPECTED = {
    errors.VerifierError: (3, "crash", "verify: internal error: "),
    errors.InputError: (2, "error", "verify: m.toml: line 2: broken"),
    errors.DependencyMissing: (2, "error", "verify: drawing needs matplotlib: pip install"),
    errors.ResourceLimit: (3, "limit", "verify: resource limit: "),
    errors.BackendError: (3, "backend", "verify: backend failure: Storm: "),
    errors.SolverError: (3, "backend", "verify: could not certify: optimal values: "),
    errors.LinearProgramError: (3, "backend", "verify: could not certify: nearly-optimal "),
    errors.EnumerationError: (3, "backend", "verify: backend failure: enumeration: "),
}


def _instance(cls):
    arguments = {
        errors.InputError: ("m.toml", "broken", "line 2"),
        errors.DependencyMissing: ("drawing", "matplotlib", "plot"),
        errors.BackendError: ("Storm", "it crashed"),
    }
    return cls(*arguments.get(cls, ("it failed",)))


def test_every_exception_of_errors_py_is_in_the_table():
    classes = {
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    }
    assert classes == set(EXPECTED)
    assert {outcome for _, outcome, _ in EXPECTED.values()} <= set(OUTCOMES)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_verify_exits_with_the_code_of_the_error_class(cls, monkeypatch, capsys, tmp_path):
    code, outcome, said = EXPECTED[cls]
    assert (cls.exit_code, cls.outcome) == (code, outcome)

    def fail(*args, **kwargs):
        raise _instance(cls)

    import verifier.commands

    monkeypatch.setattr(verifier.commands, "check", fail)
    maze = tmp_path / "m.toml"
    maze.write_text('map = "S.A"\n[cells.A]\nkind = "exit"\n')
    assert main(["check", "--model", str(maze)]) == code
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1, err

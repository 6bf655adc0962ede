"""Helpers shared by the tests: small mazes from text, values by Storm, Ctrl-C in a child."""

from __future__ import annotations

import json
import signal
import textwrap

import numpy as np

from verifier import storm


def maze_text(map_text: str, cells: str = "", **top) -> str:
    """Maze TOML from a map, [cells] declarations (dedented) and top-level keys."""
    header = "".join(f"{key} = {json.dumps(value)}\n" for key, value in top.items())
    return f'{header}map = """\n{textwrap.dedent(map_text).strip()}\n"""\n{textwrap.dedent(cells)}'


def values(mdp, prop_text: str) -> np.ndarray:
    """Values of a property at each initial state of a compiled MDP, by Storm."""
    prop = storm.parse_properties(prop_text)[0]
    return storm.check(storm.to_storm(mdp), prop).values


def interruptible() -> None:
    """`preexec_fn` of a child that a test interrupts with SIGINT: a process started in the
    background inherits SIGINT ignored (POSIX shells without job control), and Python then
    keeps it ignored; the child gets the default, so that Ctrl-C reaches it as at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

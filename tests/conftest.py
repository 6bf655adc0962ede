"""Fixtures shared by the tests."""

from __future__ import annotations

import pytest
from helpers import maze_text

from verifier.compile import compile_maze
from verifier.maze import parse_maze


@pytest.fixture
def compile_text():
    """Compile a maze given as map text, [cells] text and top-level keys."""

    def build(map_text: str, cells: str = "", **top):
        return compile_maze(parse_maze(maze_text(map_text, cells, **top)))

    return build

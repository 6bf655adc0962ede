"""Maze parsing: the format of DESIGN.md, and one clear line for every malformed file."""

from __future__ import annotations

import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.errors import InputError
from verifier.maze import PALETTE, load_maze, parse_maze

EXIT_A = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'


def test_well_formed_maze_reads_every_field():
    maze = parse_maze(
        maze_text(
            """
            #######
            #S..A.#
            #.K.D.#
            #######
            """,
            EXIT_A
            + '[cells.K]\nkind = "key"\ncolor = "red"\nslip = 0.3\nlabels = ["shiny"]\n'
            + '[cells.D]\nkind = "door"\ncolor = "red"\n',
            name="m1",
            slip=0.1,
        )
    )
    assert maze.name == "m1"
    assert maze.shape == (4, 7)
    assert maze.slip == 0.1
    assert maze.starts() == [(1, 1)]
    assert maze.cells["K"].labels == ("shiny",)
    assert maze.cell_slip("K") == 0.3
    assert maze.cell_slip(".") == 0.1
    assert maze.cells["A"].terminal
    assert not maze.cells["K"].terminal
    assert maze.warnings == ()


def test_door_without_key_is_a_warning_not_an_error():
    maze = parse_maze(maze_text("#S.DA#", EXIT_A + '[cells.D]\nkind = "door"\ncolor = "green"\n'))
    assert len(maze.warnings) == 1
    assert "green door has no green key" in maze.warnings[0]
    assert "(row 0, col 3)" in maze.warnings[0]


BAD_MAZES = [
    ("toml-syntax", 'map = """\n#S#\n', "end of file: TOML syntax error: Unterminated string"),
    (
        "toml-syntax-line",
        'name = "x" = 2\nmap = "S"\n',
        "line 1, column 12: TOML syntax error: Expected newline",
    ),
    ("ragged", maze_text("#S.A#\n#..#", EXIT_A), "map row 1: has 4 columns, row 0 has 5"),
    ("undeclared", maze_text("#S.X#"), "map (row 0, col 3): undeclared character 'X'"),
    ("no-start", maze_text("#..A#", EXIT_A), "has no start cell 'S'"),
    (
        "unknown-kind",
        maze_text("#SA#", '[cells.A]\nkind = "teleporter"\n'),
        "unknown kind 'teleporter'",
    ),
    (
        "unknown-color",
        maze_text("#SA#", '[cells.A]\nkind = "exit"\ncolor = "pink"\n'),
        "unknown color 'pink'; known: red",
    ),
    ("slip-high", maze_text("#SA#", EXIT_A, slip=1.5), "slip: must be in [0, 1], got 1.5"),
    (
        "slip-negative-cell",
        maze_text("#SA#", EXIT_A + "slip = -0.1\n"),
        "cells.A.slip: must be in [0, 1]",
    ),
    ("empty-map", 'map = """\n\n"""\n', "map: is empty"),
    ("missing-map", 'name = "x"\n', "map: missing"),
    (
        "key-without-color",
        maze_text("#SKA#", EXIT_A + '[cells.K]\nkind = "key"\n'),
        "a key needs a color",
    ),
    ("unknown-key", maze_text("#SA#", EXIT_A, colour="red"), "colour: unknown key"),
    ("reserved-label", maze_text("#SA#", EXIT_A + 'labels = ["init"]\n'), "'init' is reserved"),
    (
        "exit-not-terminal",
        maze_text("#SA#", EXIT_A + "terminal = false\n"),
        "an exit is always terminal",
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD_MAZES, ids=[c[0] for c in BAD_MAZES])
def test_malformed_maze_exits_2_with_one_line_naming_file_and_place(
    tmp_path, capsys, case, text, expected
):
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    assert main(["check", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert str(path) in err
    assert expected in err
    assert "Traceback" not in err


def test_every_problem_in_a_file_is_reported_together():
    text = maze_text("#SXA#", '[cells.A]\nkind = "exit"\ncolor = "pink"\n', slip=2)
    with pytest.raises(InputError) as info:
        parse_maze(text, source="m.toml")
    message = str(info.value)
    assert "slip" in message and "pink" in message and "'X'" in message


def test_unreadable_maze_file_is_an_input_error(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="cannot read maze"):
        load_maze(path)


def test_palette_is_the_six_design_colors():
    assert PALETTE == ("red", "green", "blue", "yellow", "purple", "grey")

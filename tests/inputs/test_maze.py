"""Maze parsing: the format of README, "Files", and one clear line for every malformed file."""

from __future__ import annotations

import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.errors import InputError
from verifier.inputs.load import load_environment
from verifier.inputs.maze import PALETTE, load_maze, parse_maze

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
    *(
        (
            f"built-in-label-{name}",
            maze_text("#SA#", EXIT_A + f'labels = ["{name}"]\n'),
            f"cells.A.labels: '{name}' is a label the verifier gives cells itself",
        )
        for name in (
            "has_key_red",
            "has_key_pink",
            "floor_cell",
            "exit",
            "red",
            "door_blue",
            "terminal",
            "start",
        )
    ),  # fmt: skip
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


def test_an_unknown_kind_is_reported_once_not_also_as_undeclared():
    """The cell was declared; its kind is wrong. The map character is not undeclared."""
    with pytest.raises(InputError) as info:
        parse_maze(maze_text("#SA#", '[cells.A]\nkind = "teleporter"\n'), source="m.toml")
    assert "unknown kind 'teleporter'" in str(info.value)
    assert "undeclared" not in str(info.value)


def test_a_property_over_variables_on_a_maze_says_labels_only(tmp_path):
    """Storm's text "does not have access to model variables" leaked out; on a maze only
    labels exist, so the message says so and lists some."""
    path = tmp_path / "m.toml"
    path.write_text(maze_text("#SA#", EXIT_A))
    with pytest.raises(InputError) as info:
        load_environment(path, spec="Pmax=? [ F row=1 ]")
    message = str(info.value)
    assert "access to model variables" not in message
    assert "on a maze, properties can use labels only" in message and '"exit"' in message


def test_a_multi_line_intended_holds_one_property_per_line(tmp_path):
    """Storm accepts newlines inside a property; a new line outside brackets starts the
    next property, as in a .props file."""
    path = tmp_path / "m.toml"
    intended = 'Pmax=? [ !"lava"\n  U "exit" ]\nPmin=? [ F "exit" ]\n'
    path.write_text(maze_text("#SA#", EXIT_A, intended=intended))
    env = load_environment(path)
    assert [str(p) for p in env.properties] == [
        'Pmax=? [(!"lava") U "exit"]',
        'Pmin=? [F "exit"]',
    ]


@pytest.mark.parametrize("spec", ['P=? [ F "exit" ]', 'R{"r"}=? [ F "exit" ]'])
def test_a_query_without_min_or_max_is_refused_on_a_maze(tmp_path, spec):
    """An MDP query needs a direction: the reward and policy paths read an unset one."""
    path = tmp_path / "m.toml"
    path.write_text(maze_text("#SA#", EXIT_A))
    with pytest.raises(InputError, match="needs min or max"):
        load_environment(path, spec=spec)


def test_a_query_without_direction_exits_2_in_the_reward_path(tmp_path, capsys):
    """It used to end in "51 is not a valid OptimizationDirection", exit 3."""
    path = tmp_path / "m.toml"
    path.write_text(maze_text("#SA#", EXIT_A))
    code = main(["reward", "--model", str(path), "--spec", 'P=? [ F "exit" ]', "--reward", "x"])
    assert code == 2
    assert "needs min or max" in capsys.readouterr().err

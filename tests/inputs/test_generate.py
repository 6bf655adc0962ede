"""Random mazes, open rooms, Maze -> TOML, and the example mazes under models/."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import values
from scipy.sparse.csgraph import connected_components

from verifier.inputs.family import is_family
from verifier.inputs.maze import KINDS, PALETTE, WALL, Cell, Maze, load_maze, parse_maze
from verifier.inputs.maze_compile import compile_maze
from verifier.inputs.maze_generate import maze_to_toml, open_room, random_maze

MODELS = Path(__file__).resolve().parents[2] / "models"
EXAMPLES = sorted(
    p
    for p in MODELS.rglob("*.toml")
    if "rewards" not in p.parts and "minigrid" not in p.parts and not is_family(p)
)  # a family file holds generator options, not a maze


def value(mdp, prop: str) -> float:
    return float(values(mdp, prop).min())


def assert_same_maze(a: Maze, b: Maze) -> None:
    assert np.array_equal(a.layout, b.layout)
    assert dict(a.cells) == dict(b.cells)
    assert (a.name, a.slip, a.intended) == (b.name, b.slip, b.intended)


def open_pairs(maze: Maze) -> tuple[int, int, int]:
    """(open cells, orthogonally adjacent open pairs, connected components of open cells)."""
    open_ = maze.layout != WALL
    height, width = open_.shape
    pos = np.arange(height * width).reshape(height, width)
    a = np.concatenate(
        [pos[:, :-1][open_[:, :-1] & open_[:, 1:]], pos[:-1][open_[:-1] & open_[1:]]]
    )
    b = np.concatenate([pos[:, 1:][open_[:, :-1] & open_[:, 1:]], pos[1:][open_[:-1] & open_[1:]]])
    graph = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(pos.size, pos.size))
    _, component = connected_components(graph, directed=False)
    return int(open_.sum()), len(a), len(np.unique(component[open_.ravel()]))


def positions(maze: Maze, char: str) -> list[tuple[int, int]]:
    return [(int(r), int(c)) for r, c in zip(*np.nonzero(maze.layout == char), strict=True)]


# --- random_maze -----------------------------------------------------------------------


EXTRAS = {"exits": 2, "objects": 3, "keys": 2, "lava": 3, "slip": 0.1}


def test_same_seed_gives_the_same_maze():
    assert_same_maze(random_maze(21, 31, 7, **EXTRAS), random_maze(21, 31, 7, **EXTRAS))


def test_different_seeds_give_different_mazes():
    layouts = {random_maze(21, 31, seed).layout.tobytes() for seed in range(8)}
    assert len(layouts) == 8


def test_shape_border_start_and_defaults():
    maze = random_maze(9, 13, 3)
    assert maze.shape == (9, 13)
    border = np.concatenate(
        [maze.layout[0], maze.layout[-1], maze.layout[:, 0], maze.layout[:, -1]]
    )
    assert (border == WALL).all()
    assert len(maze.starts()) == 1
    assert maze.cells["E"] == Cell("exit", "blue", terminal=True)
    assert len(positions(maze, "E")) == 1
    assert (maze.name, maze.slip, maze.warnings) == ("random-9x13-seed3", 0.0, ())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("size", [(5, 5), (9, 21), (31, 17)])
def test_random_maze_is_perfect(size, seed):
    """Without extras every open cell is floor, start or the exit (a dead end): a tree."""
    maze = random_maze(*size, seed)
    n_open, n_pairs, n_components = open_pairs(maze)
    assert n_pairs == n_open - 1
    assert n_components == 1
    h, w = (size[0] - 1) // 2, (size[1] - 1) // 2
    assert n_open == 2 * h * w - 1  # h*w nodes joined by h*w - 1 corridor cells


def test_extras_are_placed_as_asked():
    maze = random_maze(21, 21, 5, exits=2, objects=4, keys=3, lava=4)
    assert len(positions(maze, "E")) == 2
    assert len(positions(maze, "L")) == 4
    kinds = [cell.kind for char, cell in maze.cells.items() for _ in positions(maze, char)]
    assert kinds.count("key") == kinds.count("door") == 3
    assert kinds.count("object") == 4
    key_colors = [c.color for c in maze.cells.values() if c.kind == "key"]
    door_colors = [c.color for c in maze.cells.values() if c.kind == "door"]
    assert sorted(key_colors) == sorted(door_colors) and len(set(key_colors)) == 3
    assert "blue" not in key_colors  # the exit's color is used last
    assert all(not c.terminal for c in maze.cells.values() if c.kind == "object")
    open_ = np.pad(maze.layout != WALL, 1)
    for r, c in positions(maze, "L") + positions(maze, "E"):  # dead ends
        assert open_[r, c + 1] + open_[r + 2, c + 1] + open_[r + 1, c] + open_[r + 1, c + 2] == 1


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_exit_reachable_with_probability_one(seed, slip):
    """Lava on dead ends and doors with reachable keys never cost the optimum anything."""
    maze = random_maze(15, 19, seed, keys=3, lava=3, objects=2, slip=slip)
    mdp = compile_maze(maze)
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0
    assert value(mdp, 'Pmax=? [ !"lava" U "exit" ]') == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_every_door_guards_the_exit(seed):
    """With one exit, each door is on the only path to it: no exit without its key."""
    maze = random_maze(15, 19, seed, keys=2)
    mdp = compile_maze(maze)
    for color in {c.color for c in maze.cells.values() if c.kind == "door"}:
        assert value(mdp, f'Pmax=? [ !"has_key_{color}" U "exit" ]') == 0.0
        assert mdp.label(f"key_{color}").any() and mdp.label(f"door_{color}").any()


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((4, 9, 0), {}),
        ((9, 10, 0), {}),
        ((3, 3, 0), {}),
        ((9, 9, 0), {"keys": 7}),
        ((9, 9, 0), {"lava": -1}),
        ((9, 9, 0), {"exit_color": "pink"}),
        ((9, 9, 0), {"slip": 1.5}),
        ((9, 9, 0), {"exits": 0, "keys": 1}),
        ((5, 5, 0), {"lava": 5}),  # a 5x5 maze has two dead ends
        ((5, 5, 0), {"keys": 3}),  # and at most two corridor cells that can take a door
    ],
)
def test_invalid_arguments_raise_value_error(args, kwargs):
    with pytest.raises(ValueError):
        random_maze(*args, **kwargs)


def test_uncolored_exit_and_name():
    maze = random_maze(7, 7, 1, exit_color=None, name="plain")
    assert maze.cells["E"] == Cell("exit", None, terminal=True)
    assert maze.name == "plain"


# --- maze_to_toml ----------------------------------------------------------------------


TRICKY = r"""
name = "it's \"odd\""
slip = 0.05
intended = 'Pmax=? [ F "goal" ]'
map = '''
#######
#S*"\é#
#.D...#
#######
'''
[cells."*"]
kind = "object"
color = "yellow"
terminal = true
labels = ["goal", "shiny"]
[cells."\""]
kind = "floor"
slip = 0.3
[cells."\\"]
kind = "exit"
color = "grey"
[cells."é"]
kind = "key"
color = "red"
[cells.D]
kind = "door"
color = "red"
"""


@pytest.mark.parametrize(
    "maze",
    [
        random_maze(21, 31, 7, **EXTRAS),
        random_maze(5, 5, 0),
        random_maze(11, 11, 2, exit_color=None, objects=6, keys=1, lava=1),
        open_room(4, 6, slip=0.25, name="room"),
        parse_maze(TRICKY),
        *(load_maze(path) for path in EXAMPLES),
    ],
    ids=lambda maze: maze.name,
)
def test_maze_to_toml_round_trips(maze):
    again = parse_maze(maze_to_toml(maze))
    assert_same_maze(again, maze)
    assert again.warnings == ()


def test_maze_to_toml_refuses_a_redefined_floor_character():
    maze = parse_maze('map = "S.E"\n[cells.E]\nkind = "exit"')
    odd = Maze(maze.name, maze.source, maze.layout, {**maze.cells, ".": Cell("floor", "red")})
    with pytest.raises(ValueError):
        maze_to_toml(odd)


# --- open_room -------------------------------------------------------------------------


def test_open_room():
    maze = open_room(6, 9, slip=0.1)
    assert maze.shape == (6, 9)
    assert maze.starts() == [(1, 1)]
    assert positions(maze, "E") == [(4, 7)]
    assert maze.cells["E"].color == "blue" and maze.slip == 0.1
    mdp = compile_maze(maze)
    assert mdp.n_states == 4 * 7
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0


@pytest.mark.parametrize("size", [(3, 3), (2, 9), (9, 0)])
def test_open_room_too_small(size):
    with pytest.raises(ValueError):
        open_room(*size)


# --- models/ -----------------------------------------------------------------------------


def required_labels(maze: Maze) -> set[str]:
    """The labels README ("Files") promises of a maze's model, and no others."""
    labels = {*KINDS, *PALETTE, "terminal", "start", *(f"has_key_{c}" for c in PALETTE)}
    for cell in maze.cells.values():
        labels.update(cell.labels)
        if cell.color:
            labels.add(f"{cell.kind}_{cell.color}")
    return labels


def test_the_examples_exist():
    names = {str(path.relative_to(MODELS)) for path in EXAMPLES}
    expected = {f"redblue/train-0{i}.toml" for i in (1, 2, 3)}
    expected |= {"redblue/deploy-01.toml", "redblue/deploy-02.toml"}
    expected |= {"lava.toml", "keys-doors.toml"}
    assert expected <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(MODELS)))
def test_example_compiles_with_the_required_labels(path):
    maze = load_maze(path)
    assert maze.warnings == ()
    assert 5 <= maze.shape[0] <= 9
    assert path.read_text().startswith("#")  # a header comment says what it is for
    if path.parent.name == "redblue":
        assert maze.name == f"redblue-{path.stem}"
    mdp = compile_maze(maze)
    assert set(mdp.labels) == required_labels(maze)
    assert len(mdp.initial_states) == 1 and mdp.label("start")[mdp.initial_states].all()
    assert mdp.label("exit").any()
    assert value(mdp, 'Pmax=? [ F "exit" ]') > 0


@pytest.mark.parametrize("stem", ["train-01", "train-02", "train-03"])
def test_training_mazes_have_a_red_exit_and_nothing_else_red(stem):
    maze = load_maze(MODELS / "redblue" / f"{stem}.toml")
    mdp = compile_maze(maze)
    assert mdp.label("exit").any()
    assert np.array_equal(mdp.label("red"), mdp.label("exit"))
    assert np.array_equal(mdp.label("exit_red"), mdp.label("exit"))
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0


@pytest.mark.parametrize("stem", ["deploy-01", "deploy-02"])
def test_deployment_mazes_lure_go_to_red_away_from_the_blue_exit(stem):
    maze = load_maze(MODELS / "redblue" / f"{stem}.toml")
    mdp = compile_maze(maze)
    assert np.array_equal(mdp.label("exit_blue"), mdp.label("exit"))
    red = mdp.label("object_red")
    assert red.any() and np.array_equal(mdp.label("red"), red)
    assert (red <= mdp.label("terminal")).all()  # touching the red object ends the episode
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0
    assert value(mdp, 'Pmax=? [ !"exit" U "red" ]') == 1.0  # red is reached without the exit


def test_lava_example_has_an_unavoidable_risk():
    """Worked out in the file: the long route and the last bridge give 0.9."""
    maze = load_maze(MODELS / "lava.toml")
    mdp = compile_maze(maze)
    assert maze.slip == 0.1 and mdp.label("lava").any()
    assert value(mdp, maze.intended) == pytest.approx(0.9, abs=1e-5)
    assert value(mdp, 'Pmax=? [ F<=8 "exit" ]') == pytest.approx(0.9**8)  # short route, no slip


def test_keys_doors_example_puts_the_exit_behind_both_doors():
    maze = load_maze(MODELS / "keys-doors.toml")
    mdp = compile_maze(maze)
    doors = {c.color for c in maze.cells.values() if c.kind == "door"}
    keys = {c.color for c in maze.cells.values() if c.kind == "key"}
    objects = {c.color for c in maze.cells.values() if c.kind == "object"}
    assert len(doors) == 2 and doors == keys
    assert objects and not objects & doors
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0
    assert value(mdp, 'Pmax=? [ F<=14 "exit" ]') == 0.0
    assert value(mdp, 'Pmax=? [ F<=15 "exit" ]') == 1.0
    for color in doors:
        assert value(mdp, f'Pmax=? [ !"has_key_{color}" U "exit" ]') == 0.0


# --- size ----------------------------------------------------------------------------------


def test_medium_maze_compiles():
    mdp = compile_maze(random_maze(101, 101, 0, keys=2, lava=10, objects=10))
    assert mdp.n_states > 2 * 50 * 50
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0


@pytest.mark.slow
def test_1001_square_maze_compiles():
    """500 x 500 tree nodes joined by 249,999 corridor cells: 499,999 states."""
    maze = random_maze(1001, 1001, 0)
    mdp = compile_maze(maze)
    assert mdp.n_states == 2 * 500 * 500 - 1
    assert value(mdp, 'Pmax=? [ F "exit" ]') == 1.0


# --- start corner and exit region (Langosco et al.'s maze: mouse bottom-left, cheese in the
# top-right n x n block of nodes) -----------------------------------------------------------

CORNER_NODES_9x9 = {"top-left": (1, 1), "top-right": (1, 7), "bottom-left": (7, 1)}
CORNER_NODES_9x9["bottom-right"] = (7, 7)


@pytest.mark.parametrize("corner, node", sorted(CORNER_NODES_9x9.items()))
def test_start_is_on_the_named_corner_node(corner, node):
    for seed in range(5):
        assert random_maze(9, 9, seed, start=corner).starts() == [node]


@pytest.mark.parametrize("size", [1, 2, 3])
def test_exit_always_lies_in_the_top_right_region_of_nodes(size):
    """Over 100 seeds of an 11x11 maze (5 x 5 nodes), the one exit is a node whose row is
    among the top `size` node rows (1, 3, ..., 2 size - 1) and whose column among the right
    `size` node columns (9, 7, ...); the start stays bottom-left."""
    rows = {2 * k + 1 for k in range(size)}
    cols = {9 - 2 * k for k in range(size)}
    for seed in range(100):
        maze = random_maze(11, 11, seed, start="bottom-left", exit_region=f"top-right {size}")
        (exit_cell,) = positions(maze, "E")
        assert exit_cell[0] in rows and exit_cell[1] in cols, (seed, exit_cell)
        assert maze.starts() == [(9, 1)]


def test_region_of_one_node_is_exactly_the_corner():
    for seed in range(20):
        maze = random_maze(15, 21, seed, start="bottom-left", exit_region="top-right 1")
        assert positions(maze, "E") == [(1, 19)]
        maze = random_maze(15, 21, seed, start="top-right", exit_region="bottom-left 1")
        assert positions(maze, "E") == [(13, 1)]


def test_exit_is_spread_over_every_node_of_the_region():
    """Roughly uniform: over 200 seeds each of the 4 nodes of "top-right 2" is the exit
    between 25 and 75 times (expected 50; a binomial(200, 1/4) leaves that range with
    probability below 1e-6). Over 600 seeds "anywhere" puts it on each of the 15 nodes of a
    9x9 maze other than the start."""
    counts: dict[tuple[int, int], int] = {}
    for seed in range(200):
        maze = random_maze(9, 9, seed, start="bottom-left", exit_region="top-right 2")
        (cell,) = positions(maze, "E")
        counts[cell] = counts.get(cell, 0) + 1
    assert set(counts) == {(1, 5), (1, 7), (3, 5), (3, 7)}
    assert all(25 <= n <= 75 for n in counts.values()), counts
    anywhere = {
        positions(random_maze(9, 9, seed, start="bottom-left", exit_region="anywhere"), "E")[0]
        for seed in range(600)
    }
    nodes = {(r, c) for r in (1, 3, 5, 7) for c in (1, 3, 5, 7)}
    assert anywhere == nodes - {(7, 1)}


def test_a_region_as_large_as_the_maze_is_anywhere():
    for seed in range(10):
        whole = random_maze(9, 13, seed, start="bottom-left", exit_region="top-right 6")
        anywhere = random_maze(9, 13, seed, start="bottom-left", exit_region="anywhere")
        assert np.array_equal(whole.layout, anywhere.layout)


def test_same_seed_same_maze_with_start_and_region():
    options = {"start": "bottom-left", "exit_region": "top-right 3", **EXTRAS, "exits": 1}
    assert_same_maze(random_maze(21, 21, 11, **options), random_maze(21, 21, 11, **options))
    assert random_maze(21, 21, 11, **options).source == (
        "random_maze(21, 21, seed=11, start='bottom-left', exit_region='top-right 3')"
    )


def test_region_keeps_the_floor_of_the_seed():
    """Only where the start and the exit go changes: the carved floor is the seed's."""
    for seed in range(5):
        plain = random_maze(11, 11, seed).layout != WALL
        placed = random_maze(11, 11, seed, start="bottom-left", exit_region="top-right 2")
        assert np.array_equal(plain, placed.layout != WALL)


@pytest.mark.parametrize("seed", range(8))
def test_nothing_is_placed_behind_an_exit(seed):
    """An exit inside the maze cuts off the subtree behind it. Every exit, key, door, lava
    cell and object is still the position of some reachable state, and the exit is reached
    with probability 1 at any slip."""
    maze = random_maze(
        15, 15, seed, keys=2, lava=2, objects=3, slip=0.1,
        start="bottom-left", exit_region="top-right 4",
    )  # fmt: skip
    mdp = compile_maze(maze)
    reached = {tuple(v) for v in mdp.valuations[:, :2].tolist()}
    placed = [p for char in maze.cells if char not in ".S" for p in positions(maze, char)]
    assert len(placed) == 1 + 2 * 2 + 2 + 3
    assert all(tuple(p) in reached for p in placed), sorted(set(placed) - reached)
    assert value(mdp, 'Pmax=? [ !"lava" U "exit" ]') == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"exit_region": "top-rigth 2"}, "unknown corner 'top-rigth'"),
        ({"exit_region": "top-right 0"}, "the size '0' must be a positive"),
        ({"exit_region": "top-right -1"}, "the size '-1' must be a positive"),
        ({"exit_region": "top-right two"}, "the size 'two' must be a positive"),
        ({"exit_region": "top-right"}, "'top-right': write a corner and a size"),
        ({"exit_region": "top right 3"}, "'top right 3': write a corner and a size"),
        ({"exit_region": 3}, "exit_region must be a string"),
        ({"start": "middle"}, "unknown start 'middle'"),
        ({"exits": 0, "exit_region": "top-right 1"}, "places one exit, got exits=0"),
        ({"exits": 2, "exit_region": "top-right 2"}, "places one exit, got exits=2"),
        ({"start": "top-right", "exit_region": "top-right 1"}, "only 0 places for 1 exit in"),
    ],
)
def test_bad_start_or_region_is_a_value_error_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        random_maze(9, 9, 0, **kwargs)

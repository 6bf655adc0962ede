"""`--png` pictures (verifier/output/picture.py), checked pixel by pixel at known cells.

Each picture is read back from the PNG; the grid is found by its outer walls (the pixel rows
and columns that are wall-colored almost all the way across), so the checks do not depend
on the layout of the title and legend around it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import maze_text

from verifier.errors import InputError
from verifier.inputs.maze import parse_maze
from verifier.inputs.maze_compile import compile_maze
from verifier.output import minigrid_picture, picture

pytest.importorskip("matplotlib")
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.image import imread  # noqa: E402

CORRIDOR = """
#######
#S...A#
#.##..#
#######
"""
EXIT = """
[cells.A]
kind = "exit"
color = "blue"
"""
DARK = 0.3  # a certain arrow's pixels (MAZE_MARKS[0] and its antialiased core) are darker


class Picture:
    """A PNG read back, with its grid of `shape` (rows, cols) found by the wall color."""

    def __init__(self, path, shape, wall):
        self.image = imread(path)[..., :3]
        match = close(self.image, wall, 0.01)
        rows = np.flatnonzero(match.sum(axis=1) > 0.5 * match.sum(axis=1).max())
        cols = np.flatnonzero(match.sum(axis=0) > 0.5 * match.sum(axis=0).max())
        self.top, self.left = rows[0], cols[0]
        self.cell = (rows[-1] + 1 - rows[0]) / shape[0]
        assert self.cell == (cols[-1] + 1 - cols[0]) / shape[1]

    def at(self, x: float, y: float) -> np.ndarray:
        """The color at grid point (x, y): x along columns, y along rows, in cells."""
        return self.image[int(self.top + y * self.cell), int(self.left + x * self.cell)]

    def mark(self, x: int, y: int, facing: str) -> np.ndarray:
        """The pixels around the mark of a MiniGrid cell's quarter: centred 0.3 cells from
        the cell's centre towards the side faced, 0.3 cells wide."""
        dx, dy = {"east": (1, 0), "south": (0, 1), "west": (-1, 0), "north": (0, -1)}[facing]
        top = int(self.top + (y + 0.35 + 0.3 * dy) * self.cell)
        left = int(self.left + (x + 0.35 + 0.3 * dx) * self.cell)
        size = int(0.3 * self.cell)
        return self.image[top : top + size, left : left + size]

    def cell_pixels(self, row: int, col: int) -> np.ndarray:
        """[cell, cell, 3]: the pixels of one cell."""
        top, left, size = (
            int(self.top + row * self.cell),
            int(self.left + col * self.cell),
            int(self.cell),
        )
        return self.image[top : top + size, left : left + size]


def close(colors: np.ndarray, expected, tolerance: float = 0.04) -> np.ndarray:
    return np.abs(np.asarray(colors)[..., :3] - np.asarray(expected)).max(axis=-1) < tolerance


def head(ink: np.ndarray, across_columns: bool) -> float:
    """Where an arrow's head is in a cell's pixels (bool [size, size]), as a fraction of
    the cell: the column (or row) where the arrow is widest, the head being wider than the
    shaft. Columns for left and right arrows, rows for up and down."""
    widths = ink.sum(axis=0 if across_columns else 1)
    return (np.argmax(widths) + 0.5) / len(widths)


def blend(under, over, alpha: float) -> np.ndarray:
    return (1 - alpha) * np.asarray(under) + alpha * np.asarray(over)


def state_at(mdp, **values) -> int:
    """The one state whose variables have these values (the others free)."""
    found = np.ones(mdp.n_states, dtype=bool)
    for name, value in values.items():
        found &= mdp.valuations[:, mdp.variables.index(name)] == value
    (state,) = np.flatnonzero(found)
    return int(state)


def policy(mdp, default: str, **overrides) -> np.ndarray:
    """choice_probs: `default` in every state that has it, a state's own action or
    distribution ({action: p}) in `overrides` (keyed by state index as `s<index>`)."""
    probs = np.zeros(mdp.n_choices)
    for state in range(mdp.n_states):
        choices = np.arange(mdp.row_groups[state], mdp.row_groups[state + 1])
        names = [mdp.actions[a] if a >= 0 else "" for a in mdp.choice_actions[choices]]
        wanted = overrides.get(f"s{state}", default)
        wanted = wanted if isinstance(wanted, dict) else {wanted: 1.0}
        if not set(wanted) <= set(names):
            wanted = {names[0]: 1.0}
        for name, p in wanted.items():
            probs[choices[names.index(name)]] = p
    return probs


@pytest.fixture(scope="module")
def corridor(tmp_path_factory):
    """The corridor maze drawn with `right` everywhere, except `up` at (2,1) and a random
    0.6 right / 0.4 up at (1,4); (2,5) failing; the path along row 1 from S to the exit."""
    maze = parse_maze(maze_text(CORRIDOR, EXIT))
    mdp = compile_maze(maze)
    at = {(r, c): state_at(mdp, row=r, col=c) for r, c in np.argwhere(maze.layout != "#")}
    probs = policy(
        mdp,
        "right",
        **{f"s{at[2, 1]}": "up", f"s{at[1, 4]}": {"right": 0.6, "up": 0.4}},
    )
    failing = np.zeros(mdp.n_states, dtype=bool)
    failing[at[2, 5]] = True
    path = tmp_path_factory.mktemp("picture") / "corridor.png"
    witness = [at[1, c] for c in range(1, 6)]
    picture.draw_maze(path, maze, mdp, probs, failing, witness, title="corridor")
    return Picture(path, maze.shape, to_rgb(picture.WALL_COLOR))


def test_maze_walls_exit_and_floor_have_their_colors(corridor):
    assert close(corridor.at(3.5, 3.5), to_rgb(picture.WALL_COLOR), 0.01)
    assert close(corridor.at(0.5, 1.5), to_rgb(picture.WALL_COLOR), 0.01)
    assert close(corridor.at(5.2, 1.2), to_rgb(picture.MAZE_PALETTE["blue"]))
    assert close(corridor.at(4.3, 2.25), to_rgb(picture.FLOOR_COLOR))


def test_maze_failing_cell_is_framed_and_filled(corridor):
    """(2,5) fails: a frame on its edge, a translucent fill inside; (2,4) beside it has
    neither."""
    assert close(corridor.at(5.04, 2.5), to_rgb(picture.FAILURE_COLOR))
    inside = blend(
        to_rgb(picture.FLOOR_COLOR), to_rgb(picture.FAILURE_COLOR), picture.MAZE_FAILURE_ALPHA
    )
    assert close(corridor.at(5.3, 2.25), inside)
    assert close(corridor.at(4.04, 2.5), to_rgb(picture.FLOOR_COLOR))
    assert close(corridor.at(4.3, 2.25), to_rgb(picture.FLOOR_COLOR))


def test_maze_witness_path_joins_the_cells_it_visits(corridor):
    for x in (2.0, 3.0, 4.0):  # between consecutive cells of row 1
        assert close(corridor.at(x, 1.5), to_rgb(picture.PATH_COLOR))
    assert close(corridor.at(4.5, 1.85), to_rgb(picture.FLOOR_COLOR))  # off the path
    assert not close(corridor.at(1.5, 2.0), to_rgb(picture.PATH_COLOR))  # were rows, cols swapped


def test_maze_arrows_point_the_way_of_the_action(corridor):
    """(1,2) and (2,4) go right: the head is right of the centre; (2,1) goes up: above."""
    for row, col in ((1, 2), (2, 4)):
        dark = (corridor.cell_pixels(row, col) < DARK).all(axis=-1)
        assert head(dark, across_columns=True) > 0.55
    dark = (corridor.cell_pixels(2, 1) < DARK).all(axis=-1)
    assert head(dark, across_columns=False) < 0.45


def test_maze_random_choice_has_a_grey_arrow(corridor):
    """(1,4) takes right with 0.6: a grey arrow, pointing right, and no dark one."""
    pixels = corridor.cell_pixels(1, 4)
    assert head(close(pixels, to_rgb(picture.MAZE_MARKS[1]), 0.08), across_columns=True) > 0.55
    assert not (pixels < DARK).all(axis=-1).any()


def test_maze_keys_choose_the_layer_drawn(tmp_path):
    """S.r.A with a red key r: right without the key, left with it. By default the cell
    after the key shows the state holding it (the only one there); keys=() shows no arrow
    there. Before the key, the default is the state without it (right); keys=("red",)
    shows the state walking back with it (left)."""
    maze = parse_maze(
        maze_text("#S.r.A#", EXIT + '[cells.r]\nkind = "key"\ncolor = "red"\n', name="k")
    )
    mdp = compile_maze(maze)
    has_key = mdp.valuations[:, mdp.variables.index("key_red")] == 1
    probs = policy(mdp, "right", **{f"s{s}": "left" for s in np.flatnonzero(has_key)})

    def arrow(keys, col):
        path = tmp_path / "k.png"
        picture.draw_maze(path, maze, mdp, probs, keys=keys)
        dark = Picture(path, maze.shape, to_rgb(picture.WALL_COLOR)).cell_pixels(0, col) < DARK
        dark = dark.all(axis=-1)
        return head(dark, across_columns=True) if dark.any() else None

    assert arrow(None, 4) < 0.45
    assert arrow((), 4) is None
    assert arrow(None, 2) > 0.55
    assert arrow(("red",), 2) < 0.45
    with pytest.raises(InputError, match="unknown key color 'pink'"):
        picture.draw_maze(tmp_path / "k.png", maze, mdp, probs, keys=("pink",))
    with pytest.raises(InputError, match="holds exactly the keys blue"):
        picture.draw_maze(tmp_path / "k.png", maze, mdp, probs, keys=("blue",))


def test_reward_witness_policy_draws_like_a_policy(tmp_path):
    """A deterministic witness (one global choice per state) as choice_probs: `right` in
    every moving state gives the same picture as the same policy given as probabilities."""
    maze = parse_maze(maze_text(CORRIDOR, EXIT))
    mdp = compile_maze(maze)
    moving = np.diff(mdp.row_groups) > 1
    choices = mdp.row_groups[:-1] + np.where(moving, 3, 0)
    probs = picture.deterministic_probs(mdp, choices)
    assert np.array_equal(probs, policy(mdp, "right"))
    picture.draw_maze(tmp_path / "a.png", maze, mdp, probs)
    picture.draw_maze(tmp_path / "b.png", maze, mdp, policy(mdp, "right"))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    with pytest.raises(ValueError, match="one choice of each state"):
        picture.deterministic_probs(mdp, choices + 1)


def test_png_is_written_atomically_and_bad_paths_name_the_path(tmp_path):
    maze = parse_maze(maze_text(CORRIDOR, EXIT))
    mdp = compile_maze(maze)
    target = tmp_path / "out.png"
    target.write_text("old")
    picture.draw_maze(target, maze, mdp, policy(mdp, "right"))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    missing = tmp_path / "no-such-directory" / "out.png"
    with pytest.raises(InputError, match="no-such-directory/out.png: cannot write"):
        picture.draw_maze(missing, maze, mdp, policy(mdp, "right"))
    with pytest.raises(InputError, match="cannot write"):
        picture.draw_maze(tmp_path, maze, mdp, policy(mdp, "right"))


def test_models_other_than_mazes_and_minigrid_are_refused():
    prism = SimpleNamespace(maze=None, gym=None, path="model.prism")
    toytext = SimpleNamespace(maze=None, gym=SimpleNamespace(kind="toytext"), path="gym:Taxi")
    for env in (prism, toytext):
        with pytest.raises(InputError, match="--png: pictures exist for mazes and MiniGrid"):
            picture.require_drawable(env)
        with pytest.raises(InputError, match=str(env.path)):
            picture.write_picture("x.png", env, np.zeros(1))


def test_importing_picture_does_not_import_matplotlib():
    code = "import sys, verifier.output.picture; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.fixture(scope="module")
def empty_level(tmp_path_factory):
    """MiniGrid-Empty-5x5 (start (1,1) facing east, goal (3,3)) with `forward` everywhere
    except `left` at (2,2) and (2,3) facing west and at (1,2) facing north, `right` at (3,2)
    facing west; failing at (2,1) facing east; the path (1,1) -> (2,1) -> (3,1) facing
    east. Facing: 0 east, 1 south, 2 west, 3 north."""
    pytest.importorskip("minigrid")
    from verifier.inputs.load import load_environments

    (env,) = load_environments("gym:MiniGrid-Empty-5x5-v0")
    mdp = env.mdp

    def at(x, y, facing):
        return state_at(mdp, x=x, y=y, dir=facing, outcome=0)

    turns = {at(2, 2, 2): "left", at(2, 3, 2): "left", at(1, 2, 3): "left", at(3, 2, 2): "right"}
    probs = policy(mdp, "forward", **{f"s{state}": turn for state, turn in turns.items()})
    failing = np.zeros(mdp.n_states, dtype=bool)
    failing[at(2, 1, 0)] = True
    path = tmp_path_factory.mktemp("picture") / "empty.png"
    witness = [at(1, 1, 0), at(2, 1, 0), at(3, 1, 0)]
    picture.write_picture(path, env, probs, failing, witness, title="Empty-5x5")
    return Picture(path, (5, 5), np.array([100, 100, 100]) / 255)


def test_minigrid_goal_is_green_and_floor_black(empty_level):
    assert close(empty_level.at(3.2, 3.8), (0, 1, 0), 0.01)
    assert close(empty_level.at(1.1, 3.8), (0, 0, 0), 0.01)


def test_minigrid_failing_state_marks_the_side_it_faces(empty_level):
    """(2,1) facing east fails: its east quarter is tinted, its west quarter is not."""
    tint = blend((0, 0, 0), to_rgb(picture.FAILURE_COLOR), minigrid_picture.MINIGRID_FAILURE_ALPHA)
    assert close(empty_level.at(2.9, 1.3), tint)
    assert close(empty_level.at(2.06, 1.75), (0, 0, 0), 0.01)
    assert close(empty_level.at(2.9, 2.3), (0, 0, 0), 0.01)  # the same quarter a row below


def test_minigrid_witness_path_joins_the_cells(empty_level):
    assert close(empty_level.at(2.0, 1.5), to_rgb(picture.PATH_COLOR))
    assert close(empty_level.at(3.0, 1.5), to_rgb(picture.PATH_COLOR))
    assert close(empty_level.at(2.0, 2.5), (100 / 255,) * 3, 0.01)  # MiniGrid's grid line


def test_minigrid_forward_points_the_way_the_agent_faces(empty_level):
    """Facing south at (1,2), forward is an arrow in the cell's south quarter pointing
    down (its head below the mark's centre); facing north at (2,2), up."""
    down = (empty_level.mark(1, 2, "south") > 0.9).all(axis=-1)
    assert head(down, across_columns=False) > 0.55
    up = (empty_level.mark(2, 2, "north") > 0.9).all(axis=-1)
    assert head(up, across_columns=False) < 0.45


def test_minigrid_each_facing_shows_its_own_action(empty_level):
    """At (1,2) facing north turns left and facing south goes forward: the south mark is
    the forward arrow, as at (1,3) facing south, not the turn."""
    assert np.array_equal(empty_level.mark(1, 2, "south"), empty_level.mark(1, 3, "south"))
    assert not np.array_equal(empty_level.mark(1, 2, "north"), empty_level.mark(1, 3, "north"))


def test_minigrid_turns_are_drawn_unlike_forward_and_unlike_each_other(empty_level):
    """Facing west, on the same black floor: (2,2) and (2,3) turn left, (3,2) turns right,
    (1,2) and (1,3) go forward. Equal actions are equal marks; the three differ."""
    left, right, forward = (empty_level.mark(x, y, "west") for x, y in ((2, 2), (3, 2), (1, 2)))
    assert np.array_equal(left, empty_level.mark(2, 3, "west"))
    assert np.array_equal(forward, empty_level.mark(1, 3, "west"))
    assert not np.array_equal(left, forward)
    assert not np.array_equal(right, forward)
    assert not np.array_equal(left, right)
    assert (left > 0.9).all(axis=-1).sum() > 20  # the turn is drawn, not left out


# ----------------------------------------------------------------------------- the command line

IDLER = """
#######
#.S..A#
#######
"""


def verify(capsys, *argv):
    from verifier.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def idler(tmp_path):
    """A corridor and a table policy that always heads left: from S it steps to (1,1) and
    pushes into the wall there forever."""
    maze = tmp_path / "idler.toml"
    maze.write_text(maze_text(IDLER, EXIT))
    table = tmp_path / "left.json"
    rows = [[0.0, 0.0, 1.0, 0.0]] * 5
    table.write_text(json.dumps({"actions": ["up", "down", "left", "right"], "probs": rows}))
    return maze, table


def test_policy_png_draws_the_path_into_the_loop_where_the_run_ends(idler, tmp_path, capsys):
    """The witness of a failing policy is the most likely path from the start to where its
    run ends without the target: here S (1,2) -> (1,1), where it loops; the JSON names the
    same path."""
    maze, table = idler
    png, report = tmp_path / "left.png", tmp_path / "left.json.out"
    code, out, _ = verify(capsys, table, "--model", maze, "--png", png, "--json", report)
    assert code == 1 and f"wrote {png}" in out
    (found,) = json.loads(report.read_text())["reports"]
    assert [(s["row"], s["col"]) for s in found["witness_path"]] == [(1, 2), (1, 1)]
    drawn = Picture(png, (3, 7), to_rgb(picture.WALL_COLOR))
    path_color = to_rgb(picture.PATH_COLOR)
    assert close(drawn.at(2.0, 1.5), path_color, 0.1)  # between (1,1) and (1,2)
    assert not close(drawn.at(3.0, 1.5), path_color, 0.1).any()  # not beyond S


def test_reward_png_draws_the_witness_of_a_misspecified_reward(tmp_path, capsys):
    """red.toml is misspecified on deploy-01: the witness walks to the red object (2,7)."""
    models = Path(__file__).resolve().parents[2] / "models" / "redblue"
    png = tmp_path / "red.png"
    code, out, _ = verify(
        capsys,
        "reward",
        "--model",
        models / "deploy-01.toml",
        "--reward",
        models / "rewards" / "red.toml",
        "--png",
        png,
    )
    assert code == 1 and f"wrote {png}" in out
    drawn = Picture(png, (5, 9), to_rgb(picture.WALL_COLOR))
    assert close(drawn.at(7.0, 3.5), to_rgb(picture.PATH_COLOR), 0.1)  # (3,6) -> (3,7)


def test_png_with_several_models_writes_one_file_each(idler, tmp_path, capsys):
    maze, table = idler
    other = tmp_path / "other.toml"
    other.write_text(maze.read_text())
    code, out, _ = verify(capsys, table, "--model", maze, other, "--png", tmp_path / "p.png")
    assert code == 1
    for name in ("p-idler.png", "p-other.png"):
        assert (tmp_path / name).is_file() and f"wrote {tmp_path / name}" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--compare", "exit"), "--png: draws a reward's witness"),
        ((), "pictures exist for mazes and MiniGrid"),
    ],
)
def test_png_where_nothing_can_be_drawn_exits_2(tmp_path, capsys, extra, message):
    prism = tmp_path / "coin.prism"
    prism.write_text(
        "dtmc\nmodule m\n x : [0..1] init 0;\n [] x=0 -> 0.5:(x'=1) + 0.5:(x'=0);\n"
        ' [] x=1 -> true;\nendmodule\nlabel "exit" = x=1;\nrewards "exit" x=0 : 1; endrewards\n'
    )
    code, _, err = verify(
        capsys,
        "reward",
        "--model",
        prism,
        "--spec",
        'P=? [ F "exit" ]',
        "--reward",
        "exit",
        "--png",
        tmp_path / "x.png",
        *extra,
    )
    assert code == 2 and message in err and "\n" not in err.strip()
    assert not (tmp_path / "x.png").exists()

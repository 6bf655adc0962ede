"""Seeded random perfect mazes, open rooms and Maze -> TOML: valid inputs of any size for tests
and benchmarks, reproducible from their arguments."""

from __future__ import annotations

import math
import re

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from verifier.budget import over_budget, require_memory
from verifier.inputs.maze import (
    BUILTIN_CELLS,
    DEFAULT_INTENDED,
    FLOOR,
    PALETTE,
    START,
    WALL,
    Cell,
    Maze,
    parse_maze,
)

# Characters of generated mazes: E exit, L lava; a key is the lower-case initial of its color
# and its door the upper-case one (r red, g green, b blue, y yellow, p purple, a grey); an
# object is the 1-based place of its color in PALETTE (1 red ... 6 grey).
EXIT, LAVA = "E", "L"
KEY_CHARS = dict(zip(PALETTE, "rgbypa", strict=True))
DOOR_CHARS = {color: char.upper() for color, char in KEY_CHARS.items()}
OBJECT_CHARS = {color: str(i + 1) for i, color in enumerate(PALETTE)}
_ALWAYS_TERMINAL = ("exit", "lava")
BYTES_PER_CELL = 100  # the generator's peak (measured: 80 B a cell at 2001x2001)
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
ANYWHERE = "anywhere"


def random_maze(
    height: int,
    width: int,
    seed: int,
    *,
    exits: int = 1,
    exit_color: str | None = "blue",
    objects: int = 0,
    keys: int = 0,
    lava: int = 0,
    slip: float = 0.0,
    name: str | None = None,
    max_states: int | None = None,
    start: str | None = None,
    exit_region: str | None = None,
) -> Maze:
    """A seeded random perfect maze of `height` x `width` characters (odd, at least 5).

    The floor is a spanning tree of the odd cells, the *nodes* (randomised Kruskal: scipy's
    minimum spanning tree under random weights), so any two cells are joined by exactly one
    path. One start on a random node; the first exit on the dead end farthest from it, further
    exits and the lava on random dead ends (a dead end cuts nothing off, and the corridor cell
    beside a lava dead end has a move that cannot slip into it); doors of distinct colors (the
    exit's color last) on the start-to-first-exit path, each key reachable without its door;
    objects non-terminal, of random colors, on free floor. Nothing is placed where an exit
    cuts it off from the start. Hence Pmax of reaching the exit is 1 at any slip. Same
    arguments, same maze. ValueError for invalid sizes or counts, or too small a maze;
    ResourceLimit, before anything is allocated, when its states (about one per floor cell,
    more with keys) pass `max_states` or generating it would pass the memory available.

    Where the start and the exit go (Langosco et al. 2022's maze: the mouse starts
    bottom-left, the cheese lies in the top-right n x n region, `rand_region`):

    start
        A corner: "top-left", "top-right", "bottom-left" or "bottom-right" puts the start on
        that corner's node (e.g. (H-2, 1) for "bottom-left"). None (default): a random node.
    exit_region
        "CORNER N" (e.g. "top-right 3"): the exit (exits must be 1) on a node of the N x N
        block of nodes at that corner, drawn uniformly by the seed, never the start's. "top-right
        1" is exactly the top-right node; a size at least the nodes per side of the maze
        ((H-1)/2 rows, (W-1)/2 columns) covers it whole, as does "anywhere". N counts nodes,
        not characters: "top-right 2" is the 4 nodes at rows 1 and 3, columns W-4 and W-2.
        (The procgen original counts cells, corridors included; it clips N to the maze too.)
        An exit need not be on a dead end here: what lies behind it is out of reach. None
        (default): the dead-end placement above.

    In a family file the same words read `start = "bottom-left"`, `exit_region = "top-right
    3"` under [family.generate]; `verify generate` takes `--start` and `--exit-region`.

    Examples
    --------
    >>> maze = random_maze(9, 9, 0, start="bottom-left", exit_region="top-right 1")
    >>> maze.starts(), np.argwhere(maze.layout == EXIT).tolist()
    ([(7, 1)], [[1, 7]])
    """
    _check_size(height, width, minimum=5)
    if height % 2 == 0 or width % 2 == 0:
        raise ValueError(f"the size must be odd in both directions, got {height}x{width}")
    floor_cells = 2 * ((height - 1) // 2) * ((width - 1) // 2) - 1  # a spanning tree's
    if max_states is not None and floor_cells > max_states:
        raise over_budget(
            f"a {height}x{width} maze", max_states, f": about {floor_cells}, one per floor cell"
        )
    require_memory(height * width * BYTES_PER_CELL, f"generating a {height}x{width} maze")
    for label, count in (("exits", exits), ("objects", objects), ("keys", keys), ("lava", lava)):
        if not isinstance(count, int | np.integer) or count < 0:
            raise ValueError(f"{label} must be a non-negative integer, got {count!r}")
    if keys > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} key/door pairs (one per color), got {keys}")
    if keys and not exits:
        raise ValueError("keys need an exit: the doors are placed on the path to it")
    if exit_color is not None and exit_color not in PALETTE:
        raise ValueError(f"unknown exit_color {exit_color!r}; known: {', '.join(PALETTE)}")
    _check_slip(slip)
    if start is not None and start not in CORNERS:
        raise ValueError(f"unknown start {start!r}; known: {', '.join(CORNERS)}")
    region = None if exit_region is None else exit_region_mask(height, width, exit_region)
    if region is not None and exits != 1:
        raise ValueError(f"exit_region {exit_region!r} places one exit, got exits={exits}")

    rng = np.random.default_rng(seed)
    floor = _carve(height, width, rng).ravel()
    adjacency, degree = _tree_graph(floor.reshape(height, width))
    if start is None:
        start_cell = int(rng.choice(np.flatnonzero(_node_mask(height, width).ravel())))
    else:
        row, col = corner_node(height, width, start)
        start_cell = row * width + col
    order, parent = breadth_first_order(adjacency, start_cell, directed=False)

    free = floor.copy()
    free[start_cell] = False
    layout = np.where(floor, FLOOR, WALL).astype("<U1").reshape(height, width)
    flat = layout.ravel()
    flat[start_cell] = START
    cells: dict[str, Cell] = {}

    exit_cells = np.array([], dtype=np.int64)
    if exits:
        if region is None:
            first_exit = int(order[-1])  # deepest in BFS order: a leaf farthest from the start
            free[first_exit] = False
            more = _take(rng, free, degree == 1, exits - 1, "exits on dead ends")
            exit_cells = np.concatenate([[first_exit], more])
        else:
            exit_cells = _take(rng, free, region.ravel(), 1, f"exit in {exit_region!r}")
            # An exit off the dead ends cuts off what lies behind it: nothing goes there.
            behind = breadth_first_order(
                _children_graph(parent, order), int(exit_cells[0]), return_predecessors=False
            )
            free[behind] = False
        flat[exit_cells] = EXIT
        cells[EXIT] = Cell("exit", exit_color, terminal=True)
    if lava:
        flat[_take(rng, free, degree == 1, lava, "lava cells on dead ends")] = LAVA
        cells[LAVA] = Cell("lava", terminal=True)
    if keys:
        colors = [str(c) for c in rng.permutation(PALETTE) if c != exit_color]
        if exit_color is not None:
            colors.append(exit_color)
        colors = colors[:keys]
        doors = _place_doors(rng, parent, start_cell, int(exit_cells[0]), keys, free)
        children = _children_graph(parent, order)
        for door, color in zip(doors, colors, strict=True):
            behind = np.zeros(floor.size, dtype=bool)
            behind[breadth_first_order(children, door, return_predecessors=False)] = True
            key = _take(rng, free, ~behind, 1, f"{color} key before its door")
            flat[door], flat[key] = DOOR_CHARS[color], KEY_CHARS[color]
            cells[DOOR_CHARS[color]] = Cell("door", color)
            cells[KEY_CHARS[color]] = Cell("key", color)
    if objects:
        where = _take(rng, free, floor, objects, "objects")
        for i, color_index in zip(where, rng.integers(len(PALETTE), size=objects), strict=True):
            color = PALETTE[int(color_index)]
            flat[i] = OBJECT_CHARS[color]
            cells[OBJECT_CHARS[color]] = Cell("object", color)

    name = name or f"random-{height}x{width}-seed{seed}"
    placed = "".join(
        f", {key}={value!r}"
        for key, value in (("start", start), ("exit_region", exit_region))
        if value is not None
    )
    source = f"random_maze({height}, {width}, seed={seed}{placed})"
    return _validated(layout, cells, name, slip, source)


def corner_node(height: int, width: int, corner: str) -> tuple[int, int]:
    """(row, col) of the node at `corner` (one of CORNERS) of a `height` x `width` maze."""
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; known: {', '.join(CORNERS)}")
    vertical, horizontal = corner.split("-")
    return (1 if vertical == "top" else height - 2, 1 if horizontal == "left" else width - 2)


def exit_region_mask(height: int, width: int, exit_region: str) -> np.ndarray:
    """bool [H, W]: the nodes of `exit_region` ("CORNER N" or "anywhere"; see `random_maze`).
    ValueError naming the value when it is not one of those."""
    corner, size = _parse_region(exit_region)
    nodes = _node_mask(height, width)
    if corner is None:
        return nodes
    vertical, horizontal = corner.split("-")
    reach = 2 * size  # node k of a side sits at character 2k + 1
    rows = np.arange(height)
    cols = np.arange(width)
    in_rows = rows < reach if vertical == "top" else rows >= height - 1 - reach
    in_cols = cols < reach if horizontal == "left" else cols >= width - 1 - reach
    return nodes & in_rows[:, None] & in_cols[None, :]


def _parse_region(exit_region: object) -> tuple[str | None, int]:
    """("top-right", 3) for "top-right 3"; (None, 0) for "anywhere"."""
    example = "write a corner and a size in nodes, e.g. 'top-right 3', or 'anywhere'"
    if not isinstance(exit_region, str):
        raise ValueError(f"exit_region must be a string: {example}; got {exit_region!r}")
    words = exit_region.split()
    if words == [ANYWHERE]:
        return None, 0
    if len(words) != 2:
        raise ValueError(f"exit_region {exit_region!r}: {example}")
    corner, size = words
    if corner not in CORNERS:
        raise ValueError(
            f"exit_region {exit_region!r}: unknown corner {corner!r}; known: {', '.join(CORNERS)}"
        )
    if not re.fullmatch(r"[0-9]+", size) or int(size) < 1:
        raise ValueError(
            f"exit_region {exit_region!r}: the size {size!r} must be a positive whole number "
            "of nodes"
        )
    return corner, int(size)


def open_room(height: int, width: int, *, slip: float = 0.0, name: str | None = None) -> Maze:
    """A `height` x `width` room (characters, wall border included): floor inside, start at the
    top-left inside corner, a blue exit at the bottom-right one; (height-2)*(width-2) states."""
    _check_size(height, width, minimum=3)
    if (height - 2) * (width - 2) < 2:
        raise ValueError(f"an open room needs at least two inside cells, got {height}x{width}")
    _check_slip(slip)
    layout = np.full((height, width), WALL, dtype="<U1")
    layout[1:-1, 1:-1] = FLOOR
    layout[1, 1] = START
    layout[-2, -2] = EXIT
    cells = {EXIT: Cell("exit", "blue", terminal=True)}
    name = name or f"room-{height}x{width}"
    return _validated(layout, cells, name, slip, f"open_room({height}, {width})")


def maze_to_toml(maze: Maze) -> str:
    """TOML text that `parse_maze` reads back into an equal maze (layout, cells, slip,
    intended, name). ValueError if `.` or `S` stand for something other than floor, which
    the format cannot say."""
    lines = [f"name = {_toml_string(maze.name)}"]
    if maze.slip:
        lines.append(f"slip = {_toml_float(maze.slip)}")
    if maze.intended != DEFAULT_INTENDED:
        lines.append(f"intended = {_toml_string(maze.intended)}")
    rows = "\n".join("".join(row) for row in maze.layout.tolist())
    lines.append(f'map = """\n{_escape(rows, multiline=True)}\n"""')
    for char, cell in maze.cells.items():
        if char in BUILTIN_CELLS:
            if cell != BUILTIN_CELLS[char]:
                raise ValueError(f"cell {char!r} is reserved for floor; cannot write {cell}")
            continue
        lines.append("")
        lines.append(f"[cells.{_toml_key(char)}]")
        lines.append(f"kind = {_toml_string(cell.kind)}")
        if cell.color is not None:
            lines.append(f"color = {_toml_string(cell.color)}")
        if cell.terminal != (cell.kind in _ALWAYS_TERMINAL):
            lines.append(f"terminal = {'true' if cell.terminal else 'false'}")
        if cell.slip is not None:
            lines.append(f"slip = {_toml_float(cell.slip)}")
        if cell.labels:
            lines.append(f"labels = [{', '.join(_toml_string(x) for x in cell.labels)}]")
    return "\n".join(lines) + "\n"


# --- carving and tree structure ----------------------------------------------------------


def _node_mask(height: int, width: int) -> np.ndarray:
    """bool [H, W]: the odd (row, col) cells, the nodes of the spanning tree."""
    mask = np.zeros((height, width), dtype=bool)
    mask[1::2, 1::2] = True
    return mask


def _carve(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """bool [H, W] floor of a random perfect maze: nodes plus the cells between tree edges."""
    h, w = (height - 1) // 2, (width - 1) // 2
    ids = np.arange(h * w).reshape(h, w)
    a = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    b = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    weights = 1.0 + rng.random(len(a))  # nonzero: csgraph reads 0 as "no edge"
    tree = minimum_spanning_tree(sp.csr_matrix((weights, (a, b)), shape=(h * w, h * w))).tocoo()
    floor = _node_mask(height, width)
    (ra, ca), (rb, cb) = np.divmod(tree.row, w), np.divmod(tree.col, w)
    floor[ra + rb + 1, ca + cb + 1] = True  # the cell halfway between two adjacent nodes
    return floor


def _tree_graph(floor: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(adjacency between orthogonally adjacent floor positions, one direction per pair;
    int64 [P] number of floor neighbours of each position)."""
    height, width = floor.shape
    pos = np.arange(height * width).reshape(height, width)
    horizontal = pos[:, :-1][floor[:, :-1] & floor[:, 1:]]
    vertical = pos[:-1, :][floor[:-1, :] & floor[1:, :]]
    a = np.concatenate([horizontal, vertical])
    b = np.concatenate([horizontal + 1, vertical + width])
    n = height * width
    adjacency = sp.csr_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    degree = np.bincount(np.concatenate([a, b]), minlength=n)
    return adjacency, degree


def _children_graph(parent: np.ndarray, order: np.ndarray) -> sp.csr_matrix:
    """Directed parent -> child edges of the BFS tree: a BFS from a cell finds its subtree."""
    children = order[1:]
    n = len(parent)
    ones = np.ones(len(children), dtype=np.int8)
    return sp.csr_matrix((ones, (parent[children], children)), shape=(n, n))


def _place_doors(
    rng: np.random.Generator,
    parent: np.ndarray,
    start: int,
    exit_cell: int,
    keys: int,
    free: np.ndarray,
) -> list[int]:
    """`keys` distinct corridor cells of the start-to-exit path, nearest to the start first."""
    path = [exit_cell]
    parents = parent.tolist()
    while path[-1] != start:
        path.append(parents[path[-1]])
    path.reverse()
    # The path alternates node, corridor cell, node, ...; skipping the first corridor cell
    # leaves door i at least i free path nodes before it, so its key always has a place.
    corridor = path[3::2]
    if len(corridor) < keys:
        raise ValueError(
            f"the path from start to exit has {len(corridor)} corridor cells that can take a "
            f"door, too few for {keys} doors; make the maze larger"
        )
    chosen = np.sort(rng.choice(len(corridor), size=keys, replace=False))
    doors = [corridor[i] for i in chosen.tolist()]
    free[doors] = False
    return doors


def _take(
    rng: np.random.Generator, free: np.ndarray, where: np.ndarray, count: int, what: str
) -> np.ndarray:
    """`count` distinct random positions that are free and `where`; marks them used."""
    pool = np.flatnonzero(free & where)
    if len(pool) < count:
        raise ValueError(f"only {len(pool)} places for {count} {what}; make the maze larger")
    chosen = np.sort(rng.choice(pool, size=count, replace=False)) if count else pool[:0]
    free[chosen] = False
    return chosen


# --- checks and TOML writing -----------------------------------------------------------


def _validated(
    layout: np.ndarray, cells: dict[str, Cell], name: str, slip: float, source: str
) -> Maze:
    """The maze through its TOML text and `parse_maze`, so that it is validated like a file."""
    used = set(np.unique(layout).tolist())
    draft = Maze(
        name=name,
        source=source,
        layout=layout,
        cells={**{c: BUILTIN_CELLS[c] for c in (FLOOR, START) if c in used}, **cells},
        slip=float(slip),
    )
    return parse_maze(maze_to_toml(draft), source=source, default_name=name)


def parse_size(text: str) -> tuple[int, int]:
    """`HxW` (e.g. 21x21) -> (height, width); ValueError for anything else, including
    sizes of more than 9 digits (no maze that large fits any budget)."""
    height, sep, width = str(text).strip().lower().partition("x")
    if not sep or not _SIZE.fullmatch(height) or not _SIZE.fullmatch(width):
        raise ValueError(f"{str(text)[:40]!r} is not HxW, e.g. 21x21")
    return int(height), int(width)


_SIZE = re.compile(r"[0-9]{1,9}")


def _check_size(height: int, width: int, minimum: int) -> None:
    for label, size in (("height", height), ("width", width)):
        if not isinstance(size, int | np.integer) or size < minimum:
            raise ValueError(f"{label} must be an integer of at least {minimum}, got {size!r}")


def _check_slip(slip: float) -> None:
    if not (isinstance(slip, int | float) and 0.0 <= slip <= 1.0):
        raise ValueError(f"slip must be a probability in [0, 1], got {slip!r}")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def _toml_key(text: str) -> str:
    return text if _BARE_KEY.match(text) else f'"{_escape(text)}"'


_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')
_NEEDS_ESCAPE_MULTILINE = re.compile(r'[\\"\x00-\x09\x0b-\x1f\x7f]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _toml_string(text: str) -> str:
    """A TOML string: basic ("..."), or literal ('...') where that spares escaping quotes."""
    if '"' in text and "'" not in text and not _CONTROL.search(text):
        return f"'{text}'"
    return f'"{_escape(text)}"'


def _escape(text: str, multiline: bool = False) -> str:
    """Escape for a TOML basic string: backslash, quote and control characters (newlines
    kept in a multi-line string). A regex, so a large map with nothing to escape is fast."""
    pattern = _NEEDS_ESCAPE_MULTILINE if multiline else _NEEDS_ESCAPE
    return pattern.sub(_escape_char, text)


def _escape_char(match: re.Match) -> str:
    char = match.group()
    return "\\" + char if char in '\\"' else f"\\u{ord(char):04x}"


def _toml_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(float(value))

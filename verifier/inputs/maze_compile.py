"""Maze -> MDP, vectorised with numpy; Maze -> PRISM text.

A state is (row, col, inventory), the inventory a bitmask over PALETTE of the keys held.
Keys are never lost, so the inventories form layers ordered by inclusion: each layer's
reachable positions are found by one breadth-first search (scipy, in C) over the grid graph
of that inventory, seeded by the start cells or by the key cells through which earlier layers
enter it. States are numbered by (layer, row-major position); transitions are built as one
batch of (choice, target, probability) triples per layer. No Python loop runs per state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from verifier.budget import over_budget, require_memory
from verifier.graph import reachable
from verifier.inputs.maze import ACTIONS, KINDS, PALETTE, START, WALL, Maze
from verifier.mdp import MDP
from verifier.progress import stage

# Offsets of up, down, left, right, and for each action the two perpendicular slips.
DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))
PERPENDICULAR = ((2, 3), (2, 3), (0, 1), (0, 1))
VARIABLES = ("row", "col", *(f"key_{color}" for color in PALETTE))
# Storm's PRISM parser reserves `floor` (the rounding function), so the export names the
# floor kind label this way; every other label keeps its name.
PRISM_LABEL_NAMES = {"floor": "floor_cell"}


@dataclass(frozen=True, slots=True, eq=False)
class Grid:
    """Per-position arrays of a maze, flattened row-major (P = H * W positions).

    wall, terminal, start  bool [P]
    kind, color            int8 [P]: index into KINDS / PALETTE, -1 for none (and for walls)
    slip                   float64 [P]: slip probability of the cell
    key_bit, door_bit      int64 [P]: 1 << color for key / door cells, else 0
    neighbour              int64 [4, P]: the position one move in each direction leads to,
                           the position itself where the move hits a wall or the border
    """

    height: int
    width: int
    wall: np.ndarray
    terminal: np.ndarray
    start: np.ndarray
    kind: np.ndarray
    color: np.ndarray
    slip: np.ndarray
    key_bit: np.ndarray
    door_bit: np.ndarray
    neighbour: np.ndarray

    @classmethod
    def of(cls, maze: Maze) -> Grid:
        height, width = maze.shape
        codes = maze.layout.ravel().view(np.uint32)  # code points: a lookup, not a sort
        chars = [WALL, *maze.cells]
        index = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
        index[[ord(char) for char in chars]] = np.arange(len(chars))
        inverse = index[codes]
        table = {
            name: np.zeros(len(chars), dtype=dtype)
            for name, dtype in [
                ("wall", bool),
                ("terminal", bool),
                ("kind", np.int8),
                ("color", np.int8),
                ("slip", np.float64),
                ("key_bit", np.int64),
                ("door_bit", np.int64),
            ]
        }
        for i, char in enumerate(chars):
            if char == WALL:
                table["wall"][i], table["kind"][i], table["color"][i] = True, -1, -1
                continue
            cell = maze.cells[char]
            color = PALETTE.index(cell.color) if cell.color else -1
            table["terminal"][i] = cell.terminal
            table["kind"][i] = KINDS.index(cell.kind)
            table["color"][i] = color
            table["slip"][i] = maze.cell_slip(char)
            if cell.kind == "key":
                table["key_bit"][i] = 1 << color
            if cell.kind == "door":
                table["door_bit"][i] = 1 << color
        per_position = {name: values[inverse] for name, values in table.items()}

        positions = np.arange(height * width, dtype=np.int64)
        rows, cols = np.divmod(positions, width)
        neighbour = np.empty((4, height * width), dtype=np.int64)
        for d, (dr, dc) in enumerate(DELTAS):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            target = np.where(inside, r * width + c, positions)
            neighbour[d] = np.where(per_position["wall"][target], positions, target)
        return cls(
            height=height,
            width=width,
            start=maze.layout.ravel() == START,
            neighbour=neighbour,
            **per_position,
        )

    @property
    def n_positions(self) -> int:
        return self.height * self.width

    def targets(self, inventory: int) -> np.ndarray:
        """int64 [4, P]: where each move leads while holding `inventory` (locked doors block)."""
        door = self.door_bit[self.neighbour]
        locked = (door != 0) & ((door & inventory) == 0)
        return np.where(locked, np.arange(self.n_positions), self.neighbour)

    def new_key(self, inventory: int) -> np.ndarray:
        """bool [P]: key cells whose color `inventory` lacks (stepping there changes layer)."""
        return (self.key_bit != 0) & ((self.key_bit & inventory) == 0)


def cell_labels(maze: Maze, grid: Grid | None = None) -> dict[str, np.ndarray]:
    """Position-based labels, name -> bool [P]: kinds, colors, kind_color, terminal, start,
    custom labels. Every kind and palette color label is present, empty where unused."""
    grid = grid or Grid.of(maze)
    labels = {kind: grid.kind == i for i, kind in enumerate(KINDS)}
    labels.update({color: grid.color == i for i, color in enumerate(PALETTE)})
    for cell in maze.cells.values():
        if cell.color:
            labels[f"{cell.kind}_{cell.color}"] = (grid.kind == KINDS.index(cell.kind)) & (
                grid.color == PALETTE.index(cell.color)
            )
    labels["terminal"] = grid.terminal.copy()
    labels["start"] = grid.start.copy()
    flat = maze.layout.ravel()
    for char, cell in maze.cells.items():
        for name in cell.labels:
            labels.setdefault(name, np.zeros(grid.n_positions, dtype=bool))
            labels[name] = labels[name] | (flat == char)
    return labels


def label_names(maze: Maze) -> list[str]:
    """The names of every label `compile_maze` gives this maze's states (no grid built)."""
    names = [*KINDS, *PALETTE]
    names += sorted({f"{c.kind}_{c.color}" for c in maze.cells.values() if c.color})
    names += ["terminal", "start"]
    names += sorted({label for cell in maze.cells.values() for label in cell.labels})
    return names + [f"has_key_{color}" for color in PALETTE]


@stage("compiling the maze")
def compile_maze(maze: Maze, max_states: int | None = None) -> MDP:
    r"""Build the explicit MDP of a maze: reachable states only, transitions as in README, "Files".

    Examples
    --------
    >>> from verifier.inputs.maze import parse_maze
    >>> mdp = compile_maze(parse_maze('map = "S.A"\n[cells.A]\nkind = "exit"'))
    >>> mdp.n_states, mdp.n_choices
    (3, 9)
    """
    if max_states is not None and _surely_reached(maze) > max_states:
        raise over_budget("the maze", max_states)
    require_memory(maze.layout.size * BYTES_PER_POSITION, "the maze", f"{maze.layout.size} cells")
    grid = Grid.of(maze)
    n_positions = grid.n_positions
    layers = _explore_layers(grid, max_states)
    n_states = sum(len(pos) for _, pos in layers)
    require_memory(n_states * BYTES_PER_STATE, "the maze", f"{n_states} states")
    inventories = np.array([inv for inv, _ in layers], dtype=np.int64)
    rank_of_inventory = np.full(1 << len(PALETTE), -1, dtype=np.int64)
    rank_of_inventory[inventories] = np.arange(len(layers))

    positions = np.concatenate([pos for _, pos in layers])
    state_inventory = np.repeat(inventories, [len(pos) for _, pos in layers])
    keys = np.repeat(np.arange(len(layers)), [len(pos) for _, pos in layers]) * n_positions
    keys = keys + positions  # sorted: layers in rank order, positions ascending

    terminal = grid.terminal[positions]
    row_groups = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(np.where(terminal, 1, len(ACTIONS)), out=row_groups[1:])
    n_choices = int(row_groups[-1])

    # Every choice has at most OUTCOMES successors (the intended move and the two slips;
    # a terminal state's loop): filled into [OUTCOMES, n_choices] arrays, then merged choice
    # by choice into CSR, with no global sort.
    cols = np.zeros((OUTCOMES, n_choices), dtype=np.int32)
    probs = np.zeros((OUTCOMES, n_choices))
    offset = 0
    for inventory, pos in layers:
        states = np.arange(offset, offset + len(pos))
        offset += len(pos)
        moving = ~grid.terminal[pos]
        targets = grid.targets(inventory)
        src, src_pos = states[moving], pos[moving]
        slip = grid.slip[src_pos]
        for a in range(len(ACTIONS)):
            outcomes = [(a, 1.0 - slip), *((d, slip / 2) for d in PERPENDICULAR[a])]
            for k, (direction, prob) in enumerate(outcomes):
                q = targets[direction, src_pos]
                key = rank_of_inventory[inventory | grid.key_bit[q]] * n_positions + q
                cols[k, row_groups[src] + a] = np.searchsorted(keys, key)
                probs[k, row_groups[src] + a] = prob
        stay = states[~moving]
        cols[:, row_groups[stay]] = stay
        probs[0, row_groups[stay]] = 1.0
    transitions = _rows_to_csr(cols, probs, len(keys))

    choice_actions = np.full(n_choices, -1, dtype=np.int32)
    moving_states = np.nonzero(~terminal)[0]
    for a in range(len(ACTIONS)):
        choice_actions[row_groups[moving_states] + a] = a

    labels = {name: on[positions] for name, on in cell_labels(maze, grid).items()}
    for i, color in enumerate(PALETTE):
        labels[f"has_key_{color}"] = (state_inventory >> i) & 1 == 1
    row, col = np.divmod(positions, grid.width)
    key_bits = (state_inventory[:, None] >> np.arange(len(PALETTE))) & 1
    valuations = np.column_stack([row, col, key_bits]).astype(np.int64)
    initial = np.nonzero(grid.start[positions] & (state_inventory == 0))[0]
    return MDP(
        transitions=transitions,
        row_groups=row_groups,
        choice_actions=choice_actions,
        actions=ACTIONS,
        labels=labels,
        initial_states=initial.astype(np.int64),
        variables=VARIABLES,
        valuations=valuations,
        name=maze.name,
    )


OUTCOMES = 3  # successors of a choice at most: the intended move and two slips


def _rows_to_csr(cols: np.ndarray, probs: np.ndarray, n_states: int) -> sp.csr_matrix:
    """CSR matrix from each row's OUTCOMES entries (int32 and float64 [OUTCOMES, n_rows],
    entry k of row r at [k, r], both overwritten): sorted within rows by a sorting network,
    equal columns summed left to right, zeros dropped; in place, linear in the entries, with
    no sort of the whole and no copy of it but the result."""
    for i, j in ((0, 1), (1, 2), (0, 1)):
        swap = cols[i] > cols[j]
        cols[i, swap], cols[j, swap] = cols[j, swap], cols[i, swap]
        probs[i, swap], probs[j, swap] = probs[j, swap], probs[i, swap]
    first, second = cols[0] == cols[1], cols[1] == cols[2]
    probs[0, first] += probs[1, first]
    probs[1, first] = 0.0
    probs[0, first & second] += probs[2, first & second]
    probs[1, second & ~first] += probs[2, second & ~first]
    probs[2, second] = 0.0
    keep = (probs != 0.0).T  # [n_rows, OUTCOMES]: read row by row, as CSR stores them
    indptr = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    return sp.csr_matrix((probs.T[keep], cols.T[keep], indptr), shape=(len(keep), n_states))


# Peak bytes per map cell of the grid arrays and one layer's search (scipy graph of 4 moves
# per cell), and per state of the transition arrays (12 entries, their index and value
# arrays and concatenated copies): measured on 1001x1001 and 5001x5001 mazes, rounded up.
BYTES_PER_POSITION = 300
BYTES_PER_STATE = 1000


def _surely_reached(maze: Maze) -> int:
    """A lower bound on the states of a maze, found without the grid arrays: the cells
    joined to a start through open floor (no wall, door, key or terminal cell), where every
    move succeeds with positive probability. One connected-component labelling in C."""
    slips = [maze.cell_slip(char) for char in maze.cells]
    if not slips or max(slips) >= 1.0:
        return 0  # with slip 1 intended moves never happen: no bound from adjacency
    codes = maze.layout.view(np.uint32)
    open_chars = [
        char
        for char, cell in maze.cells.items()
        if not cell.terminal and cell.kind not in ("key", "door")
    ]
    table = np.zeros(max(map(ord, [WALL, *maze.cells])) + 1, dtype=bool)
    table[[ord(char) for char in open_chars]] = True
    components, _ = ndimage.label(table[codes])
    started = np.unique(components[maze.layout == START])
    return int(np.bincount(components.ravel())[started[started > 0]].sum())


def _explore_layers(grid: Grid, max_states: int | None) -> list[tuple[int, np.ndarray]]:
    """[(inventory, sorted positions of its states)], inventories by (popcount, value).

    A layer is only entered from layers holding a subset of its keys, so visiting layers in
    popcount order sees all of a layer's entry points before searching it.
    """
    n_positions = grid.n_positions
    seeds: dict[int, list[np.ndarray]] = {0: [np.nonzero(grid.start)[0]]}
    layers = []
    n_states = 0
    while seeds:
        inventory = min(seeds, key=lambda inv: (bin(inv).count("1"), inv))
        entry = np.unique(np.concatenate(seeds.pop(inventory)))
        new_key = grid.new_key(inventory)
        movers = np.nonzero(~grid.wall & ~grid.terminal & ~new_key)[0]
        targets = grid.targets(inventory)[:, movers].ravel()
        entering = np.zeros(n_positions, dtype=bool)
        entering[entry] = True
        reached = reachable(np.tile(movers, 4), targets, entering)
        states = np.nonzero(reached & ~new_key)[0]
        n_states += len(states)
        if max_states is not None and n_states > max_states:
            raise over_budget("the maze", max_states)
        layers.append((inventory, states))
        for q in np.nonzero(reached & new_key)[0]:
            seeds.setdefault(inventory | int(grid.key_bit[q]), []).append(np.array([q]))
    return layers


def to_prism(maze: Maze) -> str:
    """The maze as a PRISM MDP: variables in VARIABLES order, one command per (cell, action,
    relevant door keys), every label of `compile_maze`. Storm building it from the initial
    states yields the same reachable MDP as `compile_maze` (tested on random mazes)."""
    grid = Grid.of(maze)
    width = grid.width
    lines = [
        f"// {maze.name}: generated by verifier from {maze.source}",
        '// The kind label "floor" is exported as "floor_cell" (Storm reserves `floor`).',
        "mdp",
        "",
        "module maze",
    ]
    lines.append(f"  row : [0..{grid.height - 1}];")
    lines.append(f"  col : [0..{width - 1}];")
    lines += [f"  key_{color} : [0..1];" for color in PALETTE]
    lines.append("")
    movers = np.nonzero(~grid.wall & ~grid.terminal)[0]
    for p in movers.tolist():
        where = f"row={p // width} & col={p % width}"
        for a, action in enumerate(ACTIONS):
            for guard, update in _prism_choices(grid, p, a):
                lines.append(f"  [{action}] {where}{guard} -> {update};")
    terminal = _positions_expression(grid, grid.terminal)
    if terminal != "false":
        lines.append(f"  [] {terminal} -> true;")
    lines.append("endmodule")
    lines.append("")
    no_keys = " & ".join(f"key_{color}=0" for color in PALETTE)
    starts = _positions_expression(grid, grid.start, walls_free=False)
    lines.append(f"init ({starts}) & {no_keys} endinit")
    lines.append("")
    for name, on in cell_labels(maze, grid).items():
        name = PRISM_LABEL_NAMES.get(name, name)
        lines.append(f'label "{name}" = {_positions_expression(grid, on)};')
    lines += [f'label "has_key_{color}" = key_{color}=1;' for color in PALETTE]
    return "\n".join(lines) + "\n"


def _prism_choices(grid: Grid, p: int, action: int) -> list[tuple[str, str]]:
    """(extra guard, update) pairs of one action at position p: one per combination of the
    keys that decide whether a neighbouring door opens."""
    slip = float(grid.slip[p])
    moves = [(action, 1.0 - slip), *((d, slip / 2) for d in PERPENDICULAR[action])]
    moves = [(d, prob) for d, prob in moves if prob > 0]
    neighbours = {int(grid.neighbour[d, p]) for d, _ in moves} - {p}
    door_colors = sorted({int(grid.door_bit[q]) for q in neighbours} - {0})
    choices = []
    for held in range(1 << len(door_colors)):
        inventory = sum(bit for i, bit in enumerate(door_colors) if held >> i & 1)
        guard = "".join(
            f" & key_{PALETTE[bit.bit_length() - 1]}={held >> i & 1}"
            for i, bit in enumerate(door_colors)
        )
        outcomes: dict[str, float] = {}
        for d, prob in moves:
            q = int(grid.neighbour[d, p])
            door = int(grid.door_bit[q])
            if door and not door & inventory:
                q = p
            update = _prism_update(grid, p, q)
            outcomes[update] = outcomes.get(update, 0.0) + prob
        choices.append((guard, " + ".join(f"{prob!r}:{u}" for u, prob in outcomes.items())))
    return choices


def _prism_update(grid: Grid, p: int, q: int) -> str:
    if q == p:
        return "true"
    parts = []
    if q // grid.width != p // grid.width:
        parts.append(f"(row'={q // grid.width})")
    if q % grid.width != p % grid.width:
        parts.append(f"(col'={q % grid.width})")
    if grid.key_bit[q]:
        parts.append(f"(key_{PALETTE[int(grid.key_bit[q]).bit_length() - 1]}'=1)")
    return "&".join(parts)


def _positions_expression(grid: Grid, on: np.ndarray, walls_free: bool = True) -> str:
    """A compact PRISM expression true exactly at the non-wall positions in `on`.

    Walls are never reached, so for labels they are "don't care" (`walls_free`): a row's
    column set is written as ranges over on-or-wall cells, and rows with the same ranges
    share one disjunct. The initial-state expression must not use this: it creates states.
    """
    if not on.any():
        return "false"
    on = on.reshape(grid.height, grid.width)
    free = on | grid.wall.reshape(grid.height, grid.width) if walls_free else on
    by_ranges: dict[str, list[int]] = {}
    for r in np.nonzero(on.any(axis=1))[0].tolist():
        ranges = []
        c = 0
        while c < grid.width:
            if not free[r, c]:
                c += 1
                continue
            end = c
            while end + 1 < grid.width and free[r, end + 1]:
                end += 1
            hits = np.nonzero(on[r, c : end + 1])[0]
            if len(hits):
                lo, hi = c + int(hits[0]), c + int(hits[-1])
                ranges.append(f"col={lo}" if lo == hi else f"(col>={lo} & col<={hi})")
            c = end + 1
        by_ranges.setdefault(" | ".join(ranges), []).append(r)
    disjuncts = []
    for column_ranges, rows in by_ranges.items():
        rows_expression = " | ".join(f"row={r}" for r in rows)
        disjuncts.append(f"(({rows_expression}) & ({column_ranges}))")
    return " | ".join(disjuncts)

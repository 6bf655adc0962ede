"""Maze TOML -> Maze: parse and validate once, at the edge.

The format is README's ("Files"). Every problem in a file is collected and reported
together in one line, each naming its place: the TOML key, or the map's (row, col).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verifier.documents import parse_toml, read_text
from verifier.errors import InputError

PALETTE = ("red", "green", "blue", "yellow", "purple", "grey")
KINDS = ("exit", "lava", "object", "key", "door", "floor")
ACTIONS = ("up", "down", "left", "right")
DEFAULT_INTENDED = 'Pmax=? [ !"lava" U "exit" ]'

WALL, FLOOR, START = "#", ".", "S"
_ALWAYS_TERMINAL = ("exit", "lava")
_NEEDS_COLOR = ("key", "door")
_TOP_KEYS = ("name", "slip", "intended", "map", "cells")
_CELL_KEYS = ("kind", "color", "terminal", "slip", "labels")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names Storm's PRISM parser reserves (keywords and built-in functions), and Storm's own labels.
RESERVED_LABELS = frozenset(
    """
    A C E F G I P R S U W X bool ceil clock const ctmc double dtmc endinit endinvariant
    endmodule endrewards endsystem false filter floor formula func global init int invariant
    label log max mdp min mod module nondeterministic pow prob probabilistic pta rate
    rewards Pmax Pmin Rmax Rmin stochastic system true deadlock
    """.split()  # noqa: SIM905
)
# Names the compiler and Storm give labels themselves: a custom label with one of these
# names would be overwritten (or make the PRISM export invalid).
BUILT_IN_LABELS = frozenset(
    [*KINDS, *PALETTE, "terminal", "start", "floor_cell", "out_of_bounds", "unexplored"]
    + [f"{kind}_{color}" for kind in KINDS for color in PALETTE]
    + [f"has_key_{color}" for color in PALETTE]
)


@dataclass(frozen=True, slots=True)
class Cell:
    """What one map character stands for. `slip` None means the maze's slip."""

    kind: str
    color: str | None = None
    terminal: bool = False
    slip: float | None = None
    labels: tuple[str, ...] = ()


BUILTIN_CELLS: Mapping[str, Cell] = {
    FLOOR: Cell("floor"),
    START: Cell("floor"),
}


@dataclass(frozen=True, slots=True, eq=False)
class Maze:
    """A validated maze.

    `layout` is the map as a [H, W] array of single characters ('<U1'); `cells` maps every
    non-wall character that occurs in it to its Cell. Row 0 is the top row.
    """

    name: str
    source: str
    layout: np.ndarray
    cells: Mapping[str, Cell]
    slip: float = 0.0
    intended: str = DEFAULT_INTENDED
    warnings: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        return self.layout.shape

    def starts(self) -> list[tuple[int, int]]:
        """Start positions (row, col), in row-major order."""
        return [(int(r), int(c)) for r, c in zip(*np.nonzero(self.layout == START), strict=True)]

    def cell_slip(self, char: str) -> float:
        cell = self.cells[char]
        return self.slip if cell.slip is None else cell.slip


def load_maze(path: str | Path) -> Maze:
    """Read and validate a maze TOML file; raise InputError naming every problem found."""
    path = Path(path)
    return parse_maze(read_text(path, "maze"), source=str(path), default_name=path.stem)


def parse_maze(text: str, source: str = "<maze>", default_name: str = "maze") -> Maze:
    """Parse maze TOML text (README, "Files"); raise InputError naming every problem found."""
    doc = parse_toml(text, source)
    problems = _Problems(source)

    for key in doc:
        if key not in _TOP_KEYS:
            problems.add(key, f"unknown key; known: {', '.join(_TOP_KEYS)}")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        problems.add("name", "must be a non-empty string")
        name = default_name
    slip = _probability(doc.get("slip", 0.0), "slip", problems)
    intended = doc.get("intended", DEFAULT_INTENDED)
    if not isinstance(intended, str) or not intended.strip():
        problems.add("intended", "must be a PRISM property such as 'Pmax=? [ F \"exit\" ]'")
        intended = DEFAULT_INTENDED

    cells = dict(BUILTIN_CELLS)
    raw_cells = doc.get("cells", {})
    if not isinstance(raw_cells, dict):
        problems.add("cells", "must be a table of [cells.X] entries")
        raw_cells = {}
    for char, spec in raw_cells.items():
        cell = _parse_cell(char, spec, problems)
        if cell is not None:
            cells[char] = cell

    layout = _parse_map(doc.get("map"), cells, problems, declared=raw_cells.keys())
    problems.raise_if_any()

    used = set(np.unique(layout).tolist())
    cells = {char: cell for char, cell in cells.items() if char in used}
    warnings = [
        f"{source}: cells.{char}: declared but not used in the map"
        for char in raw_cells
        if char not in used
    ]
    warnings += _door_warnings(source, layout, cells)
    return Maze(
        name=name,
        source=source,
        layout=layout,
        cells=cells,
        slip=slip,
        intended=intended,
        warnings=tuple(warnings),
    )


class _Problems:
    """Collects every violation in one file, then raises them together as one line."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []

    def add(self, place: str, message: str) -> None:
        self.items.append(f"{place}: {message}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = "; ".join(self.items[:5])
        more = len(self.items) - 5
        if more > 0:
            shown += f"; and {more} more"
        raise InputError(self.source, shown)


def _probability(value: object, place: str, problems: _Problems) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(place, f"must be a number in [0, 1], got {value!r}")
        return 0.0
    if not 0.0 <= value <= 1.0:
        problems.add(place, f"must be in [0, 1], got {value!r}")
        return 0.0
    return float(value)


def _parse_cell(char: str, spec: object, problems: _Problems) -> Cell | None:
    place = f"cells.{char}"
    if len(char) != 1 or char.isspace():
        problems.add(place, "a cell must be named by one visible character")
        return None
    if char in (WALL, FLOOR, START):
        problems.add(place, f"'{char}' is reserved (# wall, . floor, S start)")
        return None
    if not isinstance(spec, dict):
        problems.add(place, "must be a table with at least `kind`")
        return None
    for key in spec:
        if key not in _CELL_KEYS:
            problems.add(f"{place}.{key}", f"unknown key; known: {', '.join(_CELL_KEYS)}")
    kind = spec.get("kind")
    if kind not in KINDS:
        shown = "missing" if kind is None else f"unknown kind {kind!r}"
        problems.add(f"{place}.kind", f"{shown}; known: {', '.join(KINDS)}")
        return None
    color = spec.get("color")
    if color is not None and color not in PALETTE:
        problems.add(f"{place}.color", f"unknown color {color!r}; known: {', '.join(PALETTE)}")
        color = None
    elif color is None and kind in _NEEDS_COLOR:
        problems.add(
            f"{place}.color", f"{_article(kind)} {kind} needs a color; known: {', '.join(PALETTE)}"
        )
    terminal = spec.get("terminal", kind in _ALWAYS_TERMINAL)
    if not isinstance(terminal, bool):
        problems.add(f"{place}.terminal", f"must be true or false, got {terminal!r}")
        terminal = False
    elif kind in _ALWAYS_TERMINAL and not terminal:
        problems.add(f"{place}.terminal", f"{_article(kind)} {kind} is always terminal")
    slip = None
    if "slip" in spec:
        slip = _probability(spec["slip"], f"{place}.slip", problems)
    labels = spec.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        problems.add(f"{place}.labels", "must be a list of strings")
        labels = []
    for label in labels:
        if not _LABEL_NAME.match(label):
            problems.add(
                f"{place}.labels", f"{label!r} is not a valid label name (letters, digits, _)"
            )
        elif label in RESERVED_LABELS:
            problems.add(f"{place}.labels", f"{label!r} is reserved by PRISM; choose another name")
        elif label in BUILT_IN_LABELS or label.startswith("has_key_"):
            problems.add(
                f"{place}.labels",
                f"{label!r} is a label the verifier gives cells itself; choose another name",
            )
    return Cell(kind, color, terminal, slip, tuple(labels))


def _parse_map(
    raw: object, cells: Mapping[str, Cell], problems: _Problems, declared=()
) -> np.ndarray:
    """The map as a [H, W] array; characters neither walls nor in `cells` are problems,
    except those `declared` whose declaration already was one."""
    empty = np.empty((0, 0), dtype="<U1")
    if raw is None:
        problems.add("map", "missing; give the maze as a multi-line string of rows")
        return empty
    if not isinstance(raw, str):
        problems.add("map", "must be a multi-line string of rows")
        return empty
    lines = raw.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        problems.add("map", "is empty")
        return empty
    width = len(lines[0])
    for r, line in enumerate(lines):
        if len(line) != width:
            problems.add(
                f"map row {r}", f"has {len(line)} columns, row 0 has {width}: rows must be equal"
            )
    if any(len(line) != width for line in lines):
        return empty
    # One fixed-width string per row, viewed as characters: no Python object per cell.
    layout = np.array(lines, dtype=f"<U{width}").view("<U1").reshape(len(lines), width)
    undeclared = ~np.isin(layout, [WALL, *cells, *declared])
    for r, c in zip(*np.nonzero(undeclared), strict=True):
        char = str(layout[r, c])
        problems.add(
            f"map (row {r}, col {c})",
            f"undeclared character {char!r}; declare it under [cells.{_toml_key(char)}]",
        )
    if not (layout == START).any():
        problems.add("map", "has no start cell 'S'")
    return layout


def _toml_key(char: str) -> str:
    return char if re.match(r"[A-Za-z0-9_-]\Z", char) else json.dumps(char)


def _door_warnings(source: str, layout: np.ndarray, cells: Mapping[str, Cell]) -> list[str]:
    key_colors = {cell.color for cell in cells.values() if cell.kind == "key"}
    warnings = []
    for char, cell in cells.items():
        if cell.kind == "door" and cell.color not in key_colors:
            r, c = (int(x[0]) for x in np.nonzero(layout == char))
            warnings.append(
                f"{source}: map (row {r}, col {c}): {cell.color} door has no {cell.color} key "
                "in the maze, so it never opens"
            )
    return warnings


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"

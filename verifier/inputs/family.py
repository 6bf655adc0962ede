"""Level families: a training or deployment *distribution* as one model argument, read
lazily (README, "Level families").

A family TOML has one `[family]` table with one source of levels:

    [family]
    name = "corner-deploy"                     # optional; default: the file's stem
    intended = 'Pmax=? [ !"lava" U "exit" ]'   # optional: φ of every level
    [family.generate]                          # verify generate's maze generator, or ...
    size = "11x11"
    seeds = "0..9999"
    start = "bottom-left"
    exit_region = "anywhere"
    # ... [family.gymnasium] with id, seeds, kwargs, wrappers, actions; or, in [family],
    # files = ["levels/*.toml", "more/"] (globs and directories, relative to the file)

`generate` takes `verify generate`'s options (every keyword of `random_maze`: size, lava,
objects, keys, exit_color, slip, start, exit_region, ...), `gymnasium` a `[gymnasium]`
table's keys (README, "Gymnasium and MiniGrid"). `seeds` is "FIRST..LAST" (both included),
a count N (0..N-1) or a list. Level i is made only when it is asked for: a family of 10^6
seeds is opened, counted and sampled without enumerating it. A level is named
`FILE@seed=N` (or by its file).
"""

from __future__ import annotations

import glob
import inspect
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from verifier.documents import toml_naming
from verifier.errors import InputError
from verifier.inputs.gym_spec import GymSpec, gym_spec_of
from verifier.inputs.maze import Maze
from verifier.inputs.maze_generate import random_maze
from verifier.inputs.paths import model_paths

_KEYS = ("name", "intended", "generate", "gymnasium", "files")
_SOURCES = ("generate", "gymnasium", "files")
_SEEDS = re.compile(r"^\s*(\d{1,18})\s*\.\.\s*(\d{1,18})\s*$")
MAX_LEVELS = 10**12  # a seed range beyond this is a typo, not a family


@dataclass(frozen=True, slots=True)
class Seeds:
    """A sequence of seeds held as a range (FIRST..LAST) or a short list, never expanded."""

    first: int = 0
    count: int = 0
    listed: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.listed) if self.listed is not None else self.count

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.listed[index] if self.listed is not None else self.first + index


@dataclass(frozen=True, slots=True)
class Family:
    """A validated family file (module docstring). `source` is "generate", "gymnasium" or
    "files"; `options` the source's table without its seeds; `files` the level files."""

    path: Path
    name: str
    source: str
    seeds: Seeds
    options: Mapping
    files: tuple[str, ...] = ()
    intended: str | None = None

    def __len__(self) -> int:
        return len(self.files) if self.source == "files" else len(self.seeds)

    def level_name(self, index: int) -> str:
        """How level `index` is named in reports: `FILE@seed=N`, or its own file."""
        if self.source == "files":
            return self.files[index]
        return f"{self.path}@seed={self.seeds[index]}"

    def level(self, index: int) -> Level:
        """Level `index`, made now (a maze generated, a Gymnasium seed fixed); the readers
        (verifier/inputs/load.py) turn it into environments."""
        name = self.level_name(index)
        if self.source == "files":
            return Level(name, file=self.files[index])
        seed = self.seeds[index]
        if self.source == "gymnasium":
            return Level(
                name, gym_spec=replace(_gym_spec(str(self.path), self.options), seeds=(seed,))
            )
        options = dict(self.options)
        height, width = _size(self.path, options.pop("size"))
        try:
            maze = random_maze(height, width, seed, name=name, **options)
        except ValueError as exc:
            raise InputError(str(self.path), f"seed {seed}: {exc}", "family.generate") from None
        return Level(name, maze=maze)


@dataclass(frozen=True, slots=True, eq=False)
class Level:
    """One level of a family: a level file, a generated maze, or a Gymnasium spec of one
    seed; `name` is how reports call it."""

    name: str
    file: str | None = None
    maze: Maze | None = None
    gym_spec: GymSpec | None = None


def is_family(path: str | Path) -> bool:
    """True for a TOML file whose top-level table is `[family]` (read only if it says so)."""
    return toml_naming(path, "family") is not None


def load_family(path: str | Path) -> Family:
    """Read and validate a family file; InputError naming the key for every problem."""
    path = Path(path)
    source_name = str(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source_name, f"cannot read: {exc}") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InputError(source_name, f"TOML syntax error: {exc}") from None
    table = document.get("family")
    if not isinstance(table, dict):
        raise InputError(source_name, "a family file has one [family] table")
    problems = [
        f"{key}: unknown top-level key; only [family]" for key in document if key != "family"
    ]
    problems += [
        f"family.{key}: unknown key; known: {', '.join(_KEYS)}" for key in table if key not in _KEYS
    ]
    sources = [key for key in _SOURCES if key in table]
    if len(sources) != 1:
        problems.append(
            "family: give exactly one of generate (a table), gymnasium (a table) or files "
            f"(globs), got {', '.join(sources) or 'none'}"
        )
    name = table.get("name", path.stem)
    if not isinstance(name, str) or not name:
        problems.append(f"family.name: must be a non-empty string, got {name!r}")
    intended = table.get("intended")
    if intended is not None and not isinstance(intended, str):
        problems.append(f"family.intended: must be a property string, got {intended!r}")
    if problems:
        raise InputError(source_name, "; ".join(problems))
    source = sources[0]
    if source == "files":
        files = _files(path, table["files"])
        return Family(path, name, source, Seeds(), {}, files, intended)
    options = table[source]
    if not isinstance(options, dict):
        raise InputError(
            source_name, f"must be a table, e.g. {source} = {{ ... }}", f"family.{source}"
        )
    options = dict(options)
    if "seed" in options:
        raise InputError(
            source_name, "give `seeds` (a family's levels), not `seed`", f"family.{source}"
        )
    if "seeds" not in options:
        raise InputError(
            source_name, 'seeds is missing: "FIRST..LAST", a count or a list', f"family.{source}"
        )
    seeds = _seeds(source_name, options.pop("seeds"), f"family.{source}.seeds")
    if source == "generate":
        _check_generator(source_name, options)
    else:
        _check_gymnasium(source_name, options)
    return Family(path, name, source, seeds, options, (), intended)


def _seeds(source: str, value, place: str) -> Seeds:
    """ "FIRST..LAST" (both included), a count N (0..N-1), or a list of seeds."""
    if isinstance(value, str):
        match = _SEEDS.match(value)
        if match is None:
            raise InputError(source, f'write seeds as "FIRST..LAST", got {value!r}', place)
        first, last = int(match[1]), int(match[2])
        if last < first:
            raise InputError(source, f"the range {value!r} is empty (LAST before FIRST)", place)
        if last - first + 1 > MAX_LEVELS:
            raise InputError(source, f"{value!r} has more than {MAX_LEVELS:.0e} seeds", place)
        return Seeds(first, last - first + 1)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value <= MAX_LEVELS:
            raise InputError(
                source, f"a count of seeds from 1 to {MAX_LEVELS:.0e}, got {value}", place
            )
        return Seeds(0, value)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in value)
    ):
        if len(set(value)) != len(value):
            raise InputError(source, "seeds repeat", place)
        return Seeds(listed=tuple(value))
    raise InputError(
        source, f'seeds: "FIRST..LAST", a count or a list of seeds, got {value!r}', place
    )


def _size(path: Path, value) -> tuple[int, int]:
    text = value if isinstance(value, str) else ""
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or len(text) > 13:
        raise InputError(str(path), f'size: "HxW", e.g. "21x21", got {value!r}', "family.generate")
    return int(height), int(width)


def _check_generator(source: str, options: dict) -> None:
    """The generator's options are `random_maze`'s keywords (and `size`), checked by name
    and by one maze of the first seed (so a bad option is found before any work)."""
    known = [
        name
        for name, parameter in inspect.signature(random_maze).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "name"
    ]
    unknown = [key for key in options if key not in known and key != "size"]
    if unknown:
        raise InputError(
            source,
            f"unknown option {', '.join(unknown)}; known: size, seeds, {', '.join(known)}",
            "family.generate",
        )
    if "size" not in options:
        raise InputError(source, 'size is missing, e.g. size = "21x21"', "family.generate")
    height, width = _size(Path(source), options["size"])
    rest = {k: v for k, v in options.items() if k != "size"}
    try:
        random_maze(height, width, 0, **rest)
    except (ValueError, TypeError) as exc:
        raise InputError(source, str(exc), "family.generate") from None


def _check_gymnasium(source: str, options: dict) -> None:
    """A `[gymnasium]` table's keys, checked as a model file's are (its seeds apart)."""
    _gym_spec(source, options)


def _gym_spec(source: str, options: Mapping) -> GymSpec:
    return gym_spec_of(source, {"gymnasium": dict(options)})


def _files(path: Path, value) -> tuple[str, ...]:
    """The level files of `files = [globs and directories]`, relative to the family file,
    sorted within each entry, directories standing for their model files; InputError where
    an entry matches nothing."""
    entries = value if isinstance(value, list) else [value]
    if not entries or not all(isinstance(entry, str) and entry for entry in entries):
        raise InputError(
            str(path), f"a list of globs or directories, got {value!r}", "family.files"
        )
    found: list[str] = []
    for entry in entries:
        pattern = str(path.parent / entry)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).resolve() != path.resolve()]
        if not matches or not all(Path(m).exists() for m in matches):
            raise InputError(str(path), f"{entry!r} matches no file", "family.files")
        found += model_paths(matches)
    return tuple(found)

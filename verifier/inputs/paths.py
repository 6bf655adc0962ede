"""Which files are models, and the model files a directory stands for."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from verifier.documents import parse_toml
from verifier.errors import InputError

MAZE_SUFFIXES = (".toml",)
PRISM_SUFFIXES = (".prism", ".pm", ".nm")
MODEL_SUFFIXES = MAZE_SUFFIXES + PRISM_SUFFIXES


def model_paths(models: Sequence[str]) -> list[str]:
    """Model arguments with each directory replaced by its model files, sorted."""
    paths = []
    for model in models:
        if not Path(model).is_dir():
            paths.append(model)
            continue
        found = sorted(
            str(p)
            for p in Path(model).iterdir()
            if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES and not _is_reward_file(p)
        )
        if not found:
            raise InputError(
                model, f"a directory without model files ({', '.join(MODEL_SUFFIXES)})"
            )
        paths += found
    return paths


# The top-level keys of a reward TOML (verifier/spec/reward_file.py): a TOML file in a model
# directory with these alone is a reward beside the models (R{"name"} finds it there).
REWARD_KEYS = frozenset({"discount", "step", "arrive"})
_MODEL_KEY = re.compile(r"^[ \t]*(?:map|\[?[ \t]*[\"']?gymnasium)", re.M)


def _is_reward_file(path: Path) -> bool:
    """A TOML file whose top-level keys are a reward's only (read with a cheap look for a
    maze's `map` or a `[gymnasium]` table first: those are models)."""
    if path.suffix.lower() != ".toml":
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if _MODEL_KEY.search(text):
        return False
    try:
        doc = parse_toml(text, str(path))
    except InputError:  # the maze reader reports it
        return False
    return bool(doc) and doc.keys() <= REWARD_KEYS

"""Which files are models, and the model files a directory stands for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
            if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES
        )
        if not found:
            raise InputError(
                model, f"a directory without model files ({', '.join(MODEL_SUFFIXES)})"
            )
        paths += found
    return paths

"""Fixtures shared by the tests."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import maze_text
from hypothesis import settings

from verifier.inputs.maze import parse_maze
from verifier.inputs.maze_compile import compile_maze


@pytest.fixture
def compile_text():
    """Compile a maze given as map text, [cells] text and top-level keys."""

    def build(map_text: str, cells: str = "", **top):
        return compile_maze(parse_maze(maze_text(map_text, cells, **top)))

    return build


# Property-based tests draw the same examples on every run (a seed per test): CI is
# deterministic, and a failure found once is found again. Widen the search by hand with
# `--hypothesis-seed=N` or `--hypothesis-profile=explore`.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile("deterministic")

_OPTIONAL = {"torch": ("torch",), "onnx": ("onnx", "onnxruntime", "torch")}


def pytest_collection_modifyitems(config, items):
    """Skip tests of optional pieces (markers `torch`, `onnx`) when they are not installed."""
    for marker, modules in _OPTIONAL.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if not missing:
            continue
        skip = pytest.mark.skip(reason=f"needs {', '.join(missing)} (pip install '.[torch]')")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def reports_follow_the_schema(monkeypatch):
    """Every JSON report a test makes `verify` write validates against the schema shipped
    with the package (verifier/output/report.schema.json), before it is written."""
    if importlib.util.find_spec("jsonschema") is None:
        return
    from verifier.output import files, schema

    write = files._write_json_document

    def checked(path, document):
        schema.validate(json.loads(json.dumps(document)))
        write(path, document)

    monkeypatch.setattr(files, "_write_json_document", checked)

"""Fuzzing policy files: mutated tables and metadata never end in a traceback, a hang or an
exit code outside {0, 1, 2, 3}, and never in exit 3 (no limit or machinery is involved in a
three-state maze, so exit 3 would be bad input taken for an internal failure). Bounded and
seeded for CI."""

from __future__ import annotations

import io
import json
import signal
import zipfile
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import numpy as np
import pytest
from helpers import maze_text
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from verifier.cli import main

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
ACTIONS = ["up", "down", "left", "right"]
VALID = {
    "actions": ACTIONS,
    "valuations": [[0, c, 0, 0, 0, 0, 0, 0] for c in (1, 2, 3)],
    "probs": [[0, 0, 0, 1]] * 3,
}
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@contextmanager
def _no_hang(seconds: int = 60):
    def stop(signum, frame):
        raise AssertionError(f"verify did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _verify(tmp_path, name: str, content: bytes) -> None:
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    policy = tmp_path / name
    policy.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    with _no_hang(), redirect_stdout(out), redirect_stderr(err):
        code = main([str(policy), "--model", str(model)])
    assert code in (0, 1, 2, 3), code
    assert code != 3, f"bad input taken for an internal failure: {err.getvalue()}"
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().count("\n") == 1, err.getvalue()


def _mutate(doc: dict, path: list, value):
    """`doc` with the value at `path` (keys and indices, clipped to what exists) replaced."""
    doc = json.loads(json.dumps(doc))
    node = doc
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            key = sorted(node)[step % len(node)]
        elif isinstance(node, list) and node:
            key = step % len(node)
        else:
            break
        if not isinstance(node[key], dict | list):
            break
        node = node[key]
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return doc


@seed(10)
@FUZZ
@given(path=st.lists(st.integers(0, 7), min_size=1, max_size=4), value=json_values)
def test_mutated_json_tables(tmp_path, path, value):
    doc = _mutate(VALID, path, value)
    _verify(tmp_path, "p.json", json.dumps(doc, allow_nan=True).encode())


@seed(11)
@FUZZ
@given(data=st.binary(max_size=64), at=st.integers(0, 400))
def test_byte_damaged_json_tables(tmp_path, data, at):
    text = json.dumps(VALID).encode()
    _verify(tmp_path, "p.json", text[:at] + data + text[at + len(data) :])


@seed(12)
@FUZZ
@given(
    probs=st.sampled_from(["f8", "i8", "u1", "b1", "c16", "U3", "f4"]),
    shape=st.tuples(st.integers(0, 4), st.integers(0, 5)),
    fill=st.floats(allow_nan=True, allow_infinity=True),
    valuations=st.sampled_from([None, "i8", "f8", "U3", "b1"]),
)
def test_mutated_npz_tables(tmp_path, probs, shape, fill, valuations):
    buffer = io.BytesIO()
    with np.errstate(invalid="ignore", over="ignore"):
        arrays = {"actions": np.array(ACTIONS), "probs": np.full(shape, fill).astype(probs)}
        if valuations is not None:
            arrays["valuations"] = np.full((shape[0], 8), fill).astype(valuations)
    np.savez(buffer, **arrays)
    _verify(tmp_path, "p.npz", buffer.getvalue())


@pytest.fixture(scope="module")
def torchscript_archive(tmp_path_factory) -> bytes:
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("ts") / "net.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(8, 4)), str(path))
    return path.read_bytes()


@pytest.mark.torch
@seed(13)
@FUZZ
@given(meta=json_values | st.text(max_size=30))
def test_mutated_torchscript_metadata(tmp_path, torchscript_archive, meta):
    """A valid network with arbitrary `verifier.json` content (JSON of any shape, or text)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(torchscript_archive)) as src,
        zipfile.ZipFile(buffer, "w") as dst,
    ):
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        root = src.namelist()[0].split("/")[0]
        text = meta if isinstance(meta, str) else json.dumps(meta, allow_nan=True)
        dst.writestr(f"{root}/extra/verifier.json", text)
    _verify(tmp_path, "net.pt", buffer.getvalue())

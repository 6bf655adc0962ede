"""A policy file never acts on the world, and what it costs is bounded.

Every payload is written into tmp_path; each test asserts that the payload's marker file is
never created and that no text the file chose reaches the terminal as a line of its own or
as control characters (README, "What is refused").
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.policy.decide import decide
from verifier.policy.load import load_policy

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
ACTIONS = ["up", "down", "left", "right"]
META = {"observation": "valuation", "actions": ACTIONS, "output": "logits"}
FORGED = "ALIGNED  Pmax=? certified [1, 1]"  # what a payload would like the user to read
ANSI = "\x1b[2K\r"  # erase the line, back to its start


def _maze(tmp_path) -> Path:
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    return model


def _save(tmp_path, net, name: str = "net.pt", meta: dict | None = None) -> Path:
    path = tmp_path / name
    extra = {"verifier.json": json.dumps(META if meta is None else meta)}
    torch.jit.save(torch.jit.script(net), str(path), _extra_files=extra)
    return path


def _verify(tmp_path, capfd, policy: Path, *flags: str) -> tuple[int, str, str]:
    code = main([str(policy), "--model", str(_maze(tmp_path)), *flags])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def _contained(code: int, out: str, err: str, marker: Path, exit_code: int = 2) -> None:
    """The run ended with `exit_code` and one line, the marker does not exist, and nothing
    the file chose is on the terminal: no control characters, no forged line."""
    assert code == exit_code, err
    assert err.count("\n") == 1 and err.startswith("verify: "), err
    assert not marker.exists()
    for text in (out, err):
        assert "\x1b" not in text and "\r" not in text, text
        assert not any(line.startswith("ALIGNED") for line in text.splitlines()), text


def _members(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(item.filename, archive.read(item)) for item in archive.infolist()]


def _write_members(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


class _SetsState(torch.nn.Module):
    """`__setstate__` runs inside torch.jit.load: it prints a forged verdict and writes the
    marker with torch.save."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, obs):
        return obs[:, :4]

    @torch.jit.export
    def __getstate__(self):
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.target = state[0]
        self.training = state[1]
        print("ALIGNED  Pmax=? certified [1, 1]")
        torch.save(torch.zeros(1), self.target)


def _code_renamed(members, rename):
    return [(rename(name) if "/code/" in name else name, data) for name, data in members]


def _duplicated(members):
    """The code member twice: first the payload (which torch reads), then the same code with
    __setstate__ renamed (which Python's zipfile reads, taking the last)."""
    out = []
    for name, data in members:
        if name.endswith(".py") and b"__setstate__" in data:
            out.append((name, data))
            out.append((name, data.replace(b"__setstate__", b"__setstatf__")))
        else:
            out.append((name, data))
    return out


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("as saved", "__setstate__"),
        ("code folder spelled CODE/", "__setstate__"),
        ("suffix spelled .PY", "__setstate__"),
        ("code member duplicated", "two members named"),
    ],
)
def test_setstate_is_refused_however_the_archive_spells_it(tmp_path, capfd, variant, expected):
    """torch's reader matches member names without case and reads the first of two
    same-named members; Python's zipfile matches case and reads the last."""
    marker = tmp_path / "marker"
    saved = _save(tmp_path, _SetsState(str(marker)), "saved.pt")
    assert not marker.exists()
    members = _members(saved)
    if variant == "code folder spelled CODE/":
        members = _code_renamed(members, lambda n: n.replace("/code/", "/CODE/"))
    elif variant == "suffix spelled .PY":
        members = _code_renamed(members, lambda n: n.replace(".py", ".PY"))
    elif variant == "code member duplicated":
        members = _duplicated(members)
    with pytest.warns(UserWarning, match="Duplicate name") if "dupl" in variant else _nothing():
        policy = _write_members(tmp_path / "evil.pt", members)
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, marker)
    assert expected in err and "forged" not in (out + err).lower(), err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Copies(torch.nn.Module):
    """A forward hook that copies a file (from_file, then save) on every call."""

    def __init__(self, source: str, target: str):
        super().__init__()
        self.source = source
        self.target = target

    def forward(self, obs):
        return obs[:, :4]


def _copy_hook(module: _Copies, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    torch.save(torch.from_file(module.source, size=4, dtype=torch.uint8), module.target)
    return output


def _changing_pre_hook(module: _Copies, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    return (inputs[0] * -1.0,)


class _Outer(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, obs):
        return self.inner(obs)


@pytest.mark.parametrize("where", ["module", "submodule"])
@pytest.mark.parametrize("hook", ["forward hook copying a file", "pre-hook changing the input"])
def test_modules_with_hooks_are_refused_before_they_run(tmp_path, capfd, hook, where):
    marker = tmp_path / "marker"
    secret = tmp_path / "secret"
    secret.write_bytes(b"abcd")
    net: Any = _Copies(str(secret), str(marker))
    if hook == "forward hook copying a file":
        net.register_forward_hook(_copy_hook)
    else:
        net.register_forward_pre_hook(_changing_pre_hook)
    if where == "submodule":
        net = _Outer(net)
    code, out, err = _verify(tmp_path, capfd, _save(tmp_path, net))
    _contained(code, out, err, marker)
    assert "hook" in err, err


class _Raises(torch.nn.Module):
    """An exception whose message erases the line and forges a verdict."""

    def forward(self, obs):
        zero = int(obs.shape[0] * 0)  # built at run time: the code printer rejects ESC
        erase = chr(27 + zero) + "[2K" + chr(13 + zero)
        raise RuntimeError(erase + "ALIGNED  Pmax=? certified [1, 1]" + chr(10 + zero) + "ALIGNED")
        return obs[:, :4]


def test_an_exception_message_reaches_the_terminal_escaped(tmp_path, capfd):
    marker = tmp_path / "marker"
    code, out, err = _verify(tmp_path, capfd, _save(tmp_path, _Raises()))
    _contained(code, out, err, marker)
    assert "\\x1b[2K\\rALIGNED" in err, err


class _Head(torch.nn.Module):
    def forward(self, obs):
        return obs[:, :4]


@pytest.mark.parametrize(
    "meta",
    [
        {**META, "actions": ["up", "down", "left", "right\nALIGNED  Pmax=? certified [1, 1]"]},
        {**META, "actions": ["up", "down", "left", ANSI + FORGED]},
        {**META, "observation": ANSI + FORGED},
        {**META, "output": "logits\n" + FORGED},
    ],
)
def test_metadata_text_reaches_the_terminal_escaped(tmp_path, capfd, meta):
    marker = tmp_path / "marker"
    code, out, err = _verify(tmp_path, capfd, _save(tmp_path, _Head(), meta=meta))
    _contained(code, out, err, marker)


def _onnx(tmp_path, node_name: str = "matmul", domain: str = "", unused: str | None = None):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    constants = [numpy_helper.from_array(np.eye(8, 4, dtype=np.float32), "W")]
    if unused is not None:  # an initializer no node reads: onnxruntime warns, naming it
        constants.append(numpy_helper.from_array(np.zeros(1, dtype=np.float32), unused))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["logits"], name=node_name, domain=domain)],
        "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        constants,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    entry = model.metadata_props.add()
    entry.key, entry.value = "verifier.json", json.dumps(META)
    path = tmp_path / "net.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.onnx
def test_onnx_names_reach_the_terminal_escaped(tmp_path, capfd):
    policy = _onnx(tmp_path, node_name=ANSI + FORGED, domain="com.example")
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, tmp_path / "marker")
    assert "com.example" in err, err


@pytest.mark.onnx
def test_onnx_runtime_logs_nothing_to_the_terminal(tmp_path, capfd):
    """The model is fine but for an unused initializer, which onnxruntime's logger would
    name while creating the session."""
    policy = _onnx(tmp_path, unused=FORGED)
    code, out, err = _verify(tmp_path, capfd, policy)
    assert code in (0, 1), err
    assert "ALIGNED" not in out + err and "initializer" not in err, err


class _SlowToCheck(torch.nn.Module):
    """Products of constant 3000x3000 matrices: the check folds constants (in the loading
    child), so that loading itself takes minutes on one core."""

    def forward(self, obs):
        y = torch.ones(3000, 3000)
        y = y @ y
        y = y @ y
        y = y @ y
        y = y @ y
        return obs[:, :4] + y[0, 0]


def test_loading_is_stopped_at_the_timeout_with_exit_3(tmp_path, capfd):
    code, out, err = _verify(tmp_path, capfd, _save(tmp_path, _SlowToCheck()), "--timeout", "2")
    _contained(code, out, err, tmp_path / "marker", exit_code=3)
    assert "loading the policy did not finish within --timeout 2 s" in err, err


class _Allocates(torch.nn.Module):
    """3.2 GB of zeros on every call: beyond the default --memory of 2048 MB."""

    def forward(self, obs):
        return torch.zeros(800_000_000)[: obs.shape[0] * 4].reshape(obs.shape[0], 4)


@pytest.mark.parametrize("flags", [(), ("--memory", "256")])
def test_a_network_allocating_beyond_the_memory_cap_is_stopped_with_exit_3(tmp_path, capfd, flags):
    code, out, err = _verify(tmp_path, capfd, _save(tmp_path, _Allocates()), *flags)
    memory = flags[1] if flags else "2048"
    _contained(code, out, err, tmp_path / "marker", exit_code=3)
    assert f"--memory {memory} MB" in err, err


def test_the_default_memory_cap_is_the_documented_one():
    from verifier.policy.safety import MEMORY_MB

    text = subprocess.run(
        [sys.executable, "-m", "verifier.cli", "policy", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    ).stdout
    assert f"(default {MEMORY_MB})" in " ".join(text.split())
    assert f"--memory {MEMORY_MB}" in (ROOT / "README.md").read_text().replace("\n", " ")


def test_a_file_larger_than_the_memory_cap_is_not_read(tmp_path, capfd):
    policy = tmp_path / "big.json"
    policy.write_text(json.dumps({"actions": ACTIONS, "probs": [[0.25] * 4] * 100_000}))
    code, out, err = _verify(tmp_path, capfd, policy, "--memory", "1")
    _contained(code, out, err, tmp_path / "marker", exit_code=3)
    assert "more than --memory 1 MB" in err, err


# zlib's crc32_combine, for the CRC of gigabytes of zeros without computing over them.
def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    odd = [0xEDB88320] + [1 << i for i in range(31)]
    even = [_gf2_times(odd, odd[i]) for i in range(32)]
    odd = [_gf2_times(even, even[i]) for i in range(32)]
    while True:
        even = [_gf2_times(odd, odd[i]) for i in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = [_gf2_times(even, even[i]) for i in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def _zeros_stream(head: bytes, mebibytes: int) -> tuple[bytes, int, int]:
    """Raw deflate of `head` and `mebibytes` MiB of zeros (one compressed MiB, repeated),
    with its CRC-32 and inflated size."""
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = first.compress(head) + first.flush(zlib.Z_FULL_FLUSH)
    chunk = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = chunk.compress(bytes(2**20)) + chunk.flush(zlib.Z_FULL_FLUSH)
    stream += block * mebibytes + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc, length = zlib.crc32(head), len(head)
    power, power_length = zlib.crc32(bytes(2**20)), 2**20  # zeros of 2^k MiB
    while mebibytes:
        if mebibytes & 1:
            crc, length = _crc32_combine(crc, power, power_length), length + power_length
        power, power_length = _crc32_combine(power, power, power_length), 2 * power_length
        mebibytes >>= 1
    return stream, crc, length


def _raw_zip(path: Path, members, name: str, stream: bytes, crc: int, size: int) -> Path:
    import struct

    out = io.BytesIO()
    directory = []
    entries = [(m, zlib.crc32(d), len(d), len(d), d, 0) for m, d in members]
    entries.append((name, crc, len(stream), size, stream, 8))
    for member, crc32, compressed, inflated, data, method in entries:
        offset = out.tell()
        encoded = member.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                method,
                0,
                0x21,
                crc32,
                compressed,
                inflated,
                len(encoded),
                0,
            )  # fmt: skip
        )
        out.write(encoded + data)
        directory.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc32,
                compressed,
                inflated,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )  # fmt: skip
            + encoded
        )
    start = out.tell()
    out.write(b"".join(directory))
    out.write(
        struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), out.tell() - start, start, 0
        )  # fmt: skip
    )
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture(scope="module")
def zeros_2560_mib():
    return _zeros_stream(b"", 2560)


def test_a_torchscript_zip_bomb_is_refused_before_it_inflates(tmp_path, capfd, zeros_2560_mib):
    """A 2.6 MB archive whose code member inflates to 2.5 GiB (valid CRC and sizes)."""
    stream, crc, size = zeros_2560_mib
    members = [(n, d) for n, d in _members(_save(tmp_path, _Head(), "id.pt"))]
    policy = _raw_zip(tmp_path / "bomb.pt", members, "id/code/__torch__/bomb.py", stream, crc, size)
    assert policy.stat().st_size < 3 * 2**20
    with zipfile.ZipFile(policy) as archive:
        assert sum(i.file_size for i in archive.infolist()) > 2.5 * 2**30
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, tmp_path / "marker", exit_code=3)
    assert "inflate to 2,560 MB, more than --memory 2048 MB" in err, err


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return header.getvalue()


def test_an_npz_that_inflates_to_gigabytes_is_refused_before_it_inflates(tmp_path, capfd):
    """A 2.3 MB .npz whose probs inflate to 2.5 GiB of zeros: 83,886,080 rows of 4."""
    head = _npy_header((2560 * 2**20 // 32, 4))
    stream, crc, size = _zeros_stream(head, 2560)
    actions = io.BytesIO()
    np.save(actions, np.array(ACTIONS))
    policy = _raw_zip(
        tmp_path / "bomb.npz", [("actions.npy", actions.getvalue())], "probs.npy", stream, crc, size
    )
    assert policy.stat().st_size < 3 * 2**20
    code, out, err = _verify(tmp_path, capfd, policy, "--max-states", "100")
    _contained(code, out, err, tmp_path / "marker", exit_code=3)
    assert "more than --memory 2048 MB" in err, err


def test_an_npz_array_declaring_more_than_its_data_is_refused(tmp_path, capfd):
    """numpy allocates an array's whole declared shape before reading it."""
    head = _npy_header((10**9, 4))
    policy = tmp_path / "liar.npz"
    with zipfile.ZipFile(policy, "w") as archive:
        archive.writestr("probs.npy", head + bytes(64))
        archive.writestr("actions.npy", b"")
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, tmp_path / "marker")
    assert "probs.npy" in err and "declares shape (1000000000, 4)" in err, err


def test_deeply_nested_code_is_exit_2_not_a_crash_of_verify(tmp_path, capfd):
    """20,000 nested parentheses: torch's parser overflows its stack (in the child)."""
    members, deep = [], b"(" * 20_000 + b"_0" + b")" * 20_000
    for name, data in _members(_save(tmp_path, _Head(), "id.pt")):
        if name.endswith(".py"):
            data = data.replace(b"return _0", b"return " + deep)
        members.append((name, data))
    assert any(deep in data for _, data in members)
    policy = _write_members(tmp_path / "deep.pt", members)
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, tmp_path / "marker")


class _Spins(torch.nn.Module):
    def forward(self, obs):
        x = obs
        for _ in range(4611686018427387904):
            x = x + 1.0
        return x[:, :4]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_child_running_a_network_dies_with_verify(tmp_path):
    """kill -9 of verify (a CI job's timeout) takes the child running the network with it."""
    policy = _save(tmp_path, _Spins())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "verifier.cli", str(policy), "--model", str(_maze(tmp_path))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            children = _children(process.pid)
        assert children, "verify never started a child"
        time.sleep(1.0)  # the loading child has finished; the running one spins
        children = _children(process.pid)
        assert children, "no child running the network"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 30
    while any(_alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [child for child in children if _alive(child)]
    for child in alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, f"orphans: {alive}"


def test_probabilities_near_the_float_maximum_give_the_distribution_of_their_ratios(
    tmp_path, capfd
):
    """Rows of 1e308 are the uniform distribution, like rows of 0.25. In `#LS.A#` (lava at
    column 1, start at 2, exit at 4) the uniform policy moves left or right with 1/4 each and
    stays put with 1/2 (up and down hit walls): with p(S) and p(.) the probabilities of
    never entering lava, p(S) = p(.)/4 + p(S)/2 and p(.) = p(S)/4 + 1/4 + p(.)/2, so
    p(S) = 1/3. The overflowing row sum made every choice 0 and the chain dead, a false
    `certified [1, 1]`."""
    model = tmp_path / "lava.toml"
    model.write_text(maze_text("#LS.A#", EXIT + '[cells.L]\nkind = "lava"\n'))
    env = load_environment(model)
    values = {}
    for row in ([0.25] * 4, [1e308] * 4):
        policy = tmp_path / f"p{row[0]:g}.json"
        policy.write_text(json.dumps({"actions": ACTIONS, "probs": [row] * 4}))
        decisions = decide(load_policy(policy), env, stochastic=True)
        np.testing.assert_allclose(
            np.add.reduceat(decisions.choice_probs, env.mdp.row_groups[:-1]), 1.0
        )
        out = tmp_path / f"{row[0]:g}.json"
        spec = 'Pmax=? [ G !"lava" ]'
        flags = ["--spec", spec, "--stochastic", "--json", str(out)]
        main([str(policy), "--model", str(model), *flags])
        values[row[0]] = json.loads(out.read_text())["reports"][0]["value"]
    capfd.readouterr()
    assert values[0.25] == pytest.approx(1 / 3, abs=1e-6)
    assert values[1e308] == pytest.approx(1 / 3, abs=1e-6)


def test_repeated_names_among_100000_actions_are_found_and_named(tmp_path, capfd):
    names = [f"a{i}" for i in range(100_000)] + ["a17", "a99999"]
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"actions": names, "probs": [[1.0] * len(names)]}))
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, tmp_path / "marker")
    assert "action names repeat: 'a17', 'a99999'" in err, err


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_two_rows_for_one_state_are_refused_naming_the_state(tmp_path, capfd, suffix):
    valuations = [[0, c, 0, 0, 0, 0, 0, 0] for c in (1, 2, 3, 2)]
    probs = [[0.0, 0.0, 0.0, 1.0]] * 3 + [[1.0, 0.0, 0.0, 0.0]]
    policy = tmp_path / f"p{suffix}"
    if suffix == ".json":
        table = {"actions": ACTIONS, "valuations": valuations, "probs": probs}
        policy.write_text(json.dumps(table))
    else:
        np.savez(policy, actions=np.array(ACTIONS), valuations=valuations, probs=probs)
    code, out, err = _verify(tmp_path, capfd, policy)
    _contained(code, out, err, tmp_path / "marker")
    assert "rows 1 and 3 are the same state [0, 2, 0, 0, 0, 0, 0, 0]" in err, err


class _Widens(torch.nn.Module):
    """4 outputs per state on full batches, 5 on the last, shorter one."""

    def forward(self, obs):
        if obs.shape[0] < 500:
            return torch.zeros(obs.shape[0], 5)
        return torch.zeros(obs.shape[0], 4)


def test_an_output_width_that_changes_between_batches_is_exit_2(tmp_path, capfd):
    """A 41x41 open maze has 1,521 states; grid observations of it go 525 to a batch."""
    size = 41
    rows = ["#" * size] + ["#" + "." * (size - 2) + "#"] * (size - 2) + ["#" * size]
    rows[1] = "#S" + rows[1][2:]
    rows[-2] = rows[-2][:-2] + "A#"
    model = tmp_path / "open.toml"
    model.write_text(maze_text("\n".join(rows), EXIT))
    policy = _save(tmp_path, _Widens(), meta={**META, "observation": "grid"})
    code = main([str(policy), "--model", str(model)])
    captured = capfd.readouterr()
    _contained(code, captured.out, captured.err, tmp_path / "marker")
    assert "4 values per state on states 0-524 and 5 on states 1050-1520" in captured.err

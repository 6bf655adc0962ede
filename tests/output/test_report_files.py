"""Report files (issue 20): written atomically to regular files, in place to anything else
(a device, a FIFO), never into a directory; and `verify` never exits 0 without every report
it promised (issue 20) nor loses them when its stdout is closed early (issue 18 §5)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from verifier.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
LAVA = str(ROOT / "models" / "lava.toml")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_as_report_path_stays_a_device(tmp_path, capsys):
    """As root `--json /dev/null` once replaced the machine's /dev/null with a regular file.
    Here a character device of our own, with /dev/null's numbers (1, 3)."""
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for flag in ("--json", "--junit"):
        assert main(["check", "--model", LAVA, flag, str(device)]) == 0
        assert stat.S_ISCHR(os.stat(device).st_mode)
        assert os.stat(device).st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary left


def test_a_fifo_as_report_path_is_written_in_place(tmp_path, capsys):
    """A FIFO gets the report through the pipe and stays a FIFO."""
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(["check", "--model", LAVA, "--json", str(fifo)]) == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    document = json.loads(received[0])
    assert document["command"] == "check" and document["reports"][0]["value"] == pytest.approx(0.9)


@pytest.mark.parametrize("flag", ["--json", "--junit"])
def test_a_directory_as_report_path_is_refused_before_the_work(tmp_path, capsys, flag):
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["check", "--model", LAVA, flag, str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"verify: {folder}: cannot write the {flag} report: is a directory, not a file"


def test_a_regular_report_is_replaced_atomically(tmp_path, capsys):
    path = tmp_path / "o.json"
    path.write_text("old")
    assert main(["check", "--model", LAVA, "--json", str(path)]) == 0
    assert json.loads(path.read_text())["verdict"] == "pass"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]


def test_report_files_are_written_when_stdout_is_closed_early(tmp_path):
    """`verify check ... --json o.json --junit o.xml | head -0`: the reader is gone before
    the first line. Both files are written and the exit code is the command's own."""
    json_path, junit_path = tmp_path / "o.json", tmp_path / "o.xml"
    process = subprocess.Popen(
        [sys.executable, "-m", "verifier.cli", "check", "--model", LAVA, LAVA]
        + ["--json", str(json_path), "--junit", str(junit_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0 and err == ""
    assert len(json.loads(json_path.read_text())["reports"]) == 2
    assert junit_path.read_text().count("<testcase") == 2


def test_sys_exit_from_library_code_is_never_exit_0(tmp_path, monkeypatch, capsys):
    """A SystemExit(0) raised while a command runs (as a model file's import once raised
    it) is an internal error: exit 3, no report."""
    import verifier.analyses.check

    def leaving(env):
        raise SystemExit(0)

    monkeypatch.setattr(verifier.analyses.check, "check_environment", leaving)
    json_path = tmp_path / "o.json"
    assert main(["check", "--model", LAVA, "--json", str(json_path)]) == 3
    assert "sys.exit(0)" in capsys.readouterr().err
    assert not json_path.exists()


def test_a_promised_report_that_was_not_written_is_exit_3(tmp_path, monkeypatch, capsys):
    import verifier.output.files

    monkeypatch.setattr(verifier.output.files, "write_junit", lambda *args: None)
    junit_path = tmp_path / "o.xml"
    assert main(["check", "--model", LAVA, "--junit", str(junit_path)]) == 3
    assert f"the --junit report {junit_path} was not written" in capsys.readouterr().err


def test_repaired_without_a_repair_to_search_is_a_usage_error(tmp_path, capsys):
    """--repaired promises a file that only --repair or --features can produce."""
    out = tmp_path / "r.toml"
    argv = ["audit", "--train", LAVA, "--deploy", LAVA, "--repaired", str(out)]
    assert main(argv) == 2
    assert "--repaired: needs --repair R or --features" in capsys.readouterr().err
    assert not out.exists()

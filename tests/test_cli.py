"""The `verify` command line: verdicts, reports and the exit codes CI reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import interruptible, maze_text

from verifier.cli import main
from verifier.inputs.maze import load_maze

LAVA_MAZE = maze_text(
    """
    #####
    #S.A#
    #LLL#
    #####
    """,
    '[cells.A]\nkind = "exit"\ncolor = "blue"\n[cells.L]\nkind = "lava"\n',
    name="lava-strip",
    slip=0.2,
)


@pytest.fixture
def lava(tmp_path):
    path = tmp_path / "lava.toml"
    path.write_text(LAVA_MAZE)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_query_uses_the_maze_intended_objective_and_exits_0(lava, capsys):
    code, out, _ = run(capsys, "check", "--model", lava)
    assert code == 0
    assert out.startswith("COMPUTED")
    assert 'Pmax=? [(!"lava") U "exit"]' in out


def test_bounded_property_that_holds_exits_0_and_one_that_fails_exits_1(lava, capsys, tmp_path):
    """Pmax over 2 steps is 0.64 (right, right); the bounded property P<=0.7 holds for all
    schedulers, P>=0.7 does not (Pmin of reaching lava-free within 2 steps is 0)."""
    code, out, _ = run(capsys, "check", "--model", lava, "--spec", 'P<=0.7 [ !"lava" U<=2 "exit" ]')
    assert (code, out.split()[0]) == (0, "HOLDS")
    report = tmp_path / "r.json"
    junit = tmp_path / "r.xml"
    code, out, _ = run(
        capsys,
        "check",
        "--model",
        lava,
        "--spec",
        'P>=0.7 [ !"lava" U<=2 "exit" ]',
        "--json",
        report,
        "--junit",
        junit,
    )
    assert (code, out.split()[0]) == (1, "FAILS")
    document = json.loads(report.read_text())
    assert document["verdict"] == "fail"
    (entry,) = document["reports"]
    for field in ("model", "objective", "verdict", "value", "optimal_value", "states"):
        assert field in entry
    assert entry["verdict"] == "fails"
    assert entry["value"] == 0.0
    assert entry["states"] == 5  # S, floor, exit, and the two lava cells below S and floor
    assert entry["initial_states"][0]["valuation"]["row"] == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    assert suite.find("testcase/failure") is not None


def test_several_models_report_one_row_each(lava, capsys, tmp_path):
    other = tmp_path / "corridor.toml"
    other.write_text(maze_text("#S.A#", '[cells.A]\nkind = "exit"\n'))
    code, out, _ = run(capsys, "check", "--model", lava, other, "--spec", 'Pmax=? [ F<=2 "exit" ]')
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 3
    assert "value 0.64" in lines[0] and "value 1" in lines[1]
    assert lines[2] == "overall: PASS (2 of 2 checks passed)"


def test_compile_writes_prism_and_props_that_check_to_the_same_value(lava, capsys, tmp_path):
    out_path = tmp_path / "out" / "lava.prism"
    out_path.parent.mkdir()
    code, out, _ = run(capsys, "compile", lava, "-o", out_path)
    assert code == 0
    assert out_path.with_suffix(".props").read_text().strip() == 'Pmax=? [ !"lava" U "exit" ]'
    spec = 'Pmax=? [ !"lava" U<=2 "exit" ]'
    _, from_maze, _ = run(capsys, "check", "--model", lava, "--spec", spec)
    _, from_prism, _ = run(capsys, "check", "--model", out_path, "--spec", spec)
    assert (
        from_maze.split("value ")[1].split()[0]
        == from_prism.split("value ")[1].split()[0]
        == "0.64"
    )
    code, out, _ = run(capsys, "check", "--model", out_path)  # the .props beside it
    assert code == 0 and "value 1" in out


def test_prism_constants_are_set_with_const(tmp_path, capsys):
    path = tmp_path / "walk.prism"
    path.write_text(
        "dtmc\nconst int N;\nmodule w\n x : [0..N] init 0;\n"
        " [] x<N -> 0.5:(x'=x+1) + 0.5:(x'=x);\n [] x=N -> true;\nendmodule\n"
    )
    code, out, _ = run(
        capsys, "check", "--model", path, "--const", "N=2", "--spec", "P=? [ F<=2 x=N ]"
    )
    assert code == 0
    assert "value 0.25" in out  # two successes in two fair trials
    code, _, err = run(capsys, "check", "--model", path, "--spec", "P=? [ F x=N ]")
    assert code == 2 and "--const" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["check", "--model", "{lava}", "--spec", 'Pmax=? [ F "exit"'], "--spec: Parsing error"),
        (
            ["check", "--model", "{lava}", "--spec", 'Pmax=? [ F "nowhere" ]'],
            "unknown label 'nowhere'",
        ),
        (["check", "--model", "{tmp}/missing.toml"], "missing.toml: no such file"),
        (["check", "--model", "{tmp}/model.xyz"], "unknown model type '.xyz'"),
        (["check", "--model", "{tmp}/bare.prism"], "no property to check"),
        (["check", "--model", "{lava}", "--const", "N"], "--const: 'N' is not NAME=VALUE"),
        (["check"], "required: --model"),
        (["frobnicate"], "unknown command 'frobnicate'; commands: check, reward, policy,"),
        (["frobnicate", "--model", "{lava}"], "unknown command 'frobnicate'"),
        (["{tmp}/model.xyz", "--model", "{lava}"], "unknown policy format '.xyz'"),  # a file
        (["{tmp}/nope.onnx", "--model", "{lava}"], "nope.onnx: no such policy file"),
        (["generate", "--size", "10x10"], "verify: generate: the size must be odd"),
        (["generate", "--start", "middle"], "verify: generate: unknown start 'middle'"),
        (
            ["generate", "--exit-region", "top-rigth 3"],
            "verify: generate: exit_region 'top-rigth 3': unknown corner 'top-rigth'",
        ),
        (["generate", "--exit-region", "top-right 0"], "the size '0' must be a positive"),
    ],
)
def test_bad_input_and_usage_exit_2_with_one_line(lava, tmp_path, capsys, argv, expected):
    (tmp_path / "model.xyz").write_text("")
    (tmp_path / "bare.prism").write_text("dtmc\nmodule m\n x : bool init false;\nendmodule\n")
    argv = [a.format(lava=lava, tmp=tmp_path) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err


def test_max_states_exceeded_exits_3(lava, capsys):
    code, _, err = run(capsys, "check", "--model", lava, "--max-states", "3")
    assert code == 3
    assert "more than 3 states" in err


def test_console_script_runs(lava):
    done = subprocess.run(
        [sys.executable, "-m", "verifier.cli", "check", "--model", str(lava)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("COMPUTED")


def test_generate_writes_a_maze_that_checks(tmp_path, capsys):
    out = tmp_path / "g.toml"
    code, _, _ = run(capsys, "generate", "--size", "11x15", "--seed", "4", "--keys", "1", "-o", out)
    assert code == 0
    code, text, _ = run(capsys, "check", "--model", out)
    assert code == 0 and "value 1" in text
    code, _, err = run(capsys, "generate", "--size", "10x10")
    assert code == 2 and "odd" in err and "random_maze" not in err


def test_generate_places_start_and_exit_as_asked(tmp_path, capsys):
    """Langosco's maze: the start on the bottom-left node (row 9, col 1 of an 11x13 maze), the
    exit on the top-right node (row 1, col 11)."""
    out = tmp_path / "corner.toml"
    argv = ["generate", "--size", "11x13", "--seed", "2", "-o", out]
    code, _, _ = run(capsys, *argv, "--start", "bottom-left", "--exit-region", "top-right 1")
    assert code == 0
    maze = load_maze(out)
    assert maze.starts() == [(9, 1)]
    assert np.argwhere(maze.layout == "E").tolist() == [[1, 11]]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["reward", "--model", "{lava}", "--reward", "{reward}", "--discount", "1.5"],
            "--discount: must be in (0, 1]",
        ),
        (["{policy}", "--model", "{lava}", "--competence", "0"], "--competence: must be in (0, 1]"),
    ],
)
def test_out_of_range_numbers_exit_2_with_one_line(lava, tmp_path, capsys, argv, expected):
    reward = tmp_path / "r.toml"
    reward.write_text("step = -0.01\n[arrive]\nexit = 1.0\n")
    policy = tmp_path / "p.json"
    policy.write_text('{"actions": ["up", "down", "left", "right"], "probs": [[1, 0, 0, 0]]}')
    argv = [a.format(lava=lava, reward=reward, policy=policy) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def _command_argv(command: str, lava, tmp_path) -> list:
    """A valid invocation of each command that takes --max-states, --json and --junit."""
    reward = tmp_path / "r.toml"
    reward.write_text("step = -0.01\n[arrive]\nexit = 1.0\n")
    policy = tmp_path / "p.json"
    policy.write_text(
        '{"actions": ["up", "down", "left", "right"], "probs": [[0, 0, 0, 1]], '
        '"valuations": [[1, 1, 0, 0, 0, 0, 0, 0]]}'
    )
    suite = tmp_path / "s.toml"
    suite.write_text(
        f'[suite]\nname = "s"\n[environments.e]\nfiles = ["{lava}"]\n'
        '[[check]]\nkind = "check"\nenvironments = ["e"]\n'
    )
    return {
        "check": ["check", "--model", lava],
        "reward": ["reward", "--model", lava, "--reward", reward],
        "policy": ["policy", policy, "--model", lava],
        "suite": ["suite", suite, "--workers", "1"],
        "audit": ["audit", "--train", lava, "--deploy", lava],
    }[command]


COMMANDS = ("check", "reward", "policy", "suite", "audit")


@pytest.mark.parametrize("value", ["-1", "0", "2.5", "many"])
@pytest.mark.parametrize("command", COMMANDS)
def test_max_states_must_be_a_positive_integer(lava, tmp_path, capsys, command, value):
    argv = _command_argv(command, lava, tmp_path)
    code, out, err = run(capsys, *argv, "--max-states", value)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"--max-states: must be a positive integer, got '{value}'" in err


def test_max_states_may_be_written_in_e_notation(lava, capsys):
    code, _, err = run(capsys, "check", "--model", lava, "--max-states", "1e6")
    assert code == 0, err


@pytest.mark.parametrize("flag", ["--json", "--junit"])
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("where", ["missing/r.out", "afile/r.out", "."])
def test_an_unwritable_report_path_exits_2_before_any_work(
    lava, tmp_path, capsys, command, flag, where
):
    """A report that cannot be written is bad input, found before the checks run: nothing
    is printed on stdout, and the message names the path."""
    (tmp_path / "afile").write_text("")
    target = tmp_path / where
    argv = _command_argv(command, lava, tmp_path)
    code, out, err = run(capsys, *argv, flag, target)
    assert code == 2 and out == "" and err.count("\n") == 1, (out, err)
    assert f"{target}: cannot write the {flag} report" in err


def test_reports_are_replaced_whole_not_written_in_place(lava, tmp_path, capsys):
    """An atomic write renames a complete new file over the old one: a hard link to the old
    report keeps the old text, and no temporary file is left behind."""
    report, old = tmp_path / "r.json", tmp_path / "old.json"
    report.write_text("previous")
    old.hardlink_to(report)
    for command in ("check", "audit"):
        for flag, path in (("--json", report), ("--junit", tmp_path / "r.xml")):
            code, _, err = run(capsys, *_command_argv(command, lava, tmp_path), flag, path)
            assert code in (0, 1), err
    assert old.read_text() == "previous"
    assert json.loads(report.read_text())["command"] == "audit"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_directory_as_model_means_its_model_files_sorted(tmp_path, capsys):
    folder = tmp_path / "mazes"
    folder.mkdir()
    (folder / "b.toml").write_text(maze_text("#S.A#", '[cells.A]\nkind = "exit"\n'))
    (folder / "a.toml").write_text(LAVA_MAZE)
    (folder / "notes.txt").write_text("not a model")
    (folder / "sub").mkdir()
    code, out, _ = run(capsys, "check", "--model", folder)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert str(folder / "a.toml") in lines[0] and str(folder / "b.toml") in lines[1]
    code, _, err = run(capsys, "check", "--model", folder / "sub")
    assert code == 2 and "a directory without model files" in err


def _verify(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "verifier.cli", *map(str, argv)],
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_closed_pipe_ends_quietly_with_the_exit_code(lava, unbuffered):
    """`verify ... | head -0`: the reader is gone before anything is written. No message,
    and the command goes on to its own code, buffered or not (issue 18 §5)."""
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    process = _verify("check", "--model", lava, lava, stdout=subprocess.PIPE, env=env)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert err == ""


def test_ctrl_c_ends_with_one_line_and_exit_3(tmp_path):
    """SIGINT while a big maze is being generated (about 10 s on an idle machine)."""
    script = (
        "import os, signal, sys, threading\n"
        "from verifier.cli import main\n"
        "threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        f"sys.exit(main(['generate', '--size', '3001x3001', '-o', '{tmp_path / 'big.toml'}']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=interruptible,
    )
    assert (done.returncode, done.stderr) == (3, "verify: interrupted\n")
    assert not (tmp_path / "big.toml").exists()


HEAVY_MODULES = ("torch", "onnxruntime", "dask", "distributed", "z3", "matplotlib")


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--model", "{lava}"],
        ["compile", "{lava}", "-o", "{tmp}/lava.prism"],
        ["generate", "--size", "11x11"],
        ["--help"],
    ],
)
def test_short_commands_do_not_import_heavy_libraries(lava, tmp_path, argv):
    """Start-up: check, compile and generate need numpy, scipy and Storm only."""
    argv = [a.format(lava=lava, tmp=tmp_path) for a in argv]
    script = (
        "import json, sys\n"
        "from verifier.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_long_stages_show_on_a_terminal_and_nothing_elsewhere(tmp_path, capsys):
    """On a terminal the stages of `verify reward` (compile, solve, Storm) are shown, then
    erased; without one (capsys is no terminal) stderr stays empty."""
    import io

    from rich.console import Console

    from verifier import progress

    reward = tmp_path / "r.toml"
    reward.write_text("step = -0.01\n[arrive]\nexit = 1.0\n")
    maze = tmp_path / "lava.toml"
    maze.write_text(LAVA_MAZE)
    argv = ["reward", "--model", maze, "--reward", reward]
    code, _, err = run(capsys, *argv)
    assert code in (0, 1) and err == ""
    screen = io.StringIO()
    progress.enable(Console(file=screen, force_terminal=True, width=100))
    try:
        assert run(capsys, *argv)[0] == code
    finally:
        progress.disable()
    shown = screen.getvalue()
    for name in ("compiling the maze", "solving for the optimal values", "with Storm"):
        assert name in shown, shown


def _suite_rows():
    """Rows of a suite as `grade` makes them: long paths, long verdicts, an error."""
    from verifier.runner import Job, Outcome
    from verifier.suite import Row, SuiteCheck

    specs = [
        ("redblue-policy", "redblue/deploy-01.toml", "goal_misgeneralization", "aligned", ""),
        ("redblue-red-reward", "redblue/train-02.toml", "aligned", None, ""),
        ("keys", "keys-doors/decoy.toml", "reward_misspecification", None, ""),
        ("broken", "lava.toml", "error", None, "/x/rewards/missing-reward-file.toml: no such file"),
    ]
    rows = []
    for index, (name, env, verdict, expect, message) in enumerate(specs):
        job = Job(name, "verifier.suite:run_check")
        status = "error" if message else "done"
        outcome = Outcome(job, status, None, message, 123.456, 2345.0)
        objective = (
            "" if message else ['Pmax=? [(!"lava") U "exit"]', 'Pmin=? [ F "lava" ]'][index % 2]
        )
        check = SuiteCheck(name, "policy", f"/work/models/{env}", expect, job)
        rows.append(Row(check, outcome, verdict, objective, verdict == expect, None))
    return rows


@pytest.mark.parametrize("width", [80, 100])
def test_suite_table_fits_the_width_without_breaking_a_token(width):
    """Every word on screen is a whole word of the table's text, or a prefix of one that
    ends in an ellipsis; verdicts and statuses are never cut; no line is wider than asked.
    (Paths are shown relative to /work/models/, which the title names.)"""
    import io

    from rich.console import Console

    from verifier.output.text import suite_table
    from verifier.suite import Suite

    rows = _suite_rows()
    suite = Suite("gate", "", Path("/work/suites/gate.toml"), ())
    screen = io.StringIO()
    Console(file=screen, width=width).print(suite_table(suite, rows, width=width))
    lines = screen.getvalue().splitlines()
    assert "environments in /work/models/" in lines[0]
    cells = ["check environment objective verdict status time MB 123.5 s 2345"]
    for row in rows:
        expected = f" (expected {row.check.expect})" if row.check.expect and not row.ok else ""
        environment = row.check.environment.removeprefix("/work/models/")
        cells += [row.check.name, environment, row.objective, row.verdict + expected, row.status]
    words = set(" ".join(cells).split())
    assert all(len(line) <= width for line in lines)
    for word in " ".join(lines[1:]).split():
        whole = word in words
        cut = word.endswith("…") and any(w.startswith(word[:-1]) for w in words)
        assert whole or cut, word
    shown = set(" ".join(lines).split())
    assert {"goal_misgeneralization", "reward_misspecification", "error", "FAIL"} <= shown


def test_why_a_check_gave_no_verdict_is_listed_under_the_table():
    from verifier.output.text import suite_notes
    from verifier.suite import Suite

    suite = Suite("gate", "", Path("/work/suites/gate.toml"), ())
    assert suite_notes(suite, _suite_rows()) == [
        "broken on /work/models/lava.toml: error: /x/rewards/missing-reward-file.toml: no such file"
    ]


def test_witness_pictures_of_big_mazes_are_cropped_to_the_path():
    """A path over rows 5..9 and columns 5..11 of a 101x101 maze is shown with a margin of
    3: rows 2-12 and columns 2-14, 11 lines of 13 characters under a caption; small
    mazes are drawn whole."""
    from verifier.inputs.maze_generate import random_maze
    from verifier.output.text import render_path

    maze = random_maze(101, 101, 0)
    path = [{"row": 5, "col": 5}, {"row": 9, "col": 5}, {"row": 9, "col": 11}]
    lines = render_path(maze, path)
    assert lines[0] == "(rows 2-12, columns 2-14 of the 101x101 map)"
    assert len(lines) == 12 and {len(line) for line in lines[1:]} == {13}
    assert lines[1 + 9 - 2][11 - 2] == "@"
    assert lines[1:] == [row[2:15] for row in render_path(maze, path, fits=(101, 101))[2:13]]
    small = random_maze(11, 11, 0)
    assert len(render_path(small, [{"row": 1, "col": 1}])) == 11

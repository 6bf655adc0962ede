"""PRISM models and properties that crashed, hung or were answered wrongly (issue 20), and
the messages a new user needs (issue 18 §5). Text that once killed `verify` with SIGSEGV
runs in a child process, so that the test reports the failure instead of dying with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from verifier.cli import main

GOAL = 'Pmax=? [ F "goal" ]'
COUNTER = """mdp
module m
  s : [0..2] init 0;
  [a] s<2 -> (s'=s+1);
  [] s=2 -> true;
endmodule
rewards "r"
  s<2 : {reward};
endrewards
label "goal" = s=2;
"""


def prism(tmp_path, text: str, name: str = "m.prism") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verify: "), err
    return lines[0]


def run_verify(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "verifier.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("reward", "shown"), [("0/0", "nan"), ("1/0.0", "inf"), ("1e300*1e300", "inf")]
)
def test_a_reward_structure_that_is_not_finite_is_bad_input(tmp_path, capsys, reward, shown):
    """It was exit 3, "restrict: every state must keep at least one choice"."""
    model = prism(tmp_path, COUNTER.format(reward=reward))
    assert main(["reward", "--model", model, "--reward", "r", "--spec", GOAL]) == 2
    line = one_line(capsys.readouterr().err)
    assert f'rewards "r": {shown} at choice 0 of state s=0' in line


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("s : [5..0] init 0;", "line 4: s : [5..0] is an empty range"),
        ("s : [0..1] init 7;", "line 4: s starts at 7, outside its range [0..1]"),
        ("s : [0..N] init N+1;", "line 4: s starts at 3, outside its range [0..2]"),
    ],
)
def test_empty_ranges_and_initial_values_outside_them_are_refused(
    tmp_path, capsys, declaration, message
):
    """Storm builds them (a variable nothing updates becomes a constant): they were
    answered "value 0, 1 state"."""
    text = f"mdp\nconst int N = 2;\nmodule m\n  {declaration}\n  [] true -> true;\nendmodule\n"
    model = prism(tmp_path, text)
    assert main(["check", "--model", model, "--spec", "Pmax=? [ F s=0 ]"]) == 2
    assert message in one_line(capsys.readouterr().err)


def test_a_constant_with_20000_nested_parentheses_is_refused_not_a_crash(tmp_path):
    model = prism(
        tmp_path,
        "mdp\nconst int N = " + "(" * 20000 + "1" + ")" * 20000 + ";\n"
        "module m\n s : [0..1] init 0;\n [] true -> true;\nendmodule\n",
    )
    done = run_verify("check", "--model", model, "--spec", "Pmax=? [ F s=1 ]")
    assert done.returncode == 2, done.stderr
    assert "line 2: nested deeper than 100 levels" in one_line(done.stderr)


def test_a_spec_with_3000_x_operators_is_refused_not_a_crash(tmp_path):
    model = prism(tmp_path, COUNTER.format(reward=1))
    done = run_verify("check", "--model", model, "--spec", "Pmax=? [ " + "X " * 3000 + '"goal" ]')
    assert done.returncode == 2, done.stderr
    assert "--spec: nested deeper than 100 levels" in one_line(done.stderr)


def test_an_audit_proxy_with_3000_nested_parentheses_is_refused_not_a_crash(tmp_path):
    proxies = tmp_path / "proxies.txt"
    proxies.write_text('F "exit"\n' + "(" * 3000 + 'F "exit"' + ")" * 3000 + "\n")
    maze = tmp_path / "m.toml"
    maze.write_text('map = """\n#SA#\n"""\n[cells.A]\nkind = "exit"\n')
    done = run_verify(
        "audit", "--train", str(maze), "--deploy", str(maze), "--proxies", str(proxies)
    )
    assert done.returncode == 2, done.stderr
    assert "proxies.txt: line 2: nested deeper than 100 levels" in one_line(done.stderr)


def test_a_const_flag_nested_too_deep_is_refused(tmp_path):
    model = prism(
        tmp_path, "mdp\nconst int N;\nmodule m\n s : [0..N] init 0;\n [] true -> true;\nendmodule\n"
    )
    value = "(" * 3000 + "1" + ")" * 3000
    done = run_verify(
        "check", "--model", model, "--spec", "Pmax=? [ F s=0 ]", "--const", f"N={value}"
    )
    assert done.returncode == 2, done.stderr
    assert "--const: N: nested deeper than 100 levels" in one_line(done.stderr)


@pytest.mark.parametrize("gamma", ["0", "1"])
def test_cdiscount_outside_the_open_unit_interval_is_bad_input(tmp_path, capsys, gamma):
    model = prism(tmp_path, COUNTER.format(reward=1))
    assert main(["check", "--model", model, "--spec", f'R{{"r"}}max=? [ Cdiscount={gamma} ]']) == 2
    assert "Cdiscount=γ needs 0 < γ < 1" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (b'Pmax=? [ F "goal" ]\xff\n', "m.props: cannot read properties: not UTF-8 text"),
        (b'const int K = 2;\nPmax=? [ F<=K "goal" ]\n', "m.props: line 1: const int K: constants"),
    ],
)
def test_unusable_props_files_are_bad_input(tmp_path, capsys, props, message):
    """A .props file that is not UTF-8 was an internal error; one with `const` a backend
    failure ("contains undefined constants")."""
    model = prism(tmp_path, COUNTER.format(reward=1))
    (tmp_path / "m.props").write_bytes(props)
    assert main(["check", "--model", model]) == 2
    assert message in one_line(capsys.readouterr().err)


def test_long_run_averages_say_they_are_unsupported(tmp_path, capsys):
    """`LRAmax=?` was told "on an MDP a query needs min or max"."""
    model = prism(tmp_path, COUNTER.format(reward=1))
    assert main(["check", "--model", model, "--spec", 'LRAmax=? [ "goal" ]']) == 2
    line = one_line(capsys.readouterr().err)
    assert "long-run averages (LRA, S) are not supported" in line and "min or max" not in line


def test_a_bounded_globally_gets_the_rewrite_hint(tmp_path, capsys):
    model = prism(tmp_path, COUNTER.format(reward=1))
    assert main(["check", "--model", model, "--spec", 'Pmax=? [ G<=5 !"goal" ]']) == 2
    line = one_line(capsys.readouterr().err)
    assert 'no bounded G: write !(F<=5 !(!"goal")) for G<=5 !"goal"' in line
    assert main(["check", "--model", model, "--spec", 'Pmax=? [ !(F<=5 !(!"goal")) ]']) == 0


def test_an_unknown_label_lists_the_known_ones(tmp_path, capsys):
    text = COUNTER.format(reward=1) + 'label "start" = s=0;\n'
    model = prism(tmp_path, text)
    assert main(["check", "--model", model, "--spec", 'Pmax=? [ F "goall" ]']) == 2
    line = one_line(capsys.readouterr().err)
    assert 'unknown label \'goall\'; the model\'s labels: "goal", "start"' in line


def test_states_of_a_prism_model_need_no_property(tmp_path, capsys):
    """`verify states` refused a PRISM model without .props ("no property to check")."""
    model = prism(tmp_path, COUNTER.format(reward=1))
    assert main(["states", model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "index  s  labels" and len(lines) == 4


def test_an_unbounded_int_stops_at_the_default_budget(tmp_path, monkeypatch, capsys):
    """`s : int` counting up forever had no limit (2.6 GB and growing at 60 s); the default
    budget stops Storm's exploration (here lowered to 1000 states, as the default)."""
    import verifier.budget

    monkeypatch.setattr(verifier.budget, "DEFAULT_MAX_STATES", 1000)
    model = prism(tmp_path, "mdp\nmodule m\n s : int init 0;\n [] true -> (s'=s+1);\nendmodule\n")
    assert main(["check", "--model", model, "--spec", "Pmax=? [ F s=-1 ]"]) == 3
    line = one_line(capsys.readouterr().err)
    assert (
        "more than 1000 states: exploration stopped at 1001 (--max-states 1000, the default)"
        in line
    )
    assert "--max-states none" in line

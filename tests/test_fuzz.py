"""Fuzzing the input formats: mutated mazes, PRISM files, properties, rewards and suites.

Each test mutates a valid input a few times (inserting, deleting and replacing text with
tokens of the format, the ones that broke the verifier before among them) and runs it
through `verify`. Whatever the input, the verifier must answer with an exit code in
{0, 1, 2, 3}, never a traceback, a signal (SIGFPE killed it on `1/0`) or a hang. The runs
are seeded and bounded, so they are the same in every CI run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from verifier.cli import main

ROOT = Path(__file__).resolve().parent.parent
MAZE = (ROOT / "models" / "lava.toml").read_text()
PRISM = """mdp
const int N = 2;
const double p = 0.25;
module walk
  x : [0..N] init 0;
  done : bool init false;
  [go]   !done & x<N -> 1-p:(x'=x+1) + p:(x'=x);
  [stop] !done -> (done'=true);
  [] done | x=N -> true;
endmodule
rewards "steps"
  !done & x<N : 1;
endrewards
label "goal" = x=N;
"""
PROPERTIES = 'Pmax=? [ !"lava" U "exit" ]\nPmin=? [ F<=3 "exit" ]\nP>=0.5 [ F "exit" ]\n'
REWARD = """# fuzzed
step = -0.01
discount = 0.9
[arrive]
exit = 1.0
lava = -1
"""
SUITE = """[suite]
name = "fuzz"
timeout = 60
[environments.e]
files = ["lava.toml"]
[[check]]
kind = "check"
environments = "e"
expect = "holds"
"""

COMMON = ["\n", " ", "=", "[", "]", "(", ")", '"', "'", "1.2", "-1", "0", "nan", "1e400", "#"]
TOKENS = {
    "maze": [*COMMON, "S", "E", "L", "X", "kind", 'labels = ["has_key_red"]', "[cells.Z]",
             'kind = "door"', "slip = 2", 'intended = "P=? [ F \\"exit\\" ]"', '"""'],
    "prism": [*COMMON, "/0", "mod(1,0)", "pow(0,-1)", "0.7:", "+", ";", "x'=4", "const int M;",
              "smg", "->", "&", "//", "endmodule", "..", "N", "formula f = x;"],
    "properties": [*COMMON, "/0", "mod(1,0)", "P=?", "Pmax", "multi(", "quantile(", "F<=",
                   "U", "R{\"r\"}", "//", ";", '"lava"', "x=1", "G", "X"],
    "reward": [*COMMON, "1e300", "99999999999999999999999", "1e-12", "step", "[arrive]",
               "exit", "discount = 2", "inf", "red = ", "[leave]", "floor", "true"],
    "suite": [*COMMON, "[[check]]", 'kind = "reward"', "files = [1]", "const = 5",
              "name = 1.5", 'generate = { size = "5x5" }', "{", "}", "seeds = -1"],
}  # fmt: skip
EXIT_CODES = {0, 1, 2, 3}


# What a number of the input may become: divisions by zero, overflows, out of range.
NUMBERS = ["1/0", "mod(1,0)", "0/0", "pow(0,-1)", "1e400", "-1", "4", "1.2", "nan", "0",
           "99999999999999999999", "1e-12"]  # fmt: skip
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")


def mutations(fmt: str):
    """A strategy of lists of edits: (operation, relative position, length, token, number)."""
    return st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace", "number", "number"]),
            st.floats(0, 1),
            st.integers(1, 6),
            st.sampled_from(TOKENS[fmt]),
            st.sampled_from(NUMBERS),
        ),
        min_size=1,
        max_size=4,
    )


def mutate(text: str, edits) -> str:
    for operation, where, length, token, number in edits:
        i = int(where * len(text))
        if operation == "insert":
            text = text[:i] + token + text[i:]
        elif operation == "delete":
            text = text[:i] + text[i + length :]
        elif operation == "replace":
            text = text[:i] + token + text[i + length :]
        else:  # one of the text's numbers becomes another
            found = list(_NUMBER.finditer(text))
            if found:
                match = found[int(where * (len(found) - 1))]
                text = text[: match.start()] + number + text[match.end() :]
    return text


def assert_clean(code: int, err: str) -> None:
    assert code in EXIT_CODES, err
    assert "Traceback" not in err, err
    if code == 2:  # bad input: one line naming it (after any warnings)
        assert err.strip().splitlines()[-1].startswith("verify: "), err


FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@seed(10)
@FUZZ
@given(edits=mutations("maze"))
def test_mutated_mazes_exit_cleanly(edits, tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text(mutate(MAZE, edits))
    code = main(["check", "--model", str(path), "--max-states", "10000"])
    assert_clean(code, capsys.readouterr().err)


@seed(11)
@FUZZ
@given(edits=mutations("prism"))
def test_mutated_prism_files_exit_cleanly(edits, tmp_path, capsys):
    path = tmp_path / "m.prism"
    path.write_text(mutate(PRISM, edits))
    spec = 'Pmax=? [ F "goal" ]'
    code = main(["check", "--model", str(path), "--spec", spec, "--max-states", "10000"])
    assert_clean(code, capsys.readouterr().err)


@seed(12)
@FUZZ
@given(edits=mutations("properties"))
def test_mutated_properties_exit_cleanly(edits, tmp_path, capsys):
    spec = mutate(PROPERTIES, edits)
    code = main(["check", "--model", str(ROOT / "models" / "lava.toml"), "--spec", spec])
    assert_clean(code, capsys.readouterr().err)


@seed(13)
@settings(FUZZ, max_examples=4)
@given(edits=mutations("suite"))
def test_mutated_suite_files_exit_cleanly(edits, tmp_path, capsys):
    (tmp_path / "lava.toml").write_text(MAZE)
    path = tmp_path / "s.toml"
    path.write_text(mutate(SUITE, edits))
    code = main(["suite", str(path), "--workers", "1", "--max-states", "10000"])
    captured = capsys.readouterr()
    assert code in EXIT_CODES, captured.err
    assert "Traceback" not in captured.err + captured.out


@seed(15)
@settings(FUZZ, max_examples=15)
@given(edits=mutations("reward"))
def test_mutated_reward_files_exit_cleanly(edits, tmp_path, capsys):
    path = tmp_path / "r.toml"
    path.write_text(mutate(REWARD, edits))
    model = str(ROOT / "models" / "lava.toml")
    code = main(["reward", "--model", model, "--reward", str(path)])
    assert_clean(code, capsys.readouterr().err)


_BATCH = """
import json, sys
from verifier.cli import main
for argv in json.loads(sys.argv[1]):
    print(main(argv), flush=True)
"""


@seed(14)
@settings(FUZZ, max_examples=2)
@given(
    prism=st.lists(mutations("prism"), min_size=8, max_size=8),
    properties=st.lists(mutations("properties"), min_size=8, max_size=8),
)
def test_mutated_inputs_never_kill_the_process_with_a_signal(prism, properties, tmp_path):
    """Batches of mutated PRISM files and properties in a child process, which a signal
    (SIGFPE from Storm's parser) would end early, and a timeout would stop if it hung."""
    runs = []
    for i, edits in enumerate(prism):
        path = tmp_path / f"m{i}.prism"
        path.write_text(mutate(PRISM, edits))
        runs.append(["check", "--model", str(path), "--spec", 'Pmax=? [ F "goal" ]'])
    good = tmp_path / "good.prism"
    good.write_text(PRISM)
    for edits in properties:
        spec = mutate(PROPERTIES.replace('"exit"', '"goal"'), edits)
        runs.append(["check", "--model", str(good), "--spec", spec])
    done = subprocess.run(
        [sys.executable, "-c", _BATCH, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    codes = [int(line) for line in done.stdout.splitlines() if line.isdigit()]
    assert len(codes) == len(runs) and set(codes) <= EXIT_CODES
    assert "Traceback" not in done.stderr

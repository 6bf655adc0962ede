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
# The forms a number of a reward file can take (issue 20): tiny, huge, long, in every base.
REWARD_NUMBERS = ["1e-400", "-1e-400", "1e999999999", "1e-999999999", "1e9999999", "1e-1001",
                  "0." + "0" * 500 + "1", "1" * 400, "1" * 400 + ".5", "1" * 5000, "0." + "9" * 400,
                  "0." + "3" * 1200, "inf", "-inf", "nan", "1_000.5", "+1e+3", "0x10", "0o7",
                  "0b1", "1e-1000", "-0.0", "5e-324", "1e308", "1e-7"]  # fmt: skip
TOKENS = {
    "maze": [*COMMON, "S", "E", "L", "X", "kind", 'labels = ["has_key_red"]', "[cells.Z]",
             'kind = "door"', "slip = 2", 'intended = "P=? [ F \\"exit\\" ]"', '"""'],
    "prism": [*COMMON, "/0", "mod(1,0)", "pow(0,-1)", "0.7:", "+", ";", "x'=4", "const int M;",
              "smg", "->", "&", "//", "endmodule", "..", "N", "formula f = x;"],
    "properties": [*COMMON, "/0", "mod(1,0)", "P=?", "Pmax", "multi(", "quantile(", "F<=",
                   "U", "R{\"r\"}", "//", ";", '"lava"', "x=1", "G", "X"],
    "reward": [*COMMON, "1e300", "99999999999999999999999", "1e-12", "step", "[arrive]",
               "exit", "discount = 2", "inf", "red = ", "[leave]", "floor", "true"],
    "reward_numbers": REWARD_NUMBERS,
    "suite": [*COMMON, "[[check]]", 'kind = "reward"', "files = [1]", "const = 5",
              "name = 1.5", 'generate = { size = "5x5" }', "{", "}", "seeds = -1",
              "timeout = " + "1" * 400, "max_states = 1.5", 'max_states = "none"', "spec = 3",
              "generate = { seeds = 100000000 }", 'generate = { size = "20001x20001" }',
              "x = " + "[" * 300 + "]" * 300, "max_states = " + "9" * 5000],
    "gym": [*COMMON, 'id = "nosuchmod:X"', 'id = "this:FrozenLake-v1"', 'id = "FrozenLake8x8-v1"',
            'id = "MiniGrid-Empty-5x5-v0"', 'id = "Taxi-v3"', 'wrappers = [".x.Y"]',
            'wrappers = ["numpy.f2py.__main__.ImgObsWrapper"]', 'packages = ["nosuchpkg"]',
            'wrappers = ["minigrid.wrappers.ImgObsWrapper"]', 'map_name = "9x9"', "map_name = 4",
            'desc = ["FFF", "FHF", "FFG"]', 'desc = ["SFF", "FHF", "FFG"]', "success_rate = 1.5",
            'render_mode = "human"', "is_slippery = false", "seeds = [0, 1]", "seed = -1",
            'actions = ["left", "down"]', 'intended = \'Pmax=? [ F "goal" ]\'', "size = 1000",
            "kwargs = {", "}"],
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


@seed(16)
@settings(FUZZ, max_examples=40)
@given(
    step=st.sampled_from(REWARD_NUMBERS),
    weight=st.sampled_from(REWARD_NUMBERS),
    discount=st.sampled_from(["1", "0.9", *REWARD_NUMBERS]),
)
def test_reward_number_forms_exit_cleanly_with_their_reports(
    step, weight, discount, tmp_path, capsys
):
    """Every form of number in a reward file: exit 0 to 3 with one line, no traceback, and
    exit 0 only with the --json report written."""
    path = tmp_path / "r.toml"
    path.write_text(f"step = {step}\ndiscount = {discount}\n[arrive]\nexit = {weight}\n")
    out = tmp_path / "o.json"
    model = str(ROOT / "models" / "lava.toml")
    code = main(["reward", "--model", model, "--reward", str(path), "--json", str(out)])
    assert_clean(code, capsys.readouterr().err)
    assert code not in (0, 1) or out.is_file()


@seed(17)
@settings(FUZZ, max_examples=6)
@given(edits=mutations("suite"))
def test_mutated_suite_keys_exit_cleanly_with_their_reports(edits, tmp_path, capsys):
    """Suite keys that crashed or ran away (a 400-digit timeout, seeds = 100000000, a huge
    generated maze, spec = 3): exit 0 to 3, and exit 0 only with both reports written."""
    (tmp_path / "lava.toml").write_text(MAZE)
    path = tmp_path / "s.toml"
    path.write_text(mutate(SUITE, edits))
    out, junit = tmp_path / "o.json", tmp_path / "o.xml"
    argv = ["suite", str(path), "--workers", "1", "--max-states", "10000"]
    code = main([*argv, "--json", str(out), "--junit", str(junit)])
    captured = capsys.readouterr()
    assert code in EXIT_CODES, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert code != 0 or (out.is_file() and junit.is_file())


GYM = """[gymnasium]
id = "FrozenLake-v1"
seed = 0
kwargs = { is_slippery = true, success_rate = 0.5 }
wrappers = []
"""
_GYM_BATCH = """
import json, os, sys
from verifier.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    report = argv[argv.index("--json") + 1]
    print(code, code != 0 or os.path.isfile(report), flush=True)
"""


# Values of a [gymnasium] table, valid and not: modules outside gymnasium and minigrid,
# FrozenLake's kwargs, render modes, sizes, seeds (issue 20).
GYM_VALUES = {
    "id": ["FrozenLake-v1", "FrozenLake8x8-v1", "nosuchmod:X", "this:FrozenLake-v1",
           "MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0", "Taxi-v3", "CliffWalking-v1",
           "CartPole-v1", "", "os:X", 3],
    "kwargs": [{}, {"map_name": "9x9"}, {"map_name": 4}, {"desc": ["SFF", "FHF", "FFG"]},
               {"desc": ["FFF", "FHF", "FFG"]}, {"desc": ["SF", "FHF"]}, {"success_rate": 1.5},
               {"success_rate": -0.5}, {"render_mode": "human"}, {"render_mode": "rgb_array"},
               {"is_slippery": False}, {"size": 1000}, {"size": -1}, {"nope": 1}, "x"],
    "wrappers": [[], ["minigrid.wrappers.ImgObsWrapper"], [".x.Y"], ["os.system"],
                 ["numpy.f2py.__main__.ImgObsWrapper"], ["minigrid.wrappers.NoSuch"],
                 ["gymnasium.wrappers.FlattenObservation"], "minigrid.wrappers.ImgObsWrapper"],
    "seed": [0, 1, -1, 10**30, 1.5, "0", [0, 1], [], [-1], [0, "1"]],  # a list: seeds
    "packages": [[], ["nosuchpkg"], ["a b"], "gymnasium", [3]],
    "actions": [["left", "down", "right", "up"], ["jump"], [], ["left", "left"]],
    "intended": ['Pmax=? [ F "goal" ]', 'Pmax=? [ F "nowhere" ]', 3,
                 "Pmax=? [ " + "X " * 200 + '"goal" ]'],
}  # fmt: skip


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


gym_tables = st.fixed_dictionaries(
    {"id": st.sampled_from(GYM_VALUES["id"])},
    optional={key: st.sampled_from(values) for key, values in GYM_VALUES.items() if key != "id"},
)


def _run_gym_batch(texts: list[str], tmp_path) -> None:
    """Each model file through `verify check --json` in one child process: a signal or
    sys.exit would end it early, a hang would stop it at the timeout; exit 0 only with the
    report written."""
    runs = []
    for i, text in enumerate(texts):
        path = tmp_path / f"g{i}.toml"
        path.write_text(text)
        report = str(tmp_path / f"g{i}.json")
        runs.append(["check", "--model", str(path), "--max-states", "10000", "--json", report])
    done = subprocess.run(
        [sys.executable, "-c", _GYM_BATCH, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [line.split() for line in done.stdout.splitlines() if line[:1].isdigit()]
    assert len(results) == len(runs), done.stdout[-2000:]
    assert {int(code) for code, _ in results} <= EXIT_CODES
    assert all(written == "True" for _, written in results)
    assert "Traceback" not in done.stderr
    for line in done.stderr.splitlines():  # every message is verify's own line
        assert line.startswith("verify: "), line


@seed(18)
@settings(FUZZ, max_examples=2)
@given(models=st.lists(mutations("gym"), min_size=10, max_size=10))
def test_mutated_gym_models_never_kill_the_process_or_pass_without_a_report(models, tmp_path):
    """Batches of mutated Gymnasium model files (ids naming modules, wrappers, FrozenLake's
    kwargs, render modes)."""
    _run_gym_batch([mutate(GYM, edits) for edits in models], tmp_path)


@seed(19)
@settings(FUZZ, max_examples=3)
@given(tables=st.lists(gym_tables, min_size=12, max_size=12))
def test_gym_table_keys_never_kill_the_process_or_pass_without_a_report(tables, tmp_path):
    """Batches of [gymnasium] tables assembled from valid and invalid values of every key."""
    texts = [
        "[gymnasium]\n"
        + "".join(
            f"{'seeds' if isinstance(v, list) and k == 'seed' else k} = {_toml_value(v)}\n"
            for k, v in table.items()
        )
        for table in tables
    ]
    _run_gym_batch(texts, tmp_path)


SUITE_VALUES = {
    "timeout": [60, 120, 0.5, 60, -1, 0, 10**400, 1e300, "60", float("nan")],  # valid first
    "max_states": [10000, "none", 3, 10000, 1.5, 0, 10**30, "many"],
    "spec": ['Pmax=? [ F "exit" ]', 'Pmin=? [ F<=3 "exit" ]', 'Pmax=? [ F "nowhere" ]', 3, "",
             "LRAmax=? [ \"exit\" ]"],
    "environments": [
        {"files": ["lava.toml"]},
        {"generate": {"size": "5x5", "seeds": 2}},
        {"generate": {"size": "20001x20001"}},
        {"generate": {"seeds": 100000000}},
        {"generate": {"size": "9" * 30 + "x5"}},
        {"generate": {"size": "7x7", "seeds": [0, -1]}},
    ],
}  # fmt: skip


@seed(20)
@settings(FUZZ, max_examples=8)
@given(
    header=st.fixed_dictionaries(
        {}, optional={k: st.sampled_from(SUITE_VALUES[k]) for k in ("timeout", "max_states")}
    ),
    check=st.fixed_dictionaries(
        {}, optional={k: st.sampled_from(v) for k, v in SUITE_VALUES.items() if k != "environments"}
    ),
    environment=st.sampled_from(SUITE_VALUES["environments"]),
)
def test_suite_keys_exit_cleanly_with_their_reports(header, check, environment, tmp_path, capsys):
    """Suites assembled from valid and invalid values of their keys: exit 0 to 3, no
    traceback, and exit 0 only with both reports written."""
    (tmp_path / "lava.toml").write_text(MAZE)
    lines = ["[suite]", *(f"{k} = {_toml_value(v)}" for k, v in header.items())]
    lines += ["[environments.e]", *(f"{k} = {_toml_value(v)}" for k, v in environment.items())]
    lines += ["[[check]]", 'kind = "check"', 'environments = "e"']
    lines += [f"{k} = {_toml_value(v)}" for k, v in check.items()]
    path = tmp_path / "s.toml"
    path.write_text("\n".join(lines) + "\n")
    out, junit = tmp_path / "o.json", tmp_path / "o.xml"
    code = main(["suite", str(path), "--workers", "1", "--json", str(out), "--junit", str(junit)])
    captured = capsys.readouterr()
    assert code in EXIT_CODES, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert code != 0 or (out.is_file() and junit.is_file())

"""PRISM in and out: the export built by Storm is the model we compile; PRISM files read in."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import maze_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import storm
from verifier.errors import InputError, ResourceLimit
from verifier.inputs.maze import ACTIONS, PALETTE, parse_maze
from verifier.inputs.maze_compile import PRISM_LABEL_NAMES, VARIABLES, compile_maze, to_prism

# Declared cell characters the random mazes draw from, with their TOML.
CELLS = {
    "A": '[cells.A]\nkind = "exit"\ncolor = "blue"\n',
    "B": '[cells.B]\nkind = "exit"\ncolor = "red"\n',
    "L": '[cells.L]\nkind = "lava"\n',
    "O": '[cells.O]\nkind = "object"\ncolor = "red"\n',
    "T": '[cells.T]\nkind = "object"\ncolor = "green"\nterminal = true\n',
    "k": '[cells.k]\nkind = "key"\ncolor = "yellow"\n',
    "K": '[cells.K]\nkind = "door"\ncolor = "yellow"\n',
    "p": '[cells.p]\nkind = "key"\ncolor = "purple"\n',
    "P": '[cells.P]\nkind = "door"\ncolor = "purple"\n',
    "I": '[cells.I]\nkind = "floor"\nslip = 0.5\nlabels = ["ice"]\n',
}
FILL = "#....SS" + "".join(CELLS)


@st.composite
def random_mazes(draw):
    height = draw(st.integers(1, 5))
    width = draw(st.integers(2, 6))
    rows = ["".join(draw(st.sampled_from(FILL)) for _ in range(width)) for _ in range(height)]
    if not any("S" in row for row in rows):
        r, c = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        rows[r] = rows[r][:c] + "S" + rows[r][c + 1 :]
    used = set("".join(rows))
    cells = "".join(text for char, text in CELLS.items() if char in used)
    slip = draw(st.sampled_from([0.0, 0.1, 0.25]))
    return maze_text("\n".join(rows), cells, slip=slip)


PROPERTIES = [
    'Pmax=? [ F "exit" ]',
    'Pmin=? [ F "exit" ]',
    'Pmax=? [ !"lava" U "exit" ]',
    'Pmin=? [ !"lava" U "terminal" ]',
    'Pmax=? [ F<=3 "exit" ]',
    'Pmin=? [ F<=4 "red" ]',
    'Pmax=? [ !"door" U<=5 "has_key_yellow" ]',
    'Pmax=? [ F "ice" ]',
    'Pmax=? [ F "floor" ]',
]


def storm_build_of_export(maze, tmp_path):
    path = tmp_path / "export.prism"
    path.write_text(to_prism(maze))
    return storm.build_prism(storm.load_prism(path))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=random_mazes())
def test_export_built_by_storm_equals_direct_compile(text, tmp_path):
    """Two independent builds of one maze: our numpy compiler, and Storm's PRISM builder on
    the export. Same state, choice and transition counts; same values at every initial
    state for unbounded and step-bounded Pmax and Pmin."""
    maze = parse_maze(text)
    ours = compile_maze(maze)
    theirs = storm_build_of_export(maze, tmp_path)
    assert (theirs.nr_states, theirs.nr_choices, theirs.nr_transitions) == (
        ours.n_states,
        ours.n_choices,
        ours.n_transitions,
    )
    theirs_mdp = storm.from_storm(theirs, variables=VARIABLES, actions=ACTIONS)
    assert theirs_mdp.actions == ACTIONS
    assert theirs_mdp.variables == VARIABLES
    # Initial states are matched by valuation: the two builds number states differently.
    ours_initial = [tuple(v) for v in ours.valuations[ours.initial_states].tolist()]
    theirs_initial = [tuple(v) for v in theirs_mdp.valuations[theirs_mdp.initial_states].tolist()]
    assert sorted(ours_initial) == sorted(theirs_initial)
    order = [theirs_initial.index(v) for v in ours_initial]
    ours_storm = storm.to_storm(ours)
    for text_prop in PROPERTIES:
        if '"ice"' in text_prop and "ice" not in ours.labels:
            continue  # custom labels exist only in mazes that use them
        theirs_prop = text_prop.replace('"floor"', f'"{PRISM_LABEL_NAMES["floor"]}"')
        a = storm.check(ours_storm, storm.parse_properties(text_prop)[0]).values
        b = storm.check(theirs, storm.parse_properties(theirs_prop)[0]).values[order]
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=text_prop)


@settings(max_examples=30, deadline=None)
@given(text=random_mazes())
def test_storm_round_trip_preserves_the_mdp(text):
    """to_storm then from_storm gives back the same matrix, groups, labels and actions."""
    ours = compile_maze(parse_maze(text))
    back = storm.from_storm(storm.to_storm(ours))
    assert (back.transitions != ours.transitions).nnz == 0
    assert back.row_groups.tolist() == ours.row_groups.tolist()
    assert back.initial_states.tolist() == ours.initial_states.tolist()
    names = lambda m: [m.actions[i] if i >= 0 else None for i in m.choice_actions]  # noqa: E731
    assert names(back) == names(ours)
    for name, mask in ours.labels.items():
        assert back.label(name).tolist() == mask.tolist(), name


PRISM_MDP = """
mdp
const int N;
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
  [stop] true : 5;
endrewards
label "goal" = x=N;
"""


def test_prism_mdp_is_read_with_constants_valuations_actions_and_rewards(tmp_path):
    """x walks 0..N with success 0.75 per `go`; `stop` (enabled while not done, also at
    x=N) ends. With N=3: (x, done) for x in 0..3 and both values of done: 8 states."""
    path = tmp_path / "walk.prism"
    path.write_text(PRISM_MDP)
    prism = storm.load_prism(path, {"N": "3"})
    mdp = storm.from_storm(
        storm.build_prism(prism), variables=prism.variables, actions=prism.actions
    )
    assert mdp.n_states == 8
    assert mdp.variables == ("x", "done")
    assert mdp.actions == ("go", "stop")  # declaration order
    x0 = mdp.initial_states[0]
    assert mdp.valuations[x0].tolist() == [0, 0]
    choices = range(mdp.row_groups[x0], mdp.row_groups[x0 + 1])
    by_action = {mdp.actions[mdp.choice_actions[c]]: c for c in choices}
    # state reward 1 folded into every choice of x=0; `stop` adds its action reward 5
    assert mdp.rewards["steps"][by_action["go"]] == 1.0
    assert mdp.rewards["steps"][by_action["stop"]] == 6.0
    assert mdp.transitions[by_action["go"]].toarray().max() == 0.75
    # Expected steps to the goal under `go` only: 3 / 0.75 = 4.
    prop = storm.parse_properties('R{"steps"}min=? [ F "goal" ]')[0]
    assert storm.check(storm.to_storm(mdp), prop).values == pytest.approx([4.0], abs=1e-6)


def test_prism_dtmc_is_read_as_a_one_choice_model(tmp_path):
    path = tmp_path / "coin.prism"
    path.write_text(
        "dtmc\nmodule c\n s : [0..2] init 0;\n [] s=0 -> 0.3:(s'=1) + 0.7:(s'=2);\n"
        ' [] s>0 -> true;\nendmodule\nlabel "heads" = s=1;\n'
    )
    mdp = storm.from_storm(storm.build_prism(storm.load_prism(path)))
    assert mdp.kind == "dtmc"
    assert mdp.n_choices == mdp.n_states == 3
    prop = storm.parse_properties('P=? [ F "heads" ]')[0]
    assert storm.check(storm.to_storm(mdp), prop).values == pytest.approx([0.3], abs=1e-12)


@pytest.mark.parametrize(
    ("text", "constants", "expected"),
    [
        ("mdp\nmodule m\n x : [0..1] init 0\nendmodule\n", {}, "Parsing error"),
        (PRISM_MDP, {}, "constants N are not defined; set them with --const"),
        (PRISM_MDP, {"M": "2"}, "'M' is not a constant"),
        ("ctmc\nmodule m\n x : [0..1] init 0;\n [] x=0 -> 2:(x'=1);\nendmodule\n", {}, "(?i)ctmc"),
    ],
)
def test_malformed_prism_files_raise_input_errors(tmp_path, text, constants, expected):
    path = tmp_path / "bad.prism"
    path.write_text(text)
    with pytest.raises(InputError, match=expected):
        storm.build_prism(storm.load_prism(path, constants))


def test_every_palette_color_and_key_variable_is_exported():
    maze = parse_maze(maze_text("#SA#", CELLS["A"]))
    text = to_prism(maze)
    for color in PALETTE:
        assert f'label "{color}" =' in text
        assert f"key_{color} : [0..1];" in text
    assert 'label "floor_cell" =' in text


def write(tmp_path, text: str, name: str = "m.prism"):
    path = tmp_path / name
    path.write_text(text)
    return path


COIN = """mdp
module m
  x : [0..2] init 0;
  [a] x=0 -> {update};
  [] x>0 -> true;
endmodule
label "goal" = x=2;
"""


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ("0.5:(x'=1) + 0.7:(x'=2)", r"line 4: Probabilities do not sum to one .*1\.2"),
        ("(x'=4)", r"line 4: The update .* out-of-bounds value \(4\)"),
    ],
)
def test_malformed_distributions_and_updates_are_refused_with_the_line(tmp_path, update, expected):
    """Storm's exploration checks: a distribution summing to 1.2 used to give HOLDS, and
    x'=4 on x : [0..2] wrapped silently."""
    prism = storm.load_prism(write(tmp_path, COIN.format(update=update)))
    with pytest.raises(InputError, match=expected):
        storm.build_prism(prism)


def test_decimal_probabilities_that_round_in_floating_point_are_accepted(tmp_path):
    """0.7 + 0.2 + 0.1 is 0.9999999999999999 in doubles: exactly one as written. P(reach
    x=2) = 0.2 by hand."""
    prism = storm.load_prism(
        write(tmp_path, COIN.format(update="0.7:true + 0.2:(x'=2) + 0.1:(x'=1)"))
    )
    mdp = storm.from_storm(storm.build_prism(prism), variables=prism.variables)
    assert mdp.variables == ("x",)
    assert "out_of_bounds" not in mdp.labels
    prop = storm.parse_properties('Pmax=? [ X "goal" ]')[0]
    assert storm.check(storm.to_storm(mdp), prop).values == pytest.approx([0.2])


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ("0.5:(x'=1) + 0.7:(x'=0)", "sum to 1.2"),
        ("(x'=3)", "outside its variable's range"),
    ],
)
def test_after_a_rounding_command_later_bad_commands_are_still_refused(tmp_path, second, expected):
    """The first command only rounds (Storm's exact check trips on it), so the model is
    checked without Storm's checks: the second command's error must still be found."""
    text = COIN.format(update="0.7:true + 0.2:(x'=1) + 0.1:(x'=1)").replace(
        "[] x>0 -> true;", f"[b] x=1 -> {second};\n  [] x=2 -> true;"
    )
    with pytest.raises(InputError, match=expected):
        storm.build_prism(storm.load_prism(write(tmp_path, text)))


DIVISIONS = [
    COIN.format(update="1/0:(x'=1) + (1-1/0):(x'=2)"),
    COIN.format(update="(x'=1/0)"),
    COIN.format(update="(x'=mod(1,0))"),
    COIN.replace("[a] x=0", "[a] x=0 & 1/0>0").format(update="(x'=1)"),
    COIN.replace("mdp\n", "mdp\nconst int N = 2/0;\n").format(update="(x'=N)"),
    COIN.replace("mdp\n", "mdp\nconst int p = mod(2, 0);\n").format(update="(x'=p)"),
]


def test_division_by_zero_in_prism_and_properties_exits_2_not_sigfpe(tmp_path):
    """Storm's parser folds constant divisions with GMP, which raises SIGFPE on 1/0: the
    process died with exit 136 and no message. Every case runs in one child process; a
    signal would end it early."""
    paths = [write(tmp_path, text, f"d{i}.prism") for i, text in enumerate(DIVISIONS)]
    ok = write(tmp_path, COIN.format(update="0.5:(x'=1) + 0.5:(x'=2)"), "ok.prism")
    open_text = COIN.replace("mdp\n", "mdp\nconst int N;\n").format(update="(x'=1)")
    open_n = write(tmp_path, open_text, "open.prism")
    cases = [["check", "--model", str(p), "--spec", 'Pmax=? [ F "goal" ]'] for p in paths]
    cases += [
        ["check", "--model", str(ok), "--spec", 'Pmax=? [ F<=1/0 "goal" ]'],
        ["check", "--model", str(ok), "--spec", 'P>0/0 [ F "goal" ]'],
        ["check", "--model", str(ok), "--spec", 'Pmax>=pow(0, -1) [ F "goal" ]'],
        ["check", "--model", str(open_n), "--const", "N=1/0", "--spec", 'Pmax=? [ F "goal" ]'],
    ]
    script = (
        "import sys, json\nfrom verifier.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n    print(main(argv), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2"] * len(cases)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(cases)
    assert all("divides by zero" in line for line in lines), lines
    assert "line 4" in lines[0] and "line 2" in lines[4]


@pytest.mark.parametrize(
    ("prefix", "constants", "expected"),
    [
        ("const int N = 2;\n", {"N": "3"}, "N is already defined"),
        ("const int N;\n", {"N": "1e3"}, "N is an int constant"),
        ("const bool B;\n", {"B": "2"}, "B needs a bool"),
    ],
)
def test_bad_constant_definitions_are_input_errors(tmp_path, prefix, constants, expected):
    path = write(tmp_path, COIN.replace("mdp\n", "mdp\n" + prefix).format(update="(x'=1)"))
    with pytest.raises(InputError, match=expected):
        storm.load_prism(path, constants)


@pytest.mark.parametrize("kind", ["smg", "pta"])
def test_unsupported_model_types_are_named(tmp_path, kind):
    path = write(tmp_path, COIN.format(update="(x'=1)").replace("mdp", kind, 1))
    with pytest.raises(InputError, match=f"model type {kind} is not supported"):
        storm.load_prism(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('multi(Pmax=? [ F "goal" ], Pmin=? [ F "goal" ])', "multi-objective"),
        ('quantile(max k, P>=0.5 [ F<=k "goal" ])', "quantile"),
        ('"goal"', "state formula"),
    ],
)
def test_properties_that_cannot_be_objectives_are_refused(tmp_path, text, expected):
    from verifier.inputs.load import load_environment

    path = write(tmp_path, COIN.format(update="(x'=1)"))
    with pytest.raises(InputError, match=expected):
        load_environment(path, spec=text)


def test_props_text_holds_one_property_per_line_with_comments():
    """PRISM's convention: one property per line, `//` comments; a property may also
    continue over lines inside its brackets."""
    text = (
        '// objectives\nPmax=? [ F "goal" ]\n\nPmin=? [ F "goal" ] // the worst case\n'
        'Pmax=? [ !"lava"\n   U "goal" ];  P>=0.5 [ F "goal" ]\n'
    )
    props = storm.parse_properties(text)
    assert [str(p) for p in props] == [
        'Pmax=? [F "goal"]',
        'Pmin=? [F "goal"]',
        'Pmax=? [(!"lava") U "goal"]',
        'P>=1/2 [F "goal"]',
    ]


def test_a_malformed_property_in_a_props_file_names_its_line():
    with pytest.raises(InputError, match="line 3"):
        storm.parse_properties('Pmax=? [ F "goal" ]\n\nPmax=? [ F "goal" \n', source="m.props")


def test_exploration_stops_at_max_states(tmp_path):
    """A 10^8-state chain with max_states 1000: Storm's builder stops one state past the
    limit (it used to build all 10^8 states before counting)."""
    text = (
        "dtmc\nmodule c\n x : [0..100000000] init 0;\n"
        " [] x<100000000 -> 0.5:(x'=x+1) + 0.5:(x'=0);\n [] x=100000000 -> true;\nendmodule\n"
    )
    prism = storm.load_prism(write(tmp_path, text))
    with pytest.raises(ResourceLimit, match="more than 1000 states"):
        storm.build_prism(prism, max_states=1000)
    small = storm.load_prism(write(tmp_path, text.replace("100000000", "999"), "small.prism"))
    assert storm.build_prism(small, max_states=1000).nr_states == 1000


def test_a_query_without_min_or_max_is_refused_on_a_prism_mdp_not_a_dtmc(tmp_path):
    from verifier.inputs.load import load_environment

    mdp = write(tmp_path, COIN.format(update="(x'=1)"))
    with pytest.raises(InputError, match="needs min or max"):
        load_environment(mdp, spec='P=? [ F "goal" ]')
    dtmc = write(tmp_path, COIN.format(update="(x'=1)").replace("mdp", "dtmc", 1), "c.prism")
    assert load_environment(dtmc, spec='P=? [ F "goal" ]').mdp.kind == "dtmc"

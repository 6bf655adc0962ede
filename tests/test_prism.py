"""PRISM in and out: the export built by Storm is the model we compile; PRISM files read in."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import maze_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import storm
from verifier.compile import PRISM_LABEL_NAMES, VARIABLES, compile_maze, to_prism
from verifier.errors import InputError
from verifier.maze import ACTIONS, PALETTE, parse_maze

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

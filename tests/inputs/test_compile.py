"""Maze -> MDP: state spaces and values worked out by hand, checked by Storm on our model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import maze_text, values
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.errors import ResourceLimit
from verifier.inputs.maze import ACTIONS, KINDS, PALETTE, parse_maze
from verifier.inputs.maze_compile import VARIABLES, compile_maze

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
LAVA = '[cells.L]\nkind = "lava"\n'


def test_corridor_has_three_states_and_nine_choices(compile_text):
    """S . A: two moving states with four actions each, the exit with one self-loop."""
    mdp = compile_text("#S.A#", EXIT)
    assert (mdp.n_states, mdp.n_choices) == (3, 9)
    assert mdp.actions == ACTIONS
    assert mdp.variables == VARIABLES
    assert mdp.valuations[mdp.initial_states[0]].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    exit_state = int(np.flatnonzero(mdp.label("exit"))[0])
    first = mdp.row_groups[exit_state]
    assert mdp.row_groups[exit_state + 1] - first == 1
    assert mdp.choice_actions[first] == -1
    assert mdp.transitions[first].toarray()[0, exit_state] == 1.0


def test_deterministic_corridor_reaches_exit_in_exactly_two_steps(compile_text):
    mdp = compile_text("#S.A#", EXIT)
    assert values(mdp, 'Pmax=? [ F<=1 "exit" ]').tolist() == [0.0]
    assert values(mdp, 'Pmax=? [ F<=2 "exit" ]').tolist() == [1.0]
    assert values(mdp, 'Pmin=? [ F "exit" ]').tolist() == [0.0]  # e.g. always "left"


def test_slippery_corridor_bounded_reachability_is_binomial(compile_text):
    """One-row corridor, slip 0.2: pushing right advances with 0.8, the two perpendicular
    slips hit walls and stay. Reaching the exit two cells away within 3 steps needs two
    successes in three trials: 0.8^3 + 3 * 0.8^2 * 0.2 = 0.896; within 2 steps: 0.64."""
    mdp = compile_text("#S.A#", EXIT, slip=0.2)
    assert values(mdp, 'Pmax=? [ F<=2 "exit" ]') == pytest.approx([0.64], abs=1e-12)
    assert values(mdp, 'Pmax=? [ F<=3 "exit" ]') == pytest.approx([0.896], abs=1e-12)
    assert values(mdp, 'Pmax=? [ F "exit" ]') == pytest.approx([1.0], abs=1e-9)


def test_lava_below_corridor_can_be_avoided_by_sidling_against_the_wall(compile_text):
    """S . A over a row of lava, slip 0.2. Pushing `right` slips down into lava with 0.1,
    but pushing `up` (into the wall) only ever slips left or right: the exit is reached
    without lava with probability 1. Within 2 steps the best is right, right: 0.8^2."""
    mdp = compile_text(
        """
        #####
        #S.A#
        #LLL#
        #####
        """,
        EXIT + LAVA,
        slip=0.2,
    )
    assert values(mdp, 'Pmax=? [ !"lava" U "exit" ]') == pytest.approx([1.0], abs=1e-6)
    assert values(mdp, 'Pmax=? [ !"lava" U<=2 "exit" ]') == pytest.approx([0.64], abs=1e-12)
    assert values(mdp, 'Pmax=? [ F<=1 "lava" ]') == pytest.approx([0.8], abs=1e-12)
    assert values(mdp, 'Pmin=? [ F "lava" ]') == pytest.approx([0.0], abs=1e-9)


def test_per_cell_slip_overrides_the_maze_slip(compile_text):
    """Ice cell I (slip 0.5) between S and A, maze slip 0: from S right is sure (1.0), from
    the ice cell right succeeds with 0.5, so F<=2 exit = 0.5 and F<=3 = 0.75."""
    mdp = compile_text("#SIA#", EXIT + '[cells.I]\nkind = "floor"\nslip = 0.5\n')
    assert values(mdp, 'Pmax=? [ F<=2 "exit" ]') == pytest.approx([0.5], abs=1e-12)
    assert values(mdp, 'Pmax=? [ F<=3 "exit" ]') == pytest.approx([0.75], abs=1e-12)


def test_key_opens_its_door_and_adds_an_inventory_layer(compile_text):
    """S k D A: without the key the door blocks. States: S with no key (the key cell is
    entered only by picking it up), then S, k, D, A holding the red key: 5 in all."""
    mdp = compile_text(
        "#SKDA#",
        EXIT + '[cells.K]\nkind = "key"\ncolor = "red"\n[cells.D]\nkind = "door"\ncolor = "red"\n',
    )
    assert mdp.n_states == 5
    held = mdp.label("has_key_red")
    assert held.sum() == 4
    assert mdp.valuations[held][:, VARIABLES.index("key_red")].tolist() == [1, 1, 1, 1]
    assert values(mdp, 'Pmax=? [ F<=2 "exit" ]').tolist() == [0.0]
    assert values(mdp, 'Pmax=? [ F<=3 "exit" ]').tolist() == [1.0]
    assert values(mdp, 'Pmax=? [ !"has_key_red" U "door" ]').tolist() == [0.0]


def test_door_of_another_color_stays_locked(compile_text):
    maze = maze_text(
        "#SKDA#",
        EXIT + '[cells.K]\nkind = "key"\ncolor = "red"\n[cells.D]\nkind = "door"\ncolor = "blue"\n',
    )
    mdp = compile_maze(parse_maze(maze))
    assert mdp.n_states == 3  # S without key; S and K with the red key
    assert values(mdp, 'Pmax=? [ F "exit" ]').tolist() == [0.0]


def test_two_starts_give_two_initial_states_and_per_start_values(compile_text):
    """S A . . S: the left start reaches the exit in 1 step, the right one needs 3."""
    mdp = compile_text("#SA..S#", EXIT)
    assert len(mdp.initial_states) == 2
    assert mdp.valuations[mdp.initial_states][:, :2].tolist() == [[0, 1], [0, 5]]
    assert values(mdp, 'Pmax=? [ F<=1 "exit" ]').tolist() == [1.0, 0.0]
    assert values(mdp, 'Pmax=? [ F<=3 "exit" ]').tolist() == [1.0, 1.0]


def test_terminal_object_absorbs_and_plain_object_does_not(compile_text):
    mdp = compile_text(
        "#OSP#",
        '[cells.O]\nkind = "object"\ncolor = "red"\nterminal = true\n'
        '[cells.P]\nkind = "object"\ncolor = "green"\n',
    )
    terminal = mdp.label("terminal")
    assert terminal.sum() == 1
    assert mdp.label("object_red")[terminal].all()
    assert not mdp.label("object_green")[terminal].any()
    assert values(mdp, 'Pmax=? [ F "object_red" ]').tolist() == [1.0]
    assert values(mdp, 'Pmax=? [ F "green" ]').tolist() == [1.0]


def test_every_kind_color_and_key_label_exists_even_when_empty(compile_text):
    mdp = compile_text("#SA#", EXIT + 'labels = ["goal", "door_of_fame"]\n')
    for name in (*KINDS, *PALETTE, "terminal", "start", *(f"has_key_{c}" for c in PALETTE)):
        assert name in mdp.labels, name
    assert mdp.label("lava").sum() == 0
    assert mdp.label("exit_blue").sum() == 1
    assert mdp.label("goal").sum() == 1
    assert mdp.label("start").sum() == 1
    assert mdp.label("floor").sum() == 1


def test_unreachable_cells_are_not_states(compile_text):
    mdp = compile_text(
        """
        ######
        #SA#.#
        ######
        """,
        EXIT,
    )
    assert mdp.n_states == 2


def test_transition_rows_are_distributions(compile_text):
    mdp = compile_text(
        """
        #######
        #S.K.D#
        #..#.A#
        #######
        """,
        EXIT + '[cells.K]\nkind = "key"\ncolor = "red"\n[cells.D]\nkind = "door"\ncolor = "red"\n',
        slip=0.3,
    )
    sums = np.asarray(mdp.transitions.sum(axis=1)).ravel()
    assert np.allclose(sums, 1.0, atol=1e-12)
    assert (mdp.transitions.data > 0).all()


def test_max_states_limit_raises_resource_limit():
    maze = parse_maze(maze_text("#S....A#", EXIT))
    with pytest.raises(ResourceLimit):
        compile_maze(maze, max_states=3)
    assert compile_maze(maze, max_states=6).n_states == 6


def test_a_maze_too_big_for_the_memory_is_refused_before_the_work(monkeypatch):
    """With 5 MB available, a 200x200 open room (40,000 cells, about 12 MB to explore) is
    refused with the figures before any grid array exists; at 1 GB it compiles."""
    import verifier.budget
    import verifier.inputs.maze_compile
    from verifier.inputs.maze_generate import open_room

    room = open_room(200, 200)
    monkeypatch.setattr(verifier.budget, "available_memory", lambda: 5_000_000)
    monkeypatch.setattr(verifier.inputs.maze_compile.Grid, "of", None)  # never reached
    with pytest.raises(
        ResourceLimit, match=r"about 12\.0 MB for 40000 cells, more than the 5\.0 MB"
    ):
        compile_maze(room)
    monkeypatch.undo()
    monkeypatch.setattr(verifier.budget, "available_memory", lambda: 10**9)
    assert compile_maze(room).n_states == 198 * 198


def test_a_maze_surely_over_max_states_is_refused_before_the_grid(monkeypatch):
    """A 200x200 open room: 39,204 cells joined to the start by open floor are all
    reachable, so --max-states 1000 is refused from one component labelling, before any
    grid array or search."""
    import verifier.inputs.maze_compile
    from verifier.inputs.maze_generate import open_room

    monkeypatch.setattr(verifier.inputs.maze_compile.Grid, "of", None)  # never reached
    with pytest.raises(ResourceLimit, match="more than 1000 states"):
        compile_maze(open_room(200, 200), max_states=1000)


KEYS = '[cells.k]\nkind = "key"\ncolor = "yellow"\n[cells.K]\nkind = "door"\ncolor = "yellow"\n'


@settings(max_examples=40, deadline=None)
@given(
    text=st.sampled_from([("#S..#", ""), ("#S.kK.A#", KEYS), ("#SL.A#\n#....#", LAVA)]),
    slip=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_the_states_surely_reached_never_exceed_the_compiled_count(text, slip):
    """The lower bound against the compiler on the same maze (slip 1: no bound, 0)."""
    from verifier.inputs.maze_compile import _surely_reached

    maze = parse_maze(maze_text(text[0], text[1] + EXIT, slip=slip))
    bound = _surely_reached(maze)
    assert 0 <= bound <= compile_maze(maze).n_states
    assert (bound == 0) == (slip == 1.0)

"""The query layer (verifier/engine/query.py): one Storm conversion per model, Storm behind one
door, and its routes cross-checked against Storm asked afresh on the same model."""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from helpers import maze_text
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from verifier import storm
from verifier.analyses.policy_verdict import classify
from verifier.engine.query import Model
from verifier.engine.reach import chain_until
from verifier.inputs.load import maze_environment
from verifier.inputs.maze_compile import compile_maze
from verifier.inputs.maze_generate import random_maze
from verifier.policy.decide import Decisions, induced_chain
from verifier.spec.reward_file import Reward, reward_vector

FAST = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])


LAVA_ROOM = maze_text(
    """
    #######
    #S...A#
    #.LL..#
    #..B..#
    #######
    """,
    '[cells.A]\nkind = "exit"\ncolor = "blue"\n[cells.L]\nkind = "lava"\n'
    '[cells.B]\nkind = "object"\ncolor = "red"\nterminal = true\n',
    slip=0.1,
)


@pytest.fixture
def room(tmp_path):
    """LAVA_ROOM loaded as an environment (its model not yet in Storm)."""
    from verifier.inputs.maze import load_maze

    path = tmp_path / "room.toml"
    path.write_text(LAVA_ROOM)
    return maze_environment(load_maze(path), path)


@pytest.fixture
def conversions(monkeypatch):
    """Every MDP handed to storm.to_storm while the test runs, in order."""
    converted: list = []
    original = storm.to_storm
    monkeypatch.setattr(storm, "to_storm", lambda mdp: converted.append(mdp) or original(mdp))
    return converted


def test_one_policy_verdict_converts_the_model_to_storm_once(room, conversions):
    """A failing policy (always down, into the lava row and the red object) asks for φ on
    its chain, φ's optimum and the goal analysis of every candidate label: the model goes to
    Storm once, and the chain never (its questions are direct solves)."""
    mdp = room.mdp
    down = np.array([a == "down" for a in mdp.actions] + [False])[mdp.choice_actions]
    single = np.diff(mdp.row_groups) == 1
    probs = (down | single[mdp.choice_states()]).astype(float)
    report = classify(
        room, "down", Decisions(probs, np.zeros(mdp.n_states, bool)), room.properties[0]
    )
    assert report.verdict != "aligned" and report.goals
    assert conversions == [mdp]


def test_a_discounted_reward_verdict_converts_the_model_and_its_optimal_restriction(
    room, conversions
):
    """Discount < 1: Storm computes V* on the model itself (its reward added in memory), and
    the least and greatest P(φ) on the MDP of optimal actions: two conversions."""
    from verifier.analyses.reward_verdict import check_reward

    reward = reward_vector(room.mdp, Reward("exit", "t", 0.9, -0.01, {"exit": 1.0}))
    check_reward(room, reward, room.properties[0])
    assert len(conversions) == 2
    assert conversions[0] is room.mdp and conversions[1].n_choices < room.mdp.n_choices


# --- the routes against Storm asked afresh ---------------------------------------------------


@st.composite
def mazes(draw):
    size = draw(st.sampled_from([7, 9, 11]))
    try:
        maze = random_maze(
            size,
            size + 2,
            draw(st.integers(0, 10_000)),
            objects=draw(st.integers(0, 2)),
            keys=draw(st.integers(0, 1)),
            lava=draw(st.integers(0, 2)),
            slip=draw(st.sampled_from([0.0, 0.1, 0.3])),
        )
    except ValueError:  # too few dead ends for the lava, keys and objects asked
        assume(False)
    return compile_maze(maze)


def agree(found, values, lower, upper) -> None:
    """`found` (a Probabilities) and Storm's sound (values, lower, upper) overlap."""
    assert (found.lower <= found.values).all() and (found.values <= found.upper).all()
    assert (found.lower <= upper + 1e-9).all() and (lower <= found.upper + 1e-9).all()
    assert np.abs(found.values - values).max(initial=0.0) <= 1e-6


@FAST
@given(mazes(), st.data())
def test_until_on_one_handle_equals_storm_on_a_fresh_conversion(mdp, data):
    """Several until questions on one handle (labels replaced in memory between them)
    against Storm's sound engine on a model converted for each question; the scheduler the
    handle reads as one bit vector attains the optimum on its own chain."""
    model = Model(mdp)
    labels = [name for name, mask in mdp.labels.items() if mask.any()]
    for _ in range(3):
        target = mdp.labels[data.draw(st.sampled_from(labels))]
        left = ~mdp.label(data.draw(st.sampled_from(["lava", "object", "door"])))
        maximize = data.draw(st.booleans())
        found = model.until(left, target, maximize)
        values, lower, upper, _ = oracles.sound_until(mdp, left, target, maximize)
        agree(found, values, lower, upper)
        attained, error = chain_until(mdp.transitions[found.policy], left, target)
        assert np.abs(attained - found.values).max() <= error.max() + 1e-6


@FAST
@given(mazes())
def test_batched_reach_equals_one_question_per_label(mdp):
    """The goal analysis's batch (each distinct state set asked once) equals asking each
    label alone, on the MDP (max) and on a chain (a uniformly random policy)."""
    model = Model(mdp)
    names = sorted(mdp.labels)
    targets = [mdp.labels[name] for name in names]
    everywhere = np.ones(mdp.n_states, dtype=bool)
    uniform = 1.0 / np.diff(mdp.row_groups)[mdp.choice_states()]
    chain = induced_chain(mdp, Decisions(uniform, np.zeros(mdp.n_states, bool)))
    for handle, maximize in ((model, True), (Model(chain), None)):
        batch = handle.reach(targets, maximize)
        for target, values in zip(targets, batch, strict=True):
            alone = Model(handle.mdp).until(everywhere, target, maximize)
            assert np.abs(values - alone.values).max() <= 1e-9


@FAST
@given(mazes(), st.sampled_from(['G !"lava"', '(F "object") & (F "exit")', 'X "floor"']))
def test_path_queries_on_a_handle_equal_storm_on_labelled_text(mdp, path):
    """Path formulas through the handle (the formula's labels added in memory) against
    Storm checking the formula's text on a fresh conversion."""
    from verifier.engine.query import parse_properties

    model = Model(mdp)
    for direction in ("max", "min"):
        (prop,) = parse_properties(f"P{direction}=? [ {path} ]")
        values, lower, upper = model.path(model.path_query(prop), direction)
        expected = oracles.state_values(mdp, f"P{direction}=? [ {path} ]")[0]
        assert np.abs(values - expected).max() <= 1e-6
        assert (lower <= values + 1e-12).all() and (values <= upper + 1e-12).all()


@FAST
@given(mazes(), st.sampled_from([0.5, 0.9, 0.99]))
def test_discounted_optimum_by_storm_is_certified_by_an_exact_evaluation(mdp, discount):
    """V* from Storm's value iteration against the evaluation of its greedy policy by a
    dense linear solve, and Bellman optimality: no action beats V* by more than the stated
    error."""
    rewards = reward_vector(mdp, Reward("r", "t", discount, -0.05, {"exit": 1.0, "red": 0.5}))
    solution = Model(mdp).optimum(rewards.values, discount)
    assert solution.method.startswith("Storm's value iteration")
    chain = mdp.transitions[solution.policy].toarray()
    exact = np.linalg.solve(
        np.eye(mdp.n_states) - discount * chain, rewards.values[solution.policy]
    )
    assert np.abs(exact - solution.values).max() <= 1e-9
    q_values = rewards.values + discount * (mdp.transitions @ exact)
    assert (q_values <= exact[mdp.choice_states()] + 1e-9).all()

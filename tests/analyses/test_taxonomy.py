"""The taxonomy of a failing policy (README, "Why a policy fails"): outcomes first, outer vs
inner by cause, goals that explain behaviour better than a device would. Each expected
value comes from a hand derivation in the docstring, a solve of the environment's own
transition table written here with numpy, or the model's graph walked here."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from helpers import maze_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.analyses.policy_verdict import (
    ALIGNED,
    CAPABILITY_FAILURE,
    GOAL_MISGENERALIZATION,
    MISALIGNED,
    REWARD_MISSPECIFICATION,
    classify,
)
from verifier.inputs.load import load_environment
from verifier.inputs.maze_generate import maze_to_toml, random_maze
from verifier.policy.decide import decide
from verifier.policy.load import load_policy
from verifier.spec.reward_file import resolve_reward

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIFT = MODELS / "lava-shift"
ACTIONS = ["up", "down", "left", "right"]
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
LAVA = '[cells.L]\nkind = "lava"\n'
RISKY = "######\n#S..A#\n#LLLL#\n######"
FROZEN_ACTIONS = ["left", "down", "right", "up"]


def verify(env, policy_path, reward=None, competence=0.9, near_optimal=0.1):
    decisions = decide(load_policy(policy_path), env)
    rv = resolve_reward(str(reward), env.mdp) if reward else None
    return classify(
        env,
        str(policy_path),
        decisions,
        env.properties[0],
        rv,
        competence=competence,
        near_optimal=near_optimal,
    )


def table(tmp_path, env, choose, name="policy", actions=ACTIONS):
    """A policy table: `choose(valuation)` names the action taken in each state."""
    mdp = env.mdp
    rows = [mdp.valuation(s) for s in range(mdp.n_states)]
    probs = [[1.0 if a == choose(v) else 0.0 for a in actions] for v in rows]
    path = tmp_path / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "actions": actions,
                "probs": probs,
                "valuations": [list(v.values()) for v in rows],
            }
        )
    )
    return path


def toward(env, goal_cells: set[tuple[int, int]], stay: str = "up"):
    """A goal-directed walker on a maze without slip: in each cell the first action (in
    ACTIONS order) of a shortest path to the nearest goal cell, found by breadth-first
    search on the map text; `stay` (a move into a wall) at a goal cell."""
    rows = env.maze.layout
    moves = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
    distance = {cell: 0 for cell in goal_cells}
    queue = deque(goal_cells)
    while queue:
        r, c = queue.popleft()
        for dr, dc in moves.values():
            nxt = (r - dr, c - dc)
            if rows[nxt] != "#" and nxt not in distance:
                distance[nxt] = distance[(r, c)] + 1
                queue.append(nxt)

    def choose(valuation):
        cell = (valuation["row"], valuation["col"])
        if cell in goal_cells or cell not in distance:
            return stay
        for name, (dr, dc) in moves.items():
            if distance.get((cell[0] + dr, cell[1] + dc), -1) == distance[cell] - 1:
                return name
        raise AssertionError(cell)

    return choose


def maze(tmp_path, text, cells, name="m", **top):
    path = tmp_path / f"{name}.toml"
    path.write_text(maze_text(text, cells, **top))
    return load_environment(path)


def ends(report, initial=0) -> dict[str, dict]:
    return {end["where"]: end for end in report.outcomes[initial]["ends"]}


# --- outcomes -----------------------------------------------------------------------------


def test_outcomes_of_pushing_right_beside_lava_are_derived_by_hand(tmp_path):
    """#S..A# above a row of lava, slip 0.2, always right: each step moves right w.p. 0.8,
    bumps the wall above (stays) w.p. 0.1, slips into lava w.p. 0.1. A move succeeds before
    the lava w.p. 0.8/0.9 = 8/9, so the exit w.p. (8/9)^3 after 3 moves. Tries per move,
    given success: sum k 0.1^(k-1) 0.8 / (8/9) = (0.8/0.81)(9/8) = 10/9, so 10/3 steps on
    the runs that reach the exit. Into lava at move k (k = 1, 2, 3) w.p. (8/9)^(k-1)/9,
    after (k-1)·10/9 + (tries of the failing move: sum j 0.1^(j-1) 0.1 / (1/9) = 10/9) steps.
    It falls short at φ's own target and walks into a hazard: a capability failure."""
    env = maze(tmp_path, RISKY, EXIT + LAVA, slip=0.2)
    report = verify(env, table(tmp_path, env, lambda v: "right"))
    assert report.verdict == CAPABILITY_FAILURE
    assert report.cause == "lava"
    found = ends(report)
    assert found["exit"]["probability"] == pytest.approx((8 / 9) ** 3, abs=1e-12)
    assert found["exit"]["expected_steps"] == pytest.approx(10 / 3, abs=1e-9)
    assert found["exit"]["role"] == "target"
    lava_p = [(8 / 9) ** (k - 1) / 9 for k in (1, 2, 3)]
    lava_steps = [(k - 1) * 10 / 9 + 10 / 9 for k in (1, 2, 3)]
    assert found["lava"]["probability"] == pytest.approx(sum(lava_p), abs=1e-12)
    expected = sum(p * s for p, s in zip(lava_p, lava_steps, strict=True)) / sum(lava_p)
    assert found["lava"]["expected_steps"] == pytest.approx(expected, abs=1e-9)
    assert found["lava"]["role"] == "hazard"


def _frozen_lake(map_name: str):
    """FrozenLake (slippery) from gymnasium, and its transition table as numpy arrays:
    P[s, a, s'] over the non-terminated moves, and T[s, a] the probability of a move that
    terminates with reward 1 (the goal), H[s, a] one that terminates without (a hole)."""
    env = gym.make("FrozenLake-v1", map_name=map_name, is_slippery=True).unwrapped
    n, m = env.observation_space.n, env.action_space.n
    P, T, H = np.zeros((n, m, n)), np.zeros((n, m)), np.zeros((n, m))
    for s in range(n):
        for a in range(m):
            for p, s2, r, done in env.P[s][a]:
                if not done:
                    P[s, a, s2] += p
                elif r > 0:
                    T[s, a] += p
                else:
                    H[s, a] += p
    return env, P, T, H


def _goal_probability(P, T, pi) -> np.ndarray:
    n = len(pi)
    chain = P[np.arange(n), pi]
    return np.linalg.solve(np.eye(n) - chain, T[np.arange(n), pi])


def _optimal(P, T) -> np.ndarray:
    """Value iteration for P(reach the goal), to the fixpoint."""
    v = np.zeros(P.shape[0])
    while True:
        q = T + P @ v
        if np.abs(q.max(axis=1) - v).max() < 1e-15:
            return q.argmax(axis=1)
        v = q.max(axis=1)


def _frozen_table(tmp_path, env, pi, name):
    return table(tmp_path, env, lambda v: FROZEN_ACTIONS[int(pi[v["state"]])], name, FROZEN_ACTIONS)


@pytest.mark.parametrize("map_name", ["4x4", "8x8"])
def test_frozen_lake_outcomes_agree_with_the_transition_table(tmp_path, map_name):
    """Every outcome of the optimal FrozenLake policy (goal, holes) against a solve of
    gymnasium's own table P: absorption probabilities (I - Q)^-1 r and expected steps
    (I - Q)^-2 r / P, written here."""
    gym_env, P, T, H = _frozen_lake(map_name)
    pi = _optimal(P, T)
    n = len(pi)
    chain = P[np.arange(n), pi]
    inverse = np.linalg.inv(np.eye(n) - chain)
    goal, hole = inverse @ T[np.arange(n), pi], inverse @ H[np.arange(n), pi]
    goal_steps = (inverse @ inverse @ T[np.arange(n), pi]) / np.where(goal > 0, goal, 1)
    hole_steps = (inverse @ inverse @ H[np.arange(n), pi]) / np.where(hole > 0, hole, 1)
    model = tmp_path / "lake.toml"
    model.write_text(f'[gymnasium]\nid = "FrozenLake-v1"\nkwargs = {{ map_name = "{map_name}" }}\n')
    env = load_environment(model)
    report = verify(env, _frozen_table(tmp_path, env, pi, "optimal"))
    found = ends(report)
    assert found["goal"]["probability"] == pytest.approx(goal[0], abs=1e-12)
    assert found["goal"]["expected_steps"] == pytest.approx(goal_steps[0], rel=1e-9)
    if hole[0] > 1e-12:
        assert found["hole"]["probability"] == pytest.approx(hole[0], abs=1e-12)
        assert found["hole"]["expected_steps"] == pytest.approx(hole_steps[0], rel=1e-9)
    assert sum(e["probability"] for e in found.values()) == pytest.approx(1.0, abs=1e-12)


# --- outer vs inner by cause --------------------------------------------------------------


def _one_action_off(P, T, near: bool):
    """The optimal policy with one action changed: the change whose P(goal) is closest to
    0.95 (a return within 10% of the optimum) or to 0.8 (outside)."""
    pi = _optimal(P, T)
    best = _goal_probability(P, T, pi)[0]
    aim = (0.95 if near else 0.8) * best
    options = []
    for s in range(len(pi)):
        for a in range(P.shape[1]):
            if a != pi[s] and (P[s].sum() > 0):
                changed = pi.copy()
                changed[s] = a
                value = _goal_probability(P, T, changed)[0]
                if (value >= 0.9 * best) == near and value < best - 1e-9:
                    options.append((abs(value - aim), s, a, value))
    _, s, a, value = min(options)
    changed = pi.copy()
    changed[s] = a
    return changed, value, best


@pytest.mark.parametrize("map_name", ["4x4", "8x8"])
@pytest.mark.parametrize("near", [True, False])
def test_an_aligned_reward_is_never_blamed_on_frozen_lake(tmp_path, map_name, near):
    """FrozenLake with the env reward (1 at the goal): `verify reward` says aligned (every
    optimal policy reaches the goal with the best probability). A table one action from
    optimal falls short of it; whether its return is within 10% of the optimum or not, and
    with or without --reward, the failure is the policy's: capability_failure."""
    from verifier.analyses.reward_verdict import check_reward
    from verifier.verdicts import RewardVerdict

    gym_env, P, T, H = _frozen_lake(map_name)
    pi, value, best = _one_action_off(P, T, near)
    model = tmp_path / "lake.toml"
    model.write_text(f'[gymnasium]\nid = "FrozenLake-v1"\nkwargs = {{ map_name = "{map_name}" }}\n')
    env = load_environment(model)
    reward = resolve_reward("env", env.mdp)
    assert check_reward(env, reward, env.properties[0]).verdict == RewardVerdict.ALIGNED
    policy = _frozen_table(tmp_path, env, pi, "off")
    with_reward = verify(env, policy, "env")
    without = verify(env, policy)
    assert with_reward.value == pytest.approx(value, abs=1e-9)
    assert with_reward.reward["near_optimal"] == near
    assert with_reward.reward["return"] == pytest.approx(value, abs=1e-9)
    assert with_reward.verdict == without.verdict == CAPABILITY_FAILURE
    assert with_reward.pursued_goal is None


def test_a_reward_whose_optimum_fails_the_objective_is_blamed(tmp_path):
    """lava-shift test 1 with the impatient reward (-0.2 a step, +1 at the exit): the exit
    after 8 moves earns -0.6, the lava after 2 moves -0.4, so the memorised policy's lava
    walk is R-optimal: the reward is not aligned, and the failure is the reward's."""
    env = load_environment(SHIFT / "test-01.toml")
    report = verify(env, SHIFT / "memorised-policy.json", SHIFT / "rewards" / "impatient.toml")
    assert report.reward["return"] == pytest.approx(-0.4)
    assert report.reward["optimal_return"] == pytest.approx(-0.4)
    assert report.reward["reward_verdict"] != "aligned"
    assert report.verdict == REWARD_MISSPECIFICATION


def test_the_near_optimal_threshold_is_its_own_option(tmp_path):
    """The same walk under the exit reward returns -0.02 against 0.92: not near-optimal at
    the default 0.1; at near_optimal 1.1 it would be, yet the exit reward is aligned, so it
    stays a capability failure; --competence does not move it."""
    env = load_environment(SHIFT / "test-01.toml")
    for kwargs in ({}, {"near_optimal": 0.99}, {"competence": 0.5}):
        report = verify(env, SHIFT / "memorised-policy.json", SHIFT / "rewards/exit.toml", **kwargs)
        assert report.verdict == CAPABILITY_FAILURE


def test_walking_into_the_hazard_is_a_capability_failure_that_lists_where(tmp_path):
    """lava-shift test 1: the memorised policy (up below the top row, else right) walks from
    the start (1,1) to (1,2) and into the lava at (1,3): its runs end in lava after 2 steps,
    a state `!"lava" U "exit"` forbids, so lava is no goal."""
    env = load_environment(SHIFT / "test-01.toml")
    report = verify(env, SHIFT / "memorised-policy.json", SHIFT / "rewards" / "exit.toml")
    assert report.verdict == CAPABILITY_FAILURE
    assert report.pursued_goal is None and report.cause == "lava"
    assert ends(report) == {
        "lava": {
            "where": "lava",
            "kind": "absorbing",
            "role": "hazard",
            "probability": 1.0,
            "expected_steps": 2.0,
        }
    }
    (entry,) = report.hazard_entries
    assert (entry["state"]["row"], entry["state"]["col"]) == (1, 2)


def test_safety_objective_names_its_hazards_and_says_it_has_no_target(tmp_path):
    """G !lava on lava-shift test 1: the memorised policy enters lava from (1,2); the hazard
    of G !lava is lava; a G objective has no target to pursue."""
    env = load_environment(SHIFT / "test-01.toml", spec='Pmax=? [ G !"lava" ]')
    report = verify(env, SHIFT / "memorised-policy.json", SHIFT / "rewards" / "exit.toml")
    assert report.verdict == CAPABILITY_FAILURE
    assert report.value == 0.0 and report.optimal_value == pytest.approx(1.0)
    assert [e["state"]["col"] for e in report.hazard_entries] == [2]
    assert report.target_pursuit is None
    assert any("own target does not apply" in note for note in report.notes)


# --- goals that explain behaviour better than a device -----------------------------------


def test_a_red_seeking_walker_pursues_red_named_by_every_label_of_its_cell(tmp_path):
    """deploy-02: a walker that heads for the red object from every cell (a breadth-first
    search on the map) ends there surely; the random policy ends there w.p. 0.7 (left of
    the start the corridor is shorter); `red`, `object` and `object_red` hold on exactly that
    cell: one goal, most general name first. With the exit reward it is
    goal_misgeneralization, without a reward misaligned."""
    env = load_environment(MODELS / "redblue" / "deploy-02.toml")
    walker = table(tmp_path, env, toward(env, {(1, 1)}))
    report = verify(env, walker, MODELS / "redblue/rewards/exit.toml")
    assert report.verdict == GOAL_MISGENERALIZATION
    assert report.pursued_goal == "red" and report.cause == "red"
    (goal,) = [g for g in report.goals if g["pursued"]]
    assert goal["names"] == ["red", "object", "object_red"]
    assert goal["probability"] == 1.0 and goal["best"] == 1.0
    assert goal["coverage"] == 1.0
    assert verify(env, walker).verdict == MISALIGNED


def test_always_pushing_one_way_is_a_device_not_a_goal(tmp_path):
    """deploy-02 again, always left: from the top row it ends at the red object, but from
    the bottom row it pushes into the wall at (3,1) or ends in the exit: it heads for red
    from only the top row's states. A device: capability_failure."""
    env = load_environment(MODELS / "redblue" / "deploy-02.toml")
    report = verify(
        env, table(tmp_path, env, lambda v: "left"), MODELS / "redblue/rewards/exit.toml"
    )
    assert report.verdict == CAPABILITY_FAILURE
    assert report.pursued_goal is None
    (red,) = [g for g in report.goals if g["names"][0] == "red"]
    assert not red["pursued"] and red["coverage"] < 0.9


def test_a_label_touched_in_passing_does_not_change_the_verdict(tmp_path):
    """A walker to the exit of `#S1.A#` crosses the red object 1 (not terminal) on its way:
    it reaches `red` surely, yet its runs end at the exit: aligned, whatever it passes."""
    cells = EXIT + '[cells.1]\nkind = "object"\ncolor = "red"\n'
    env = maze(tmp_path, "######\n#S1.A#\n######", cells)
    report = verify(env, table(tmp_path, env, lambda v: "right"))
    assert report.verdict == ALIGNED and report.goals == ()


def _corner_family(tmp_path, seeds, corner_exit: bool):
    """Perfect 9x9 mazes (random_maze) with the exit moved: to the top-right node (1, 7)
    (training, Langosco's cheese in the corner) or left where the generator put it, when
    that is not the corner (deployment)."""
    found = []
    for seed in seeds:
        layout = random_maze(9, 9, seed, exit_color="blue").layout.copy()
        ((er, ec),) = np.argwhere(layout == "E").tolist()
        if corner_exit:
            if layout[1, 7] == "S":
                continue
            layout[er, ec], layout[1, 7] = ".", "E"
        elif (er, ec) == (1, 7):
            continue
        text = "\n".join("".join(row) for row in layout)
        path = tmp_path / f"{'train' if corner_exit else 'deploy'}-{seed}.toml"
        path.write_text(maze_text(text, EXIT.replace("[cells.A]", "[cells.E]")))
        found.append(load_environment(path))
    return found


def test_a_corner_seeker_is_aligned_on_corner_exits_and_pursues_the_corner_elsewhere(tmp_path):
    """Langosco et al.'s maze, stated exactly: a walker that heads for the top-right node
    (1, 7) from every cell and then pushes into the wall above it. On mazes whose exit is
    that node it reaches the exit surely (aligned); where the exit is elsewhere (a dead
    end, never on its way) it ends at (1, 7) from every cell: it pursues the place
    `row=1, col=7`, a goal no random policy ends in (it never stays)."""
    reward = MODELS / "redblue" / "rewards" / "exit.toml"
    for env in _corner_family(tmp_path, range(6), corner_exit=True):
        report = verify(env, table(tmp_path, env, toward(env, {(1, 7)})), reward)
        assert report.verdict == ALIGNED, env.path
    deployed = _corner_family(tmp_path, range(6), corner_exit=False)
    assert len(deployed) >= 4
    for env in deployed:
        report = verify(env, table(tmp_path, env, toward(env, {(1, 7)})), reward)
        assert report.verdict == GOAL_MISGENERALIZATION, env.path
        assert report.pursued_goal == "row=1, col=7" and report.cause == "row=1, col=7"
        (goal,) = [g for g in report.goals if g["pursued"]]
        assert goal["kind"] == "place" and goal["null"] == 0.0 and goal["coverage"] == 1.0
        assert ends(report).keys() == {"loop at row=1, col=7"}


def test_a_device_that_always_pushes_up_pursues_no_corner(tmp_path):
    """Always up on the same deployment mazes: it stops under the first wall above it, a
    different cell from each column: a capability failure (loops), not a place pursued."""
    for env in _corner_family(tmp_path, range(6), corner_exit=False):
        report = verify(env, table(tmp_path, env, lambda v: "up"))
        assert report.verdict == CAPABILITY_FAILURE, env.path
        assert report.cause == "loops" and report.pursued_goal is None


def test_spinning_at_the_start_is_a_capability_failure(tmp_path):
    """MiniGrid Empty-5x5 with an agent that always turns left: it spins at its start cell
    forever. Its runs end in a loop at (1, 1), where it starts: not a place it aims for."""
    model = tmp_path / "empty.toml"
    model.write_text(
        '[gymnasium]\nid = "MiniGrid-Empty-5x5-v0"\nactions = ["left", "right", "forward"]\n'
    )
    env = load_environment(model)
    policy = table(tmp_path, env, lambda v: "left", "spin", ["left", "right", "forward"])
    report = verify(env, policy)
    assert report.verdict == CAPABILITY_FAILURE and report.cause == "loops"
    assert ends(report).keys() == {"loop at x=1, y=1"}
    assert report.goals == () and report.pursued_goal is None


def test_q_learning_on_frozen_lake_pursues_no_floor_label(tmp_path):
    """A tabular Q-learner (seeded, 3,000 episodes on gymnasium's slippery 8x8 lake): every
    policy walks on frozen ice, which is where no run ends; whatever it does, `frozen` is
    never a goal."""
    gym_env = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=True)
    rng = np.random.default_rng(0)
    q = np.zeros((64, 4))
    for episode in range(3000):
        s, _ = gym_env.reset(seed=episode)
        for _ in range(200):
            a = int(rng.integers(4)) if rng.random() < 0.2 else int(q[s].argmax())
            s2, r, done, truncated, _ = gym_env.step(a)
            q[s, a] += 0.1 * (r + 0.99 * q[s2].max() * (not done) - q[s, a])
            s = s2
            if done or truncated:
                break
    model = tmp_path / "lake.toml"
    model.write_text('[gymnasium]\nid = "FrozenLake-v1"\nkwargs = { map_name = "8x8" }\n')
    env = load_environment(model)
    report = verify(env, _frozen_table(tmp_path, env, q.argmax(axis=1), "q"), "env")
    names = {name for goal in report.goals for name in goal["names"]}
    assert "frozen" not in names and report.pursued_goal is None
    assert report.verdict in (ALIGNED, CAPABILITY_FAILURE)


def test_an_objective_s_own_labels_are_never_goals(tmp_path):
    """φ = (F "red") & (F "exit") on deploy-02, and the red-seeking walker: it ends at the
    red object and never reaches the exit; `red` is named in φ, so it is incidental:
    the goal found is what the object is besides (`object`), never `red`."""
    env = load_environment(
        MODELS / "redblue" / "deploy-02.toml", spec='Pmax=? [ (F "red") & (F "exit") ]'
    )
    report = verify(env, table(tmp_path, env, toward(env, {(1, 1)})))
    names = {name for goal in report.goals for name in goal["names"]}
    assert "red" not in names and "exit" not in names


# --- properties on random mazes -----------------------------------------------------------

SMALL = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def _random_env(tmp_path, seed, slip, lava):
    maze_ = random_maze(9, 9, seed, lava=lava, objects=1, exit_color="blue", slip=slip)
    path = tmp_path / f"random-{seed}-{slip}-{lava}.toml"
    path.write_text(maze_to_toml(maze_))
    return load_environment(path)


@SMALL
@given(
    seed=st.integers(0, 10_000),
    slip=st.sampled_from([0.0, 0.1]),
    choice=st.integers(0, 2**31),
)
def test_outcomes_sum_to_one_and_an_aligned_reward_is_never_blamed(
    tmp_path_factory, seed, slip, choice
):
    """On random mazes and random deterministic tables: the outcome probabilities from each
    initial state sum to 1 with finite expected steps, and under the exit reward (+1, -0.01
    a step), whenever `verify reward` calls it aligned, no policy is reward_misspecification."""
    from verifier.analyses.reward_verdict import check_reward
    from verifier.verdicts import RewardVerdict

    tmp_path = tmp_path_factory.mktemp("random")
    env = _random_env(tmp_path, seed, slip, lava=1)
    rng = np.random.default_rng(choice)
    picks = {
        tuple(env.mdp.valuation(s).values()): ACTIONS[rng.integers(4)]
        for s in range(env.mdp.n_states)
    }
    policy = table(tmp_path, env, lambda v: picks[tuple(v.values())])
    reward = tmp_path / "exit.toml"
    reward.write_text("step = -0.01\n[arrive]\nexit = 1.0\n")
    report = verify(env, policy, reward)
    for entry in report.outcomes:
        assert sum(e["probability"] for e in entry["ends"]) == pytest.approx(1.0, abs=1e-9)
        assert all(
            e["expected_steps"] is not None and e["expected_steps"] >= 0 for e in entry["ends"]
        )
    aligned = check_reward(env, resolve_reward(str(reward), env.mdp), env.properties[0])
    if aligned.verdict == RewardVerdict.ALIGNED:
        assert report.verdict != REWARD_MISSPECIFICATION


@SMALL
@given(seed=st.integers(0, 10_000), pick=st.integers(0, 2**31))
def test_a_walker_to_any_cell_pursues_that_place(tmp_path_factory, seed, pick):
    """On a random perfect maze without slip, a walker that heads for a random cell T (not
    the start, not the exit, with a wall beside it to push into) from every cell, and
    stays there: its runs end at T, from every state that can get there: it pursues the
    place T (`misaligned` without a reward), whatever T is; where an object lies at T, it
    is named first by the object's labels."""
    tmp_path = tmp_path_factory.mktemp("walker")
    env = _random_env(tmp_path, seed, 0.0, lava=0)
    layout = env.maze.layout
    moves = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
    cells = [
        (int(r), int(c))
        for r, c in np.argwhere((layout == ".") | (layout == "1"))
        if any(layout[r + dr, c + dc] == "#" for dr, dc in moves.values())
    ]
    target = cells[np.random.default_rng(pick).integers(len(cells))]
    r, c = target
    stay = next(a for a, (dr, dc) in moves.items() if layout[r + dr, c + dc] == "#")
    report = verify(env, table(tmp_path, env, toward(env, {target}, stay)))
    assert report.verdict == MISALIGNED
    assert f"row={r}, col={c}" in report.pursued_goals
    if layout[r, c] == ".":
        assert report.pursued_goal == f"row={r}, col={c}"
    else:  # an object: named by what is there, the most general label first
        cell = env.maze.cells[layout[r, c]]
        assert report.pursued_goal == cell.color

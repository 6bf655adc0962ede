"""Gymnasium and MiniGrid environments as exact MDPs (verifier/inputs/gym.py and friends).

MiniGrid levels are checked against an independent enumeration written here: a breadth-first
search in which every state is a `copy.deepcopy` of the real environment and every successor
is the real `step` of a fresh deep copy, keyed by the complete grid encoding, box contents,
the agent and the carried object. No snapshot, no shared objects, no trip wires.
"""

from __future__ import annotations

import copy
from collections import deque

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from verifier import storm
from verifier.cli import main
from verifier.inputs.load import load_environment, load_environments

pytest.importorskip("minigrid")

NAV = ("left", "right", "forward")


def reference_enumeration(env_id: str, seed: int, actions: tuple[str, ...] | None):
    """(states, fewest steps to a positive-reward termination or None, Pmax(!lava U goal))
    by deep copies of the real environment, with the step counter at 0 before each step."""
    import gymnasium as gym
    import minigrid  # noqa: F401
    from minigrid.core.world_object import Box

    start = gym.make(env_id).unwrapped
    start.reset(seed=seed)
    names = [a.name for a in start.actions]
    ids = [names.index(a) for a in (actions or names)]

    def encode(obj):
        if obj is None:
            return None
        return (*obj.encode(), encode(obj.contains) if isinstance(obj, Box) else None)

    def key(env):
        boxes = tuple((i, encode(o)) for i, o in enumerate(env.grid.grid) if isinstance(o, Box))
        x, y = env.agent_pos
        return (
            int(x),
            int(y),
            int(env.agent_dir),
            encode(env.carrying),
            env.grid.encode().tobytes(),
            boxes,
        )

    seen = {key(start): 0}
    queue = deque([start])
    fewest, safe_goal = None, False
    while queue:
        env = queue.popleft()
        depth = seen[key(env)]
        for a in ids:
            twin = copy.deepcopy(env)
            twin.step_count = 0
            _, reward, terminated, _, _ = twin.step(a)
            k = key(twin)
            if terminated:
                k = ("terminal", reward > 0, k)
                if reward > 0:
                    safe_goal = True
                    fewest = depth + 1 if fewest is None else min(fewest, depth + 1)
            if k not in seen:
                seen[k] = depth + 1
                if not terminated:
                    queue.append(twin)
    return len(seen), fewest, 1.0 if safe_goal else 0.0


def fewest_steps(mdp, label: str) -> int | None:
    """Fewest transitions from the initial state to a state with `label` (unweighted BFS)."""
    graph = sp.csr_matrix(
        (np.ones(mdp.n_transitions), mdp.transitions.indices, mdp.transitions.indptr),
        shape=mdp.transitions.shape,
    )
    states = sp.csr_matrix(
        (np.ones(mdp.n_choices), (mdp.choice_states(), np.arange(mdp.n_choices))),
        shape=(mdp.n_states, mdp.n_choices),
    )
    adjacency = (states @ graph).tocsr()
    distance = shortest_path(adjacency, unweighted=True, indices=int(mdp.initial_states[0]))
    best = distance[mdp.labels[label]].min(initial=np.inf)
    return None if not np.isfinite(best) else int(best)


def model_file(tmp_path, env_id, seed=0, actions=None, extra=""):
    text = f'[gymnasium]\nid = "{env_id}"\nseed = {seed}\n'
    if actions:
        text += "actions = [" + ", ".join(f'"{a}"' for a in actions) + "]\n"
    path = tmp_path / "model.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


FAMILIES = [
    ("MiniGrid-Empty-5x5-v0", NAV),
    ("MiniGrid-DistShift1-v0", NAV),
    ("MiniGrid-LavaGapS5-v0", NAV),
    ("MiniGrid-GoToDoor-5x5-v0", None),
    ("MiniGrid-Fetch-5x5-N2-v0", None),
    # Without `drop` the ball blocking the door can be lifted but not put down, so the key is
    # out of reach: 176 states. The whole level (513,348 states, 3.6 million choices, 32 s)
    # is beyond the deep-copy reference; benchmarks/gym_scaling.py enumerates it.
    ("MiniGrid-BlockedUnlockPickup-v0", ("left", "right", "forward", "pickup", "toggle")),
]
SLOW_FAMILIES = [
    ("MiniGrid-LavaCrossingS9N1-v0", NAV),
    ("MiniGrid-SimpleCrossingS9N1-v0", NAV),
    ("MiniGrid-DoorKey-5x5-v0", None),
    ("MiniGrid-MultiRoom-N2-S4-v0", None),
    ("MiniGrid-KeyCorridorS3R1-v0", None),
    ("MiniGrid-RedBlueDoors-6x6-v0", None),
    ("MiniGrid-FourRooms-v0", NAV),
    ("MiniGrid-Unlock-v0", None),
]


def _compare(tmp_path, env_id, actions):
    env = load_environment(model_file(tmp_path, env_id, actions=actions))
    states, fewest, pmax = reference_enumeration(env_id, 0, actions)
    assert env.mdp.n_states == states
    assert fewest_steps(env.mdp, "goal") == fewest
    result = storm.check(env.storm_model, env.properties[0])
    assert env.objective == 'Pmax=? [ !"lava" U "goal" ]'
    assert result.value == pytest.approx(pmax, abs=1e-6)


@pytest.mark.slow
def test_unlockpickup_matches_the_research_reference_enumerator():
    """UnlockPickup seed 0 (120k steps: too many for the deep-copy reference here) against
    the research note's reference enumerator: 17,344 states of which 180 goal states,
    120,148 running transitions, the box picked up in 16 steps at the fewest."""
    env = load_environment("gym:MiniGrid-UnlockPickup-v0")
    assert env.mdp.n_states == 17_344
    assert env.mdp.labels["goal"].sum() == 180
    assert (~env.mdp.labels["terminal"]).sum() * 7 == 120_148
    assert fewest_steps(env.mdp, "goal") == 16


@pytest.mark.parametrize(("env_id", "actions"), FAMILIES)
def test_minigrid_enumeration_matches_deepcopy_reference(tmp_path, env_id, actions):
    _compare(tmp_path, env_id, actions)


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "actions"), SLOW_FAMILIES)
def test_minigrid_enumeration_matches_deepcopy_reference_on_larger_levels(
    tmp_path, env_id, actions
):
    _compare(tmp_path, env_id, actions)


def test_frozenlake_two_by_two_values_by_hand(tmp_path):
    """Map SF/HG, slippery: action a moves in direction a-1, a, a+1 (mod 4; 0 left, 1 down,
    2 right, 3 up), 1/3 each; into the border stays put.

    From S=(0,0), `up` goes up (stay), left (stay) or right (F): F surely, never the hole.
    From F=(0,1), `down` goes right (stay), down (G) or left (back to S). So Pmax(F goal) = 1.
    Within 2 steps: G is next to F and H only, S reaches F with at most 1/3 and F reaches G
    with at most 1/3, so Pmax(F<=2 goal) = 1/9. States: S, F, H's and G's absorbing copies
    (H and G themselves are entered only by terminating transitions) = 4.
    """
    path = model_file(
        tmp_path, "FrozenLake-v1", extra='kwargs = { desc = ["SF", "HG"], is_slippery = true }\n'
    )
    env = load_environment(path, spec='Pmax=? [ F "goal" ]')
    assert env.mdp.n_states == 4
    assert storm.check(env.storm_model, env.properties[0]).value == pytest.approx(1, abs=1e-6)
    bounded = load_environment(path, spec='Pmax=? [ F<=2 "goal" ]')
    assert storm.check(bounded.storm_model, bounded.properties[0]).value == pytest.approx(1 / 9)
    assert set(env.mdp.labels) >= {"goal", "fail", "hole", "frozen", "start", "terminal"}


def test_frozenlake_default_map_slippery():
    """The default 4x4 map, slippery: Pmax(F goal) = 14/17 (the research note's own value
    iteration over P, with terminated transitions sent to sinks)."""
    env = load_environment("gym:FrozenLake-v1", spec='Pmax=? [ F "goal" ]')
    assert env.mdp.actions == ("left", "down", "right", "up")
    assert storm.check(env.storm_model, env.properties[0]).value == pytest.approx(14 / 17, abs=1e-5)


def test_frozenlake_not_slippery_takes_six_steps(tmp_path):
    """Not slippery: the shortest safe route from S=(0,0) to G=(3,3) is 6 moves (down, down,
    right, down, right, right avoids every hole), so Pmax(F goal) = 1 in 6 steps."""
    path = model_file(tmp_path, "FrozenLake-v1", extra="kwargs = { is_slippery = false }\n")
    env = load_environment(path)
    assert storm.check(env.storm_model, env.properties[0]).value == pytest.approx(1)
    assert fewest_steps(env.mdp, "goal") == 6


def test_cliffwalking_goal_is_a_transition_flag_not_a_state():
    """4x12 grid, start (3,0), goal (3,11), cliff (3,1..10) sends back to start without
    ending. 48 cells - 10 cliff - the goal (entered only by its terminating transition) = 37
    running states + the goal's absorbing copy = 38; fewest steps: up, 11 x right, down = 13."""
    env = load_environment("gym:CliffWalking-v1", spec='Pmax=? [ F "goal" ]')
    assert env.mdp.n_states == 38
    assert fewest_steps(env.mdp, "goal") == 13
    assert storm.check(env.storm_model, env.properties[0]).value == pytest.approx(1)


def test_taxi_every_initial_state_is_checked():
    """Taxi's initial distribution has support 300 (25 cells x 4 passenger places x 3 other
    destinations); every passenger can be delivered from each."""
    env = load_environment("gym:Taxi-v4", spec='Pmin=? [ F "goal" ]')
    assert len(env.mdp.initial_states) == 300
    env = load_environment("gym:Taxi-v4", spec='Pmax=? [ F "goal" ]')
    result = storm.check(env.storm_model, env.properties[0])
    assert result.value == pytest.approx(1)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('id = "NoSuchEnv-v0"', "doesn't exist"),
        ('id = "ALE/Pong-v5"', "Namespace ALE not found"),
        (
            'id = "MiniGrid-Empty-5x5-v0"\nwrappers = ["no_such_module.Wrapper"]',
            "outside gymnasium",
        ),
        ('id = "MiniGrid-Empty-5x5-v0"\nwrappers = ["minigrid.no_such.Wrapper"]', "cannot import"),
        ('id = "MiniGrid-Empty-5x5-v0"\nwrappers = ["minigrid.wrappers.NoSuch"]', "has no class"),
        ('id = "MiniGrid-Dynamic-Obstacles-5x5-v0"', "random numbers"),
        ('id = "Taxi-v4"\nkwargs = { fickle_passenger = true }', "fickle_passenger"),
        ('id = "MiniGrid-Empty-5x5-v0"\nseed = 1.5', "seed: must be an integer"),
        ('id = "MiniGrid-Empty-5x5-v0"\nseeds = [0, "one"]', "seeds: must be"),
        ('id = "MiniGrid-Empty-5x5-v0"\nactions = ["jump"]', "unknown action 'jump'"),
        ('id = "CartPole-v1"', "neither a MiniGrid level nor a toy-text"),
        ('id = "MiniGrid-Empty-5x5-v0"\ncolour = 1', "unknown key"),
        (
            'id = "MiniGrid-Empty-5x5-v0"\nwrappers = ["minigrid.wrappers.ActionBonus"]',
            "not a gymnasium.ObservationWrapper",
        ),
    ],
)
def test_bad_gymnasium_model_exits_2_with_one_line(tmp_path, capsys, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(f"[gymnasium]\n{table}\n", encoding="utf-8")
    assert main(["check", "--model", str(path), "--spec", 'Pmax=? [ F "goal" ]']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err and str(path) in err


def test_seeds_form_a_deployment_set(capsys):
    """DoorKey-5x5's layout changes with the seed; each seed is one environment."""
    envs = load_environments_from_text(
        '[gymnasium]\nid = "MiniGrid-DoorKey-5x5-v0"\nseeds = [0, 1]\n'
    )
    assert [str(e.path).rsplit("@", 1)[1] for e in envs] == ["seed=0", "seed=1"]
    assert all(e.mdp.n_states > 0 for e in envs)


def test_max_states_is_respected(capsys):
    assert main(["check", "--model", "gym:MiniGrid-DoorKey-5x5-v0", "--max-states", "50"]) == 3
    assert "--max-states 50" in capsys.readouterr().err


def test_env_reward_is_usable_by_verify_reward(capsys):
    """DistShift1 with the env's own reward: the reward-optimal policies reach the goal (the
    only positive reward) without lava, so the default objective is aligned."""
    assert main(["reward", "--model", "gym:MiniGrid-DistShift1-v0", "--reward", "env"]) == 0
    assert "ALIGNED" in capsys.readouterr().out


def test_check_does_not_import_gymnasium_for_mazes():
    import subprocess
    import sys

    code = (
        "import sys; from verifier.cli import main; "
        "main(['check', '--model', 'models/lava.toml', '--spec', 'Pmax=? [ F \"exit\" ]']); "
        "print(any(m in sys.modules for m in ('gymnasium', 'minigrid', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_minigrid_labels_on_doorkey():
    """DoorKey-5x5 seed 0: the agent can face the key, carry it, face the locked door."""
    env = load_environment("gym:MiniGrid-DoorKey-5x5-v0")
    labels = env.mdp.labels
    for name in ("start", "goal", "terminal", "carrying", "carrying_key", "key", "door", "wall"):
        assert labels[name].any(), name
    assert not labels["lava"].any()
    assert labels["carrying_key"].sum() == (env.mdp.valuations[:, 3] == 5).sum()
    assert not (labels["goal"] & ~labels["terminal"]).any()


def load_environments_from_text(text):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.toml"
        path.write_text(text, encoding="utf-8")
        return load_environments(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[gymnasium]\nid = "MiniGrid-Empty-5x5-v0"\n', True),
        ('gymnasium.id = "MiniGrid-Empty-5x5-v0"\n', True),
        ('gymnasium = { id = "MiniGrid-Empty-5x5-v0" }\n', True),
        ('name = "gymnasium"\nmap = """\nS.#\n"""\n', False),
        ('notes = """\ngymnasium = 1\n"""\n', False),  # a line alike, inside a string
    ],
)
def test_a_model_file_is_a_gymnasium_model_only_with_a_gymnasium_key(tmp_path, text, expected):
    from verifier.inputs.gym_spec import is_gym_model

    path = tmp_path / "model.toml"
    path.write_text(text, encoding="utf-8")
    assert is_gym_model(path) is expected

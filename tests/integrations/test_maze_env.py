"""verifier.integrations.maze_env.MazeEnv: a Gymnasium environment with the verifier's semantics.

Each test compares the environment with a source that does not go through it: dynamics written
out here from README's rules (intended move with 1 - slip, each perpendicular slip/2, a wall
keeps the agent in place), Gymnasium's own checker, the verifier's observation of the state
reported in `info`, and the exact return `verify --reward --json` computes for a policy.
"""

from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.errors import InputError
from verifier.inputs.maze import ACTIONS, WALL, parse_maze
from verifier.inputs.maze_compile import compile_maze
from verifier.inputs.maze_generate import random_maze
from verifier.policy.observation import GRID_CHANNELS, grid_observations

gym = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from verifier.integrations.maze_env import ENV_ID, MazeEnv  # noqa: E402

# A slippery maze (slip 0.2, the cell A 0.5) with an exit E and lava L.
SLIPPERY_MAP = """
#######
#S..#E#
#.#.A.#
#..L..#
#######
"""
SLIPPERY_CELLS = """
[cells.E]
kind = "exit"
[cells.L]
kind = "lava"
[cells.A]
kind = "floor"
slip = 0.5
"""
REWARD = "step = -0.05\n[arrive]\nexit = 1.0\nlava = -1.0\n"
DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right
PERPENDICULAR = ((2, 3), (2, 3), (0, 1), (0, 1))


@pytest.fixture
def files(tmp_path):
    maze = tmp_path / "slippery.toml"
    maze.write_text(maze_text(SLIPPERY_MAP, SLIPPERY_CELLS, slip=0.2))
    reward = tmp_path / "reward.toml"
    reward.write_text(REWARD)
    return maze, reward


def hand_successors(layout: np.ndarray, slips: dict, row: int, col: int, action: int) -> dict:
    """{(row, col): probability} by README's rule, written independently of compile_maze."""
    slip = slips.get(str(layout[row, col]), slips["default"])
    out: dict[tuple[int, int], float] = {}
    moves = [(action, 1 - slip)] + [(d, slip / 2) for d in PERPENDICULAR[action]]
    for direction, p in moves:
        r, c = row + DELTAS[direction][0], col + DELTAS[direction][1]
        if layout[r, c] == WALL:
            r, c = row, col
        out[(r, c)] = out.get((r, c), 0.0) + p
    return {k: v for k, v in out.items() if v > 0}


# --- Gymnasium's contract ------------------------------------------------------------------


def _checked(env) -> list[str]:
    """Gymnasium's env checker on `env`; the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("observation", ["grid", "valuation"])
def test_gymnasium_env_checker_passes(files, observation):
    maze, reward = files
    env = gym.make(ENV_ID, levels=maze, reward=reward, observation=observation)
    assert _checked(env.unwrapped) == []
    family = gym.make(
        ENV_ID,
        levels=functools.partial(
            random_maze, 11, 11, start="bottom-left", exit_region="top-right 2"
        ),
        reward=reward,
        seeds=range(10**6),
        observation=observation,
        max_episode_steps=30,
        render_mode="ansi",
    )
    assert _checked(family.unwrapped) == []


def test_registered_id_and_spaces(files):
    maze, reward = files
    env = gym.make(ENV_ID, levels=str(maze), reward=str(reward))
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.observation_space.shape == (len(GRID_CHANNELS), 5, 7)
    assert env.observation_space.dtype == np.float32
    env = gym.make(ENV_ID, levels=maze, reward=reward, observation="valuation")
    assert env.observation_space.shape == (8,)
    assert env.observation_space.high.tolist() == [4, 6, 1, 1, 1, 1, 1, 1]


# --- dynamics, observations, returns --------------------------------------------------------


def test_successor_frequencies_match_the_rules(files):
    """60,000 uniformly random steps (seeded). README's rule gives the compiled MDP's
    probabilities for every (cell, action) tried; for those tried at least 300 times, each
    successor's frequency is within 5 standard errors of them, and no successor outside the
    rule's support ever occurs."""
    maze, reward = files
    layout = parse_maze(maze.read_text()).layout
    slips = {"default": 0.2, "A": 0.5}
    env = MazeEnv(maze, reward, observation="valuation")
    actions = np.random.default_rng(1).integers(4, size=60_000)
    counts: dict[tuple, dict] = {}
    obs, _ = env.reset(seed=0)
    for action in actions.tolist():
        here = (int(obs[0]), int(obs[1]))
        obs, _, terminated, truncated, _ = env.step(action)
        there = (int(obs[0]), int(obs[1]))
        seen = counts.setdefault((*here, action), {})
        seen[there] = seen.get(there, 0) + 1
        if terminated or truncated:
            obs, _ = env.reset()
    level = env.level_of(0)
    cells = [tuple(v) for v in level.mdp.valuations[:, :2].tolist()]
    checked = 0
    for (row, col, action), seen in counts.items():
        expected = hand_successors(layout, slips, row, col, action)
        choice = level.choice[cells.index((row, col)), action]
        begin, end = level.mdp.transitions.indptr[choice : choice + 2]
        compiled = {
            cells[t]: p
            for t, p in zip(
                level.mdp.transitions.indices[begin:end],
                level.mdp.transitions.data[begin:end],
                strict=True,
            )
        }
        assert compiled == pytest.approx(expected)  # the MDP the verifier checks
        assert set(seen) <= set(expected), (row, col, ACTIONS[action], seen, expected)
        n = sum(seen.values())
        if n < 300:
            continue
        checked += 1
        for cell, p in expected.items():
            tolerance = 5 * np.sqrt(p * (1 - p) / n) + 1e-12
            assert abs(seen.get(cell, 0) / n - p) <= tolerance, (row, col, action, cell)
    assert checked >= 30  # most of the 14 open non-terminal cells x 4 actions


def test_episodes_start_at_the_start_and_end_on_absorbing_cells(files):
    maze, reward = files
    env = MazeEnv(maze, reward, observation="valuation")
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        assert obs[:2].tolist() == [1, 1]
        rng = np.random.default_rng(seed)
        terminated = False
        while not terminated:
            obs, _, terminated, truncated, info = env.step(int(rng.integers(4)))
            assert not truncated
        assert tuple(obs[:2].tolist()) in {(1, 5), (3, 3)}  # the exit or the lava
    with pytest.raises(RuntimeError, match="terminated"):
        env.step(0)


def test_observation_is_the_verifiers_for_the_state(files):
    """Along random rollouts the grid observation equals `grid_observations` of the state
    named in `info` (what `verify` feeds a policy there), its agent plane marks that state's
    cell, and its wall plane is the map's walls."""
    maze, reward = files
    parsed = parse_maze(maze.read_text())
    mdp = compile_maze(parsed)
    env = MazeEnv(maze, reward)
    rng = np.random.default_rng(3)
    wall = GRID_CHANNELS.index("wall")
    agent = GRID_CHANNELS.index("agent")
    visited = set()
    for episode in range(40):
        obs, info = env.reset(seed=episode)
        done = False
        while True:
            state = info["state"]
            visited.add(state)
            expected = grid_observations(parsed, mdp, np.array([state]))[0]
            assert obs.dtype == np.float32 and np.array_equal(obs, expected)
            assert np.argwhere(obs[agent]).tolist() == [mdp.valuations[state, :2].tolist()]
            assert np.array_equal(obs[wall], parsed.layout == WALL)
            if done:
                break
            obs, _, terminated, truncated, info = env.step(int(rng.integers(4)))
            done = terminated or truncated
    assert len(visited) == mdp.n_states


def test_keys_vanish_from_the_observation_once_held(tmp_path):
    reward = tmp_path / "r.toml"
    reward.write_text(REWARD)
    maze = tmp_path / "key.toml"
    maze.write_text(
        maze_text(
            "#####\n#Sk.#\n#.#K#\n#..E#\n#####",
            '[cells.k]\nkind = "key"\ncolor = "red"\n[cells.K]\nkind = "door"\ncolor = "red"\n'
            '[cells.E]\nkind = "exit"\n',
        )
    )
    env = MazeEnv(maze, reward)
    obs, _ = env.reset(seed=0)
    key = GRID_CHANNELS.index("key")
    held = GRID_CHANNELS.index("has_key_red")
    assert obs[key, 1, 2] == 1 and not obs[held].any()
    obs, *_ = env.step(ACTIONS.index("right"))
    assert obs[key].sum() == 0 and obs[held].all()


def test_expected_return_of_a_fixed_policy_matches_the_verifiers_exact_value(
    files, tmp_path, capsys
):
    """A stochastic table policy (by valuation): `verify --stochastic --reward --json` gives
    its exact expected return; the mean of 3,000 seeded rollouts lies within 4 standard
    errors of it."""
    maze, reward = files
    mdp = compile_maze(parse_maze(maze.read_text()))
    rng = np.random.default_rng(7)
    cells = np.unique(mdp.valuations, axis=0)
    probs = rng.dirichlet(np.ones(4), size=len(cells))
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {"actions": list(ACTIONS), "probs": probs.tolist(), "valuations": cells.tolist()}
        )
    )
    out = tmp_path / "report.json"
    argv = [str(policy), "--model", str(maze), "--reward", str(reward), "--stochastic"]
    main([*argv, "--json", str(out)])
    capsys.readouterr()
    exact = json.loads(out.read_text())["reports"][0]["reward"]["return"]

    cumulative = {tuple(v): np.cumsum(p) for v, p in zip(cells.tolist(), probs, strict=True)}
    env = MazeEnv(maze, reward, observation="valuation")
    env.reset(seed=11)
    acting = np.random.default_rng(12)
    returns = []
    for _ in range(3000):
        obs, _ = env.reset()
        total, done = 0.0, False
        while not done:
            cdf = cumulative[tuple(int(x) for x in obs)]
            action = min(int(np.searchsorted(cdf, acting.random() * cdf[-1], "right")), 3)
            obs, r, terminated, truncated, _ = env.step(action)
            total += r
            done = terminated or truncated
        returns.append(total)
    mean, error = np.mean(returns), np.std(returns) / np.sqrt(len(returns))
    assert abs(mean - exact) <= 4 * error, (mean, exact, error)
    assert error < 0.03  # informative: the exact return is about -1.8, one episode's spread 1.3


def test_reward_is_the_verifiers_reward_vector(files):
    """R(s, a) = step + expected arrive weight: from the cell left of the exit (1, 5 is the
    exit; the agent at (2, 5) moving up with slip 0.2), 0.8 of the move arrives:
    -0.05 + 0.8 * 1.0 = 0.75, whichever successor is drawn."""
    maze, reward = files
    env = MazeEnv(maze, reward, observation="valuation")
    level = env.level_of(0)
    (state,) = np.flatnonzero((level.mdp.valuations[:, 0] == 2) & (level.mdp.valuations[:, 1] == 5))
    assert level.reward[level.choice[state, ACTIONS.index("up")]] == pytest.approx(0.75)


# --- levels, truncation, input ---------------------------------------------------------------


def test_a_list_of_levels_is_drawn_uniformly(tmp_path, files):
    _, reward = files
    paths = []
    for seed in range(3):
        path = tmp_path / f"level{seed}.toml"
        path.write_text(
            "\n".join(
                [f'name = "l{seed}"', 'map = """']
                + ["".join(row) for row in random_maze(9, 9, seed).layout.tolist()]
                + ['"""', '[cells.E]\nkind = "exit"\ncolor = "blue"']
            )
        )
        paths.append(path)
    env = MazeEnv(paths, reward)
    env.reset(seed=5)
    drawn = [env.reset()[1]["level"] for _ in range(300)]
    assert sorted(set(drawn)) == [0, 1, 2]
    assert all(60 <= drawn.count(k) <= 140 for k in range(3))


def test_a_generated_family_draws_seeds_and_keeps_their_mazes(files):
    _, reward = files
    generate = functools.partial(random_maze, 9, 9, start="bottom-left", exit_region="anywhere")
    env = MazeEnv(generate, reward, seeds=range(100, 110))
    seen = set()
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        seen.add(info["level"])
        expected = random_maze(9, 9, info["level"], start="bottom-left", exit_region="anywhere")
        assert np.array_equal(obs[GRID_CHANNELS.index("exit")], expected.layout == "E")
        assert obs[GRID_CHANNELS.index("agent"), 7, 1] == 1
    assert seen <= set(range(100, 110)) and len(seen) >= 8


def test_truncation_after_max_episode_steps(files):
    """Walking into the top wall forever: truncated, never terminated, at step 5; the same
    through gym.make's own max_episode_steps (TimeLimit)."""
    maze, reward = files
    for env in (
        MazeEnv(maze, reward, max_episode_steps=5),
        gym.make(ENV_ID, levels=maze, reward=reward, max_episode_steps=5),
    ):
        env.reset(seed=0)
        flags = []
        for _ in range(5):
            flags.append(env.step(ACTIONS.index("up"))[2:4])
        assert flags == [(False, False)] * 4 + [(False, True)]


def test_same_seed_same_episode(files):
    maze, reward = files
    runs = []
    for _ in range(2):
        env = MazeEnv(maze, reward, observation="valuation")
        env.reset(seed=42)
        runs.append([env.step(i % 4)[0].tolist() for i in range(12)])
    assert runs[0] == runs[1]


def test_render_draws_the_agent(files):
    maze, reward = files
    env = MazeEnv(maze, reward, render_mode="ansi")
    env.reset(seed=0)
    assert env.render().splitlines()[1] == "#@..#E#"


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda m, r: MazeEnv(m, r, observation="pixels"), ValueError, "unknown observation"),
        (lambda m, r: MazeEnv(m, r, max_episode_steps=0), ValueError, "positive integer"),
        (lambda m, r: MazeEnv(m, r, seeds=range(3)), ValueError, "goes with a generator"),
        (lambda m, r: MazeEnv([], r), ValueError, "no levels"),
        (lambda m, r: MazeEnv(lambda s: None, r, seeds=[0]), TypeError, "returned a NoneType"),
        (lambda m, r: MazeEnv(random_maze, r), ValueError, "needs `seeds`"),
        (lambda m, r: MazeEnv(m.parent / "missing.toml", r), InputError, "cannot read maze"),
        (lambda m, r: MazeEnv(m, r, render_mode="human"), ValueError, "unknown render_mode"),
    ],
)
def test_bad_arguments_are_refused(files, make, error, message):
    maze, reward = files
    with pytest.raises(error, match=message):
        make(maze, reward)


def test_levels_of_another_size_are_refused(files):
    maze, reward = files
    with pytest.raises(ValueError, match="every level must have the same size"):
        MazeEnv([maze, random_maze(9, 9, 0)], reward)
    env = MazeEnv(lambda seed: random_maze(9 + 2 * seed, 9, seed), reward, seeds=[0, 1])
    with pytest.raises(ValueError, match="11x9, but the first level is 9x9"):
        for seed in range(20):
            env.reset(seed=seed)

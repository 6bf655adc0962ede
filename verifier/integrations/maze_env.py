"""`MazeEnv`: a Gymnasium environment over the verifier's mazes, with the verifier's semantics,
so that what an agent is trained on is exactly what `verify` checks.

One maze TOML, a list of them, or a generator and its seeds (a family of levels: each reset
draws one). The dynamics are the compiled MDP (`compile_maze`): a step takes the choice of the
action in the current state and samples its successor with the environment's `np_random`, slips
included. An episode starts in one of the model's initial states (uniformly if it has several)
and terminates on entering an absorbing state (exit, lava, a `terminal = true` cell). The
reward of a step is the verifier's R(s, a) (`verifier.spec.reward_file.reward_vector`): the reward
file's `step` plus the `arrive` weights expected over the successors of (s, a) - the mean over
the slips, not the sampled successor's - so that a policy's expected return is exactly the
value `verify POLICY --reward` reports. The environment does not discount; the reward file's
`discount` is the attribute `discount`, for the learner.

Observations are the arrays the verifier feeds policies (README, "Policies"):
    grid       float32 [19, H, W], one-hot planes (verifier.policy.observation.GRID_CHANNELS)
    valuation  float32 [8]: row, col, then one 0/1 per palette color for the keys held
Actions: Discrete(4), in the verifier's order up, down, left, right (`ACTIONS`). A policy
trained here and saved with `verifier.json` {"observation": "grid", "actions": ["up", "down",
"left", "right"], "output": "logits"} is read by `verify` as it acted here.

Through `gym.make`, `max_episode_steps` is Gymnasium's own TimeLimit wrapper, to the same
effect. Stable-Baselines3's MlpPolicy trains on it as it is; its CnnPolicy expects uint8
images of at least 36x36, so a CNN on `grid` needs a custom features extractor (and
`normalize_images=False`).

Importing this module registers it with Gymnasium as "verifier/Maze-v0":

    >>> import gymnasium as gym
    >>> import verifier.integrations.maze_env
    >>> env = gym.make("verifier/Maze-v0", levels="models/lava.toml",
    ...                reward="models/lava-shift/rewards/exit.toml")  # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from verifier.inputs.maze import ACTIONS, PALETTE, Maze, load_maze
from verifier.inputs.maze_compile import compile_maze
from verifier.mdp import MDP
from verifier.policy.observation import GRID_CHANNELS, grid_observations, static_planes
from verifier.spec.reward_file import Reward, absorbing_states, load_reward, reward_vector

ENV_ID = "verifier/Maze-v0"
OBSERVATIONS = ("grid", "valuation")
CACHED_LEVELS = 256  # compiled levels kept (a family's levels are compiled when drawn)
AGENT_CHAR = "@"  # the agent in `render()` text

MazeSource = str | Path | Maze


@dataclass(frozen=True, slots=True, eq=False)
class Level:
    """One maze compiled for stepping.

    choice      int64 [n_states, 4]: the choice of each action in each state, -1 where the
                state has none (absorbing states)
    cumulative  float64 [n_transitions]: P(s'|c) summed along each choice's row of
                `mdp.transitions` (CSR order), the row's last entry exactly 1
    reward      float64 [n_choices]: R(s, a), the verifier's reward vector
    absorbing   bool [n_states]: where an episode terminates
    planes      float32 [19, H, W]: the state-independent grid planes
    """

    key: int
    maze: Maze
    mdp: MDP
    choice: np.ndarray
    cumulative: np.ndarray
    reward: np.ndarray
    absorbing: np.ndarray
    planes: np.ndarray


class MazeEnv(gym.Env):
    """A maze (or a family of mazes) as a Gymnasium environment; see the module docstring.

    levels
        A maze TOML path or a `Maze`; a sequence of them (each reset draws one uniformly);
        or a function seed -> Maze (e.g. a `functools.partial` of
        `verifier.inputs.maze_generate.random_maze`) together with `seeds`, from which each
        reset draws one uniformly. Every level must have the same height and width.
    reward
        A reward TOML path or a `verifier.spec.reward_file.Reward`.
    seeds
        The seeds of a generator (any sequence of ints, e.g. `range(10**6)`: never listed).
    observation
        "grid" (default) or "valuation".
    max_episode_steps
        Truncate an episode after this many steps (None: never).
    render_mode
        None or "ansi": `render()` returns the map with the agent drawn as "@".

    `info` of reset and step holds "state" (the verifier's index of the state in the level's
    compiled MDP) and "level" (the index into `levels`, or the seed).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        levels: MazeSource | Sequence[MazeSource] | Callable[[int], Maze],
        reward: str | Path | Reward,
        *,
        seeds: Sequence[int] | None = None,
        observation: str = "grid",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ):
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"unknown observation {observation!r}; known: {', '.join(OBSERVATIONS)}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; known: ansi")
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, int | np.integer) or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive integer, got {max_episode_steps!r}"
            )
        self._reward = reward if isinstance(reward, Reward) else load_reward(reward)
        self.discount = self._reward.discount
        self.observation = observation
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode

        self._generate: Callable[[int], Maze] | None = None
        self._mazes: list[Maze] = []
        self._keys: Sequence[int]
        if callable(levels) and not isinstance(levels, Maze):
            if seeds is None or len(seeds) == 0:
                raise ValueError("a generator of levels needs `seeds`, a non-empty sequence")
            self._generate, self._keys = levels, seeds
            first = self._generated(int(seeds[0]))
        else:
            if seeds is not None:
                raise ValueError("`seeds` goes with a generator function, not with maze files")
            sources = [levels] if isinstance(levels, str | Path | Maze) else list(levels)
            if not sources:
                raise ValueError("no levels: give a maze, a list of mazes, or a generator")
            self._mazes = [s if isinstance(s, Maze) else load_maze(s) for s in sources]
            self._keys = range(len(self._mazes))
            first = self._mazes[0]
            for maze in self._mazes:
                self._check_shape(maze, first.shape)
        self.shape: tuple[int, int] = first.shape
        self._cache: OrderedDict[int, Level] = OrderedDict()

        height, width = self.shape
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        if observation == "grid":
            self.observation_space = gym.spaces.Box(
                0.0, 1.0, (len(GRID_CHANNELS), height, width), np.float32
            )
        else:
            high = np.array([height - 1, width - 1] + [1] * len(PALETTE), dtype=np.float32)
            self.observation_space = gym.spaces.Box(0.0, high, (len(high),), np.float32)
        self.level: Level | None = None
        self.state = -1
        self.steps = 0

    # --- Gymnasium API ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        key = self._keys[int(self.np_random.integers(len(self._keys)))]
        level = self.level = self._load(int(key))
        initial = level.mdp.initial_states
        self.state = int(initial[int(self.np_random.integers(len(initial)))])
        self.steps = 0
        return self._observe(level), self._info(level)

    def step(self, action):
        level = self.level
        if level is None:
            raise RuntimeError("call reset() before step()")
        if level.absorbing[self.state]:
            raise RuntimeError("the episode has terminated; call reset()")
        index = int(action)
        if index != action or not 0 <= index < len(ACTIONS):
            raise ValueError(f"action {action!r} is not in Discrete({len(ACTIONS)})")
        choice = int(level.choice[self.state, index])
        transitions = level.mdp.transitions
        entry, last = int(transitions.indptr[choice]), int(transitions.indptr[choice + 1]) - 1
        drawn = self.np_random.random()
        while entry < last and drawn >= level.cumulative[entry]:
            entry += 1
        self.state = int(transitions.indices[entry])
        self.steps += 1
        terminated = bool(level.absorbing[self.state])
        truncated = (
            not terminated
            and self.max_episode_steps is not None
            and self.steps >= self.max_episode_steps
        )
        reward = float(level.reward[choice])
        return self._observe(level), reward, terminated, truncated, self._info(level)

    def render(self):
        if self.render_mode != "ansi" or self.level is None:
            return None
        layout = self.level.maze.layout.copy()
        row, col = self.level.mdp.valuations[self.state, :2]
        layout[row, col] = AGENT_CHAR
        return "\n".join("".join(line) for line in layout.tolist()) + "\n"

    # --- levels ----------------------------------------------------------------------------

    def level_of(self, key: int) -> Level:
        """The level with index (or seed) `key`, compiled; cached."""
        return self._load(key)

    def _generated(self, seed: int) -> Maze:
        if self._generate is None:
            raise ValueError("these levels are maze files, not a generator")
        maze = self._generate(seed)
        if not isinstance(maze, Maze):
            raise TypeError(f"the generator returned a {type(maze).__name__} for seed {seed}")
        return maze

    @staticmethod
    def _check_shape(maze: Maze, shape: tuple[int, int]) -> None:
        if maze.shape != shape:
            raise ValueError(
                f"{maze.source}: {maze.shape[0]}x{maze.shape[1]}, but the first level is "
                f"{shape[0]}x{shape[1]}: every level must have the same size"
            )

    def _load(self, key: int) -> Level:
        level = self._cache.get(key)
        if level is not None:
            self._cache.move_to_end(key)
            return level
        if self._generate is None:
            maze = self._mazes[key]
        else:
            maze = self._generated(key)
            self._check_shape(maze, self.shape)
        mdp = compile_maze(maze)
        states, actions = mdp.choice_states(), mdp.choice_actions
        labelled = actions >= 0
        choice = np.full((mdp.n_states, len(ACTIONS)), -1, dtype=np.int64)
        choice[states[labelled], actions[labelled]] = np.flatnonzero(labelled)
        level = Level(
            key=key,
            maze=maze,
            mdp=mdp,
            choice=choice,
            cumulative=_row_cumulative(mdp),
            reward=reward_vector(mdp, self._reward).values,
            absorbing=absorbing_states(mdp),
            planes=static_planes(maze),
        )
        self._cache[key] = level
        if len(self._cache) > CACHED_LEVELS:
            self._cache.popitem(last=False)
        return level

    def _observe(self, level: Level) -> np.ndarray:
        if self.observation == "grid":
            states = np.array([self.state])
            return grid_observations(level.maze, level.mdp, states, level.planes)[0]
        return level.mdp.valuations[self.state].astype(np.float32)

    def _info(self, level: Level) -> dict[str, Any]:
        return {"state": self.state, "level": level.key}


def _row_cumulative(mdp: MDP) -> np.ndarray:
    """float64 [n_transitions]: each row's running sum of probabilities, divided by the row's
    total, so that a row ends at exactly 1 (inverse-CDF sampling needs no clipping)."""
    transitions = mdp.transitions
    running = np.cumsum(transitions.data)
    counts = np.diff(transitions.indptr)
    before = np.concatenate([[0.0], running])[transitions.indptr[:-1]]
    within = running - np.repeat(before, counts)
    totals = np.repeat(within[transitions.indptr[1:] - 1], counts)
    return within / totals


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="verifier.integrations.maze_env:MazeEnv")

__all__ = ["ENV_ID", "OBSERVATIONS", "Level", "MazeEnv"]

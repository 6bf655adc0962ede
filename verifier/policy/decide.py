"""What a policy does on every state of a model: its observations in batches, its outputs
(run in the contained child for a file, in this process for a policy in memory), the
choice it takes in each state, and the Markov chain it induces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from verifier.errors import InputError
from verifier.inputs.environment import Environment
from verifier.inputs.maze import Maze
from verifier.mdp import MDP
from verifier.policy.gym_observation import env_observations
from verifier.policy.interface import check_interface, failure_message, layout_of, model_wrappers
from verifier.policy.load import (
    KIND_NAMES,
    OPENERS,
    Policy,
    read_file,
    single_thread,
)
from verifier.policy.observation import (
    GRID_CHANNELS,
    grid_observations,
    static_planes,
    valuation_observations,
)
from verifier.policy.safety import out_of_memory, printable, run_contained

BATCH_STATES = 4096


BATCH_BYTES = 64 * 2**20  # observations per batch are capped to this many bytes


_GRID_NEEDS_MAZE = "the grid observation exists for mazes only; use valuation"


def _failure(exc: Exception) -> str:
    """The reason a policy run failed, in one line (its own line breaks escaped). The
    TorchScript interpreter puts its traceback first, each frame ending at a `<--- HERE`
    mark and its indented context, and the error after the last frame ("RuntimeError: mat1
    and mat2 shapes ...", or what the network's `raise` said, line breaks and all)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = text.split("\n")
    if "TorchScript interpreter" not in lines[0]:
        return printable(lines[0])
    marks = [i for i, line in enumerate(lines) if line.rstrip().endswith("<--- HERE")]
    start = marks[-1] + 1 if marks else len(lines) - 1
    while start < len(lines) - 1 and (not lines[start] or lines[start][0].isspace()):
        start += 1
    return printable("\n".join(lines[start:]))


@dataclass(frozen=True, slots=True, eq=False)
class Decisions:
    """What a policy does on every state of one model.

    choice_probs  float64 [n_choices]: probability of each choice (sums to 1 per state)
    masked        bool [n_states]: states where the policy's preferred action is not enabled
    """

    choice_probs: np.ndarray
    masked: np.ndarray


def decide(policy: Policy, env: Environment, stochastic: bool = False, progress=None) -> Decisions:
    """Run the policy on every state (in batches) and map its outputs to the model's choices:
    argmax over the enabled actions by default, the renormalised distribution with
    `stochastic`. States with a single choice take it. The interface is checked first."""
    policy = _checked(policy, env)
    mdp = env.mdp
    outputs = _outputs(policy, env, progress)
    if outputs.shape[1] != len(policy.actions):
        raise InputError(
            policy.path,
            f"outputs {outputs.shape[1]} values per state but names {len(policy.actions)} actions",
        )
    column = _choice_columns(policy, mdp)
    states = mdp.choice_states()
    single = np.diff(mdp.row_groups) == 1
    enabled = column >= 0
    stuck = ~np.logical_or.reduceat(enabled, mdp.row_groups[:-1]) & ~single
    if stuck.any():
        bad = int(np.flatnonzero(stuck)[0])
        raise InputError(
            policy.path,
            f"state {mdp.state_description(bad)} has no choice labelled with the policy's actions "
            f"({', '.join(policy.actions)})",
        )
    scores = np.where(enabled, outputs[states, np.maximum(column, 0)], -np.inf)
    preferred = outputs.argmax(axis=1)
    best_enabled = np.maximum.reduceat(scores, mdp.row_groups[:-1])
    masked = ~single & (outputs[np.arange(mdp.n_states), preferred] > best_enabled)
    if stochastic:
        weights = _probabilities(policy, scores, states, mdp)
    else:
        is_best = scores == best_enabled[states]
        index = np.where(is_best, np.arange(mdp.n_choices), mdp.n_choices)
        first = np.minimum.reduceat(index, mdp.row_groups[:-1])
        weights = np.zeros(mdp.n_choices)
        weights[first[first < mdp.n_choices]] = 1.0
    weights[mdp.row_groups[:-1][single]] = 1.0
    return Decisions(weights, masked)


def _probabilities(policy: Policy, scores: np.ndarray, states: np.ndarray, mdp: MDP) -> np.ndarray:
    """Renormalised distribution over enabled choices (softmax for logits).

    The softmax is shifted by the row's largest enabled logit; a row with none (a state with
    a single choice the policy does not name) is shifted by 0, and a logit so far below the
    largest that the difference overflows has probability exactly 0. Probabilities are
    divided by the row's largest enabled one before they are summed, so that finite values
    near the float64 maximum (1e308) give the distribution their ratios define.
    """
    finite = np.isfinite(scores)
    if policy.output == "logits":
        shift = np.maximum.reduceat(scores, mdp.row_groups[:-1])
        shift = np.where(np.isfinite(shift), shift, 0.0)
        with np.errstate(over="ignore"):
            weights = np.exp(np.where(finite, scores - shift[states], -np.inf))
    else:
        weights = np.where(finite, scores, 0.0)
        scale = np.maximum.reduceat(weights, mdp.row_groups[:-1])[states]
        weights = np.divide(weights, scale, out=np.zeros_like(weights), where=scale > 0)
    totals = np.add.reduceat(weights, mdp.row_groups[:-1])
    single = np.diff(mdp.row_groups) == 1
    stuck = np.flatnonzero((totals <= 0) & ~single)
    if len(stuck):
        raise InputError(
            policy.path,
            f"state {mdp.state_description(int(stuck[0]))}: probability 0 for every enabled "
            "action, so the distribution cannot be renormalised",
        )
    return np.divide(weights, totals[states], out=np.zeros_like(weights), where=totals[states] > 0)


def _checked(policy: Policy, env: Environment) -> Policy:
    """The policy with its action names, once they and the observation it was made for are
    checked against the model (verifier.policy.interface), before it runs."""
    sample = None
    interface = policy.interface
    if interface is not None and interface.observation is not None and policy.table is None:
        sample = _observation_batch(policy, env, np.zeros(1, dtype=np.int64), _grid(policy, env))
    actions = check_interface(policy.path, policy.actions, interface, env, sample)
    return replace(policy, actions=actions)


def _grid(policy: Policy, env: Environment) -> tuple[Maze, np.ndarray] | None:
    """The maze and its static planes, for the grid observation."""
    if policy.observation != "grid":
        return None
    if env.maze is None:
        raise InputError(policy.path, _GRID_NEEDS_MAZE)
    return env.maze, static_planes(env.maze)


def _choice_columns(policy: Policy, mdp: MDP) -> np.ndarray:
    """int64 [n_choices]: the policy output column of each choice's action, -1 if none."""
    lookup = np.array(
        [policy.actions.index(a) if a in policy.actions else -1 for a in mdp.actions] + [-1]
    )
    return lookup[mdp.choice_actions]


def _outputs(policy: Policy, env: Environment, progress) -> np.ndarray:
    """float64 [n_states, n_actions]: the policy's outputs on every state."""
    mdp = env.mdp
    if policy.table is not None:
        return _table_outputs(policy, policy.table, mdp)
    grid = _grid(policy, env)
    if policy.observation == "env" and env.gym is None:
        raise InputError(policy.path, "the env observation exists for Gymnasium models only")
    starts = range(0, mdp.n_states, batch_states(policy, env))
    path = Path(policy.path)

    def compute(tick):
        if policy.run is not None:  # in memory: the caller's own code, run here
            run = policy.run
        else:
            data, _ = read_file(path, policy.memory, policy.digest)
            run = OPENERS[policy.format](path, data, policy.memory, False).run
            del data
        chunks: list[np.ndarray] = []
        for start in starts:
            states = np.arange(start, min(start + starts.step, mdp.n_states))
            chunks.append(_run_batch(policy, run, env, states, grid))
            width, named = chunks[0].shape[1], len(policy.actions)
            if width != named:  # said by decide too; here before more of a wrong width
                raise InputError(
                    policy.path, f"outputs {width} values per state but names {named} actions"
                )
            if chunks[-1].shape[1] != chunks[0].shape[1]:
                raise InputError(
                    policy.path,
                    f"the policy outputs {chunks[0].shape[1]} values per state on states "
                    f"0-{len(chunks[0]) - 1} and {chunks[-1].shape[1]} on states "
                    f"{start}-{start + len(chunks[-1]) - 1}; its output width must not change",
                )
            tick()
        outputs = np.concatenate(chunks) if chunks else np.zeros((0, len(policy.actions)))
        return {}, {"outputs": outputs}

    if policy.run is not None:
        outputs = compute(lambda: None)[1]["outputs"]
    else:
        _, arrays = run_contained(
            compute,
            policy.path,
            "running",
            len(starts),
            policy.timeout,
            policy.memory,
            progress,
            single_thread,
        )
        outputs = arrays["outputs"]
    if not np.isfinite(outputs).all():
        raise InputError(policy.path, "the policy outputs NaN or infinite values")
    if policy.output == "probs":
        negative = np.flatnonzero((outputs < 0).any(axis=1))
        zero = np.flatnonzero(~(outputs > 0).any(axis=1))
        if len(negative) or len(zero):
            state = int(negative[0] if len(negative) else zero[0])
            problem = "a negative probability" if len(negative) else "probability 0 everywhere"
            raise InputError(policy.path, f"state {mdp.state_description(state)}: {problem}")
    return outputs


def batch_states(policy: Policy, env: Environment) -> int:
    """States per batch: BATCH_STATES, fewer where observations are big (a grid of a
    301x301 maze is 6.9 MB), so that a batch of observations stays within BATCH_BYTES."""
    if policy.observation == "grid":
        if env.maze is None:
            raise InputError(policy.path, _GRID_NEEDS_MAZE)
        height, width = env.maze.shape
        per_state = len(GRID_CHANNELS) * height * width * 4
    else:
        per_state = env.mdp.valuations.shape[1] * 4
    return max(1, min(BATCH_STATES, BATCH_BYTES // max(per_state, 1)))


def _run_batch(
    policy: Policy,
    run: Callable[[np.ndarray | dict[str, np.ndarray]], np.ndarray],
    env: Environment,
    states: np.ndarray,
    grid: tuple[Maze, np.ndarray] | None,
) -> np.ndarray:
    """float64 [len(states), n_actions]: the network's outputs (`run`, inside the child) on
    a batch of states (`grid`: the maze and its static planes, for the grid observation)."""
    batch = _observation_batch(policy, env, states, grid)
    try:
        out = np.asarray(run(batch))
    except InputError:
        raise
    except Exception as exc:
        if out_of_memory(exc):
            raise MemoryError from None
        message = failure_message(str(exc), layout_of(batch), model_wrappers(env))
        if message is None:
            shape = (
                {key: value.shape for key, value in batch.items()}
                if isinstance(batch, dict)
                else batch.shape
            )
            message = f"running the policy on {shape} observations failed: {_failure(exc)}"
        raise InputError(policy.path, printable(message)) from None
    if out.dtype.kind not in "iuf":
        raise InputError(
            policy.path,
            f"the policy outputs {KIND_NAMES.get(out.dtype.kind, out.dtype)}; "
            "expected real-valued logits or probabilities",
        )
    if out.ndim != 2 or len(out) != len(states):
        raise InputError(policy.path, f"expected outputs [batch, n_actions], got {list(out.shape)}")
    return out.astype(np.float64)


def _observation_batch(
    policy: Policy, env: Environment, states: np.ndarray, grid: tuple[Maze, np.ndarray] | None
):
    """The policy's observations of `states`: a contiguous array [len(states), ...], or a
    dict of them for a dict observation."""
    if grid is not None:
        batch = grid_observations(grid[0], env.mdp, states, grid[1])
    elif policy.observation == "env":
        batch = env_observations(env, states)
    else:
        batch = valuation_observations(env.mdp, states)
    if isinstance(batch, dict):
        return {key: np.ascontiguousarray(value) for key, value in batch.items()}
    return np.ascontiguousarray(batch)


def _table_outputs(policy: Policy, table: np.ndarray, mdp: MDP) -> np.ndarray:
    if policy.keys == "state":
        if len(table) != mdp.n_states:
            raise InputError(
                policy.path, f"table has {len(table)} rows, the model {mdp.n_states} states"
            )
        return table
    keys = policy.valuations
    if keys is None:
        raise ValueError(f"{policy.path}: a table keyed by valuation without its valuations")
    if keys.shape[1] != mdp.valuations.shape[1]:
        raise InputError(
            policy.path,
            f"valuations have {keys.shape[1]} values, the model {mdp.valuations.shape[1]}",
        )
    index = {tuple(row): i for i, row in enumerate(keys.tolist())}
    rows = [index.get(tuple(v)) for v in mdp.valuations.tolist()]
    missing = [s for s, r in enumerate(rows) if r is None]
    if missing:
        raise InputError(policy.path, f"no row for state {mdp.state_description(missing[0])}")
    return table[np.array(rows)]


def induced_chain(mdp: MDP, decisions: Decisions) -> MDP:
    """The Markov chain of the MDP under the policy: P(s'|s) = sum_c prob(c) P(s'|c)."""
    states = mdp.choice_states()
    selection = sp.csr_matrix(
        (decisions.choice_probs, (states, np.arange(mdp.n_choices))),
        shape=(mdp.n_states, mdp.n_choices),
    )
    chain = (selection @ mdp.transitions).tocsr()
    chain.eliminate_zeros()
    chain.sort_indices()
    rewards = {name: selection @ values for name, values in mdp.rewards.items()}
    return MDP(
        transitions=chain,
        row_groups=np.arange(mdp.n_states + 1, dtype=np.int64),
        choice_actions=np.full(mdp.n_states, -1, dtype=np.int32),
        actions=(),
        labels=mdp.labels,
        initial_states=mdp.initial_states,
        variables=mdp.variables,
        valuations=mdp.valuations,
        rewards=rewards,
        kind="dtmc",
        name=mdp.name,
    )

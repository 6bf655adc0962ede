"""Helpers shared by the tests: small mazes from text, values by Storm, a policy's choices,
Ctrl-C in a child."""

from __future__ import annotations

import json
import signal
import textwrap

import numpy as np

from verifier import storm
from verifier.policy.decide import decide


def maze_text(map_text: str, cells: str = "", **top) -> str:
    """Maze TOML from a map, [cells] declarations (dedented) and top-level keys."""
    header = "".join(f"{key} = {json.dumps(value)}\n" for key, value in top.items())
    return f'{header}map = """\n{textwrap.dedent(map_text).strip()}\n"""\n{textwrap.dedent(cells)}'


def values(mdp, prop_text: str) -> np.ndarray:
    """Values of a property at each initial state of a compiled MDP, by Storm."""
    prop = storm.parse_properties(prop_text)[0]
    return storm.check(storm.to_storm(mdp), prop).values


def interruptible() -> None:
    """`preexec_fn` of a child that a test interrupts with SIGINT: a process started in the
    background inherits SIGINT ignored (POSIX shells without job control), and Python then
    keeps it ignored; the child gets the default, so that Ctrl-C reaches it as at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spread_decisions(model, observations) -> None:
    """Make a briefly trained SB3 network choose differently across states, so that a round
    trip test can fail: its output layer becomes a seeded random linear map of its input
    features, centred and scaled over the given observations (64 steps of training leave
    one action preferred nearly everywhere)."""
    import torch

    policy = model.policy
    if hasattr(policy, "action_net"):
        head = policy.action_net
    else:
        head = [m for m in policy.q_net.modules() if isinstance(m, torch.nn.Linear)][-1]
    seen = []
    hook = head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    model.predict(observations, deterministic=True)
    hook.remove()
    features = seen[0]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        weight = torch.randn(head.weight.shape, generator=generator)
        head.weight.copy_(weight / features.std(0).clamp_min(1e-6))
        head.bias.copy_(-head.weight @ features.mean(0))


def chosen_actions(env, policy) -> list[str | None]:
    """The action the verifier's decision takes in each state (None in absorbing states)."""
    decisions = decide(policy, env)
    mdp = env.mdp
    names = []
    for s in range(mdp.n_states):
        choices = range(mdp.row_groups[s], mdp.row_groups[s + 1])
        best = max(choices, key=lambda c: decisions.choice_probs[c])
        a = mdp.choice_actions[best]
        names.append(None if a < 0 else mdp.actions[a])
    return names

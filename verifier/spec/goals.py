"""Candidate goals: what a learner could pursue instead of φ, named by the model's labels.

Read by the policy taxonomy (which goal a failing policy pursues) and by the audit (which
proxies training cannot tell from φ).
"""

from __future__ import annotations

from verifier.inputs.maze import KINDS, PALETTE
from verifier.mdp import MDP

NOT_GOALS = ("floor", "terminal")


def candidate_goals(mdp: MDP) -> list[str]:
    """Labels that hold in no initial state, other than floor and terminal, most general
    first: colors (palette order), kinds, kind_color, then the rest (custom labels, keys)."""
    names = [
        name
        for name, mask in mdp.labels.items()
        if name not in NOT_GOALS
        and not name.startswith("__")
        and mask.any()
        and not mask[mdp.initial_states].any()
    ]

    def rank(name: str) -> tuple[int, int, str]:
        if name in PALETTE:
            return 0, PALETTE.index(name), name
        if name in KINDS:
            return 1, KINDS.index(name), name
        kind, _, color = name.partition("_")
        if kind in KINDS and color in PALETTE:
            return 2, KINDS.index(kind) * len(PALETTE) + PALETTE.index(color), name
        return 3, 0, name

    return sorted(names, key=rank)

"""models/gridworlds: transcriptions of AI Safety Gridworlds, against the figures of the
upstream code (replayed in the real environment; /work/shared/research, section 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verifier.analyses.reward_verdict import ALIGNED, MISSPECIFIED, check_reward
from verifier.engine.optimum import solve
from verifier.inputs.load import load_environment
from verifier.spec.reward_file import resolve_reward

SUPERVISOR = Path(__file__).resolve().parents[2] / "models/gridworlds/absent-supervisor.prism"


def test_absent_supervisor_has_the_upstream_returns_and_performances():
    """Long walk rrrdddlll: 41 / 41; through P (ddd): 17 / 17 supervised, 47 / 17 not. The
    optimal return after the draw is 41 watched and 47 unwatched, the best performance 41."""
    env = load_environment(SUPERVISOR)
    mdp = env.mdp
    sup = mdp.valuations[:, mdp.variables.index("sup")]
    start = (mdp.valuations[:, mdp.variables.index("r")] == 1) & (
        mdp.valuations[:, mdp.variables.index("c")] == 2
    )
    reward = solve(mdp, mdp.rewards["reward"]).values
    performance = solve(mdp, mdp.rewards["performance"]).values
    assert reward[start & (sup == 1)] == pytest.approx([41.0])
    assert reward[start & (sup == 0)] == pytest.approx([47.0])
    assert performance[start & (sup < 2)] == pytest.approx([41.0, 41.0])
    assert mdp.n_states == 25  # the draw, then 12 cells x supervisor bit; G absorbing


def test_absent_supervisor_reward_is_misspecified_for_the_hidden_performance():
    """The reward-optimal policy cuts through P when unwatched: performance 0.5 * 41 +
    0.5 * 17 = 29 against 41; return 0.5 * 41 + 0.5 * 47 = 44. With the performance as
    the reward the verdict is aligned."""
    env = load_environment(SUPERVISOR)
    report = check_reward(env, resolve_reward("reward", env.mdp), env.properties[0])
    assert report.verdict == MISSPECIFIED
    assert report.optimal_return == pytest.approx(44.0)
    assert (report.objective_min, report.objective_max) == pytest.approx((29.0, 29.0))
    assert report.optimal_value == pytest.approx(41.0)
    honest = check_reward(env, resolve_reward("performance", env.mdp), env.properties[0])
    assert honest.verdict == ALIGNED


def test_absent_supervisor_safety_objective_fails_half_the_time():
    """G !punishment: the reward-optimal policy steps on P exactly when unwatched: 0.5."""
    env = load_environment(SUPERVISOR, spec='Pmax=? [ G !"punishment" ]')
    report = check_reward(env, resolve_reward("reward", env.mdp), env.properties[0])
    assert np.isclose(report.objective_min, 0.5) and np.isclose(report.objective_max, 0.5)
    assert report.verdict == MISSPECIFIED

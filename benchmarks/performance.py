"""The performance suite: four pipelines of ours against their baselines, slowly mixing
chains, and the goals of issue 12 judged from them, in one run.

On open rooms of about 10^2 .. 10^6 states (`generate.open_room`, slip 0.1, generated once and
written as TOML files to a scratch directory that every job reads), one run measures:

  compile  into Storm; ours: TOML -> `parse_maze` -> `compile_maze` -> `storm.to_storm`;
           baselines: Storm's PRISM parser and builder on the compact PRISM model of the room
           (open_room.prism: two variables, four guarded commands), and on the maze's PRISM
           export (`to_prism`: one command per cell and action)
  check    `Pmax=? [ F "exit" ]`; ours: `verifier.load_environments` + `verifier.check`; baselines:
           Storm alone (parse, build for the property, check) on the compact model and on the
           export
  reward   ours: `reward_reports(env, REWARD.toml)` with step -0.01 and exit +1, discount 1
           and 0.99, which Storm cannot compute (mixed signs); against Storm, on the
           non-negative reward exit +1: our solver (`verifier.engine.optimum.solve`) and Storm's
           `Rmax=? [ C ]` / `[ Cdiscount=0.99 ]`, both from the compiled MDP
  policy   an MLP on valuations; ours: `verify POLICY` through the library on every state;
           baseline: Storm's callback builder asking the network state by state (COOL-MC)

Up to 10^4 states a cross-check shows that the compact PRISM model is the MDP `compile_maze`
builds: the same states (matched by position), choices, actions and transition
probabilities, and the same `Pmax=? [ F "exit" ]` and `Rmin=? [ F "exit" ]` (expected steps)
at every state.

Slowly mixing chains: the uniformly random policy on seeded perfect mazes (`random_maze`,
slip 0.25) of about 3,500 and 10^5 states, with two lava dead ends and without lava;
`P=? [ !"lava" U "exit" ]` of its induced chain by `reach.probabilities` (a direct solve with
error bounds), by Storm's sound engine and by Storm's exact engine (rationals), every value
compared with every bound.

Every measurement is a `verifier.runner.Job` run by `verifier.runner.run_jobs`, the runner of
`verify suite`: a fresh process per job (with one worker; the runner reuses a worker for the
jobs of one call, so they go one call at a time), a timeout, crash isolation, its peak RSS.
The sizes run in ascending order; after a timeout (or running out of memory), larger sizes of
that series are not tried. Where ours and a baseline both finish they must agree (state
counts, and values within 1e-6; chains: the exact value inside our bounds, Storm's bounds
meeting ours); a disagreement is printed, marked in the table and makes the exit code 1.
Finally the goals of issue 12 are judged from the measurements (`GOALS`), each with its
ratio against the baseline of the same run.

    python benchmarks/performance.py                  # 10^2 .. 10^6, about 40 minutes
    python benchmarks/performance.py --quick          # up to 10^4
    python benchmarks/performance.py --sizes 100,1000 --timeout 30 --out /tmp/perf

Writes performance.json, performance.md and performance.png to --out (benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (ROOT, HERE):  # the verifier, and the other scripts when run as a job
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from compile_scaling import prism_build  # noqa: E402
from harness import clock, ratio, seconds, versions  # noqa: E402
from policy_scaling import worker_incremental, worker_ours, write_policy  # noqa: E402
from reward_scaling import (  # noqa: E402
    EXIT_BONUS,
    STEP,
    Timers,
    maze_for,
    worker_ours_nonnegative,
    worker_storm,
)

SELF = str(Path(__file__).resolve())
COMPACT_PRISM = HERE / "open_room.prism"
TARGETS = (10**2, 10**3, 10**4, 10**5, 10**6)
QUICK_MAX = 10**4
SAME_MDP_MAX = 10**4  # the compact model is compared with ours state by state up to here
DISCOUNTS = (1.0, 0.99)
CHECK_PROPERTY = 'Pmax=? [ F "exit" ]'
STEPS_PROPERTY = 'Rmin=? [ F "exit" ]'
TOLERANCE = 1e-6
PIPELINES = ("compile", "check", "reward", "policy")
ROLES = ("ours", "solver", "baseline")  # a reward row's solver is ours on what Storm computes

# Slowly mixing chains: the uniformly random policy on perfect mazes of about these many
# states (n x n characters, n the odd number nearest sqrt(2 * size), rounded up).
CHAIN_TARGETS = (3_500, 10**5)
CHAIN_SLIP = 0.25
CHAIN_SEED = 0
# Lava dead ends per maze. Without lava every state reaches the exit with probability 1,
# which graph search decides (no numerics): the measured variant has two.
CHAIN_VARIANTS = {"2 lava": 2, "no lava": 0}
CHAIN_PROPERTY = 'P=? [ !"lava" U "exit" ]'
CHAIN_ROLES = ("ours", "sound", "exact")

# ----------------------------------------------------------------------------- jobs


def compile_ours(maze: str) -> dict:
    """compile, ours: the TOML file -> `parse_maze` -> `compile_maze` -> `storm.to_storm`."""
    from verifier import storm
    from verifier.inputs.maze import parse_maze
    from verifier.inputs.maze_compile import compile_maze

    text, read_s = clock(lambda: Path(maze).read_text(encoding="utf-8"))
    parsed, parse_s = clock(lambda: parse_maze(text, source=maze))
    mdp, compile_s = clock(lambda: compile_maze(parsed))
    model, to_storm_s = clock(lambda: storm.to_storm(mdp))
    return {
        "states": model.nr_states,
        "choices": model.nr_choices,
        "transitions": model.nr_transitions,
        "read_s": read_s,
        "parse_s": parse_s,
        "compile_s": compile_s,
        "to_storm_s": to_storm_s,
    }


def _compact_program(prism: str, height: int, width: int, prop: str | None = None):
    """The compact PRISM model with its size set, and `prop` parsed for it (a list)."""
    import stormpy

    program = stormpy.parse_prism_program(prism)
    properties = stormpy.parse_properties(prop, program) if prop else []
    return stormpy.instantiate_constants(program, f"H={height},W={width}", properties)


def compile_compact(prism: str, height: int, width: int) -> dict:
    """compile, baseline: Storm's PRISM parser and builder on the compact model, building what
    `to_storm` hands over (every label, the action of each choice)."""
    import stormpy

    (program, _), load_s = clock(lambda: _compact_program(prism, height, width))

    def build():
        options = stormpy.BuilderOptions()
        options.set_build_all_labels()
        options.set_build_choice_labels()
        return stormpy.build_model(program, options=options)

    model, build_s = clock(build)
    return {
        "states": model.nr_states,
        "choices": model.nr_choices,
        "transitions": model.nr_transitions,
        "load_s": load_s,
        "build_s": build_s,
    }


def compile_storm(maze: str, prism: str) -> dict:
    """compile, baseline: Storm's PRISM parser and builder on the maze's PRISM export."""
    return prism_build(Path(maze).read_text(encoding="utf-8"), Path(prism))


def check_ours(maze: str) -> dict:
    """check, ours: `verify check --spec CHECK_PROPERTY` through the library (its modules
    imported first: the API imports them on first use)."""
    import verifier
    import verifier.analyses.check
    import verifier.inputs.load

    (env,), load_s = clock(lambda: verifier.load_environments(maze, CHECK_PROPERTY))
    (report,), check_s = clock(lambda: verifier.check(env))
    return {
        "states": report.states,
        "choices": report.choices,
        "transitions": report.transitions,
        "load_s": load_s,
        "check_s": check_s,
        "value": report.value,
    }


def check_compact(prism: str, height: int, width: int) -> dict:
    """check, baseline: Storm alone on the compact model, as a Storm user checks it: parse
    the model and the property, build for the property, check with the sound engine."""
    import stormpy

    (program, properties), load_s = clock(
        lambda: _compact_program(prism, height, width, CHECK_PROPERTY)
    )
    model, build_s = clock(lambda: stormpy.build_model(program, properties))
    result, check_s = clock(
        lambda: stormpy.model_checking(
            model, properties[0], environment=stormpy.environments.sound()
        )
    )
    return {
        "states": model.nr_states,
        "choices": model.nr_choices,
        "transitions": model.nr_transitions,
        "load_s": load_s,
        "build_s": build_s,
        "check_s": check_s,
        "value": min(result.get_value(s) for s in model.initial_states),
    }


def check_storm(maze: str, prism: str) -> dict:
    """check, baseline: Storm builds the PRISM export for the property and checks it."""
    return prism_build(Path(maze).read_text(encoding="utf-8"), Path(prism), CHECK_PROPERTY)


def reward_ours(maze: str, reward: str) -> dict:
    """reward, ours: `verify reward --model MAZE --reward REWARD` through the library, with the
    time of policy iteration (`solve`) inside it (timed where the query layer calls it)."""
    import verifier
    import verifier.analyses.reward_verdict
    import verifier.engine.query
    import verifier.inputs.load

    timers = Timers()
    timers.wrap(verifier.engine.query, "solve")
    (env,), load_s = clock(lambda: verifier.load_environments(maze))
    (report,), check_s = clock(lambda: verifier.verify_reward(env, reward))
    return {
        "states": report.states,
        "load_s": load_s,
        "check_s": check_s,
        "solve_s": timers.seconds["solve"],
        "iterations": timers.last["solve"].iterations,
        "verdict": report.verdict,
        "optimal_return": report.optimal_return,
        "objective_min": report.objective_min,
        "objective_max": report.objective_max,
    }


def same_mdp(maze: str, prism: str, height: int, width: int) -> dict:
    """Is the compact PRISM model the MDP `compile_maze` builds? Its states are matched to ours
    by position (r, c) = (row, col); then the choices of each state (in order, with their
    actions) and their transition probabilities must be equal, and `Pmax=? [ F "exit" ]` and
    `Rmin=? [ F "exit" ]` (ours with a reward of 1 on every choice outside the exit, through
    `to_storm`; the compact model's "steps", which must be that reward) equal at every state.
    Not timed."""
    import dataclasses

    import scipy.sparse as sp
    import stormpy

    from verifier import storm
    from verifier.inputs.maze import load_maze
    from verifier.inputs.maze_compile import compile_maze

    mdp = compile_maze(load_maze(maze))
    steps = np.where(mdp.labels["exit"][mdp.choice_states()], 0.0, 1.0)
    ours = storm.to_storm(dataclasses.replace(mdp, rewards={"steps": steps}))
    program, _ = _compact_program(prism, height, width)
    options = stormpy.BuilderOptions()
    options.set_build_all_labels()
    options.set_build_choice_labels()
    options.set_build_all_reward_models()
    options.set_build_state_valuations()
    compact = stormpy.build_model(program, options=options)
    theirs = storm.from_storm(compact, variables=("r", "c"), actions=mdp.actions)
    found = {
        "states": [mdp.n_states, theirs.n_states],
        "choices": [mdp.n_choices, theirs.n_choices],
        "transitions": [mdp.n_transitions, theirs.n_transitions],
    }
    # Our state s is their state twin[s]: the one at the same position.
    position = mdp.valuations[:, 0] * width + mdp.valuations[:, 1]
    their_position = theirs.valuations[:, 0] * width + theirs.valuations[:, 1]
    order = np.argsort(their_position)
    twin = order[np.searchsorted(their_position[order], position).clip(0, len(order) - 1)]
    same = (
        mdp.n_states == theirs.n_states
        and bool((their_position[twin] == position).all())
        and bool((np.diff(theirs.row_groups)[twin] == np.diff(mdp.row_groups)).all())
    )
    probability_diff = math.inf
    if same:
        # Our k-th choice of state s is their k-th choice of twin[s].
        states = mdp.choice_states()
        their_choice = theirs.row_groups[twin[states]] + np.arange(mdp.n_choices)
        their_choice -= mdp.row_groups[states]
        names = np.array(["", *mdp.actions])[mdp.choice_actions + 1]
        their_names = np.array(["", *theirs.actions])[theirs.choice_actions[their_choice] + 1]
        ours_state = np.empty(theirs.n_states, dtype=np.int64)
        ours_state[twin] = np.arange(mdp.n_states)
        moved = theirs.transitions[their_choice].tocoo()
        permuted = sp.csr_matrix(
            (moved.data, (moved.row, ours_state[moved.col])), shape=mdp.transitions.shape
        )
        probability_diff = float(abs(permuted - mdp.transitions).max())
        same = (
            bool((names == their_names).all())
            and bool((theirs.rewards["steps"][their_choice] == steps).all())
            and bool((theirs.labels["exit"][twin] == mdp.labels["exit"]).all())
            and sorted(twin[mdp.initial_states].tolist()) == theirs.initial_states.tolist()
        )
    found["same_structure"] = same
    found["max_probability_diff"] = probability_diff
    for name, text in (("pmax", CHECK_PROPERTY), ("rmin", STEPS_PROPERTY)):
        formula = stormpy.parse_properties(text)[0].get_raw_formula()
        values = [
            np.asarray(
                stormpy.model_checking(
                    model, formula, environment=stormpy.environments.sound()
                ).get_value_vector()
            )
            for model in (ours, compact)
        ]
        initial = mdp.initial_states
        found[f"{name}_initial"] = [float(values[0][initial].min()), None]
        if same:
            theirs_here = values[1][twin]
            found[f"{name}_initial"][1] = float(theirs_here[initial].min())
            found[f"{name}_diff_initial"] = float(np.abs(values[0] - theirs_here)[initial].max())
            found[f"{name}_diff_all"] = float(np.abs(values[0] - theirs_here).max())
    return found


# ----------------------------------------------------------------------------- chain jobs


def _random_walk(maze: str):
    """The maze's MDP and the Markov chain of the uniformly random policy on it, with the
    time `induced_chain` took."""
    from verifier.inputs.maze import load_maze
    from verifier.inputs.maze_compile import compile_maze
    from verifier.policy.decide import Decisions, induced_chain

    mdp = compile_maze(load_maze(maze))
    probabilities = 1.0 / np.diff(mdp.row_groups)[mdp.choice_states()]
    decisions = Decisions(probabilities, np.zeros(mdp.n_states, dtype=bool))
    chain, chain_s = clock(lambda: induced_chain(mdp, decisions))
    return mdp, chain, chain_s


def chain_ours(maze: str, values_path: str) -> dict:
    """The random walk's P[ !lava U exit ] by `reach.probabilities` (the chain's direct
    solve); values, lower and upper bounds of every state go to `values_path`."""
    from verifier.engine import reach

    mdp, chain, chain_s = _random_walk(maze)
    left, target = ~mdp.labels["lava"], mdp.labels["exit"]
    found, solve_s = clock(lambda: reach.probabilities(chain, left, target, None))
    np.save(values_path, np.stack([found.values, found.lower, found.upper]))
    start = int(mdp.initial_states[0])
    return {
        "states": mdp.n_states,
        "transitions": chain.n_transitions,
        "lava_cells": int(mdp.labels["lava"].sum()),
        "induced_chain_s": chain_s,
        "solve_s": solve_s,
        "value": float(found.values[start]),
        "lower": float(found.lower[start]),
        "upper": float(found.upper[start]),
        "width": float((found.upper - found.lower).max()),
        "method": found.method,
    }


def chain_sound(maze: str, values_path: str) -> dict:
    """The same by Storm's sound engine (`environments.sound()`) on the chain as a Storm
    DTMC; values and bounds to `values_path`."""
    import stormpy

    from verifier import storm

    mdp, chain, _ = _random_walk(maze)
    model, to_storm_s = clock(lambda: storm.to_storm(chain))
    formula = stormpy.parse_properties(CHAIN_PROPERTY)[0].get_raw_formula()
    result, check_s = clock(
        lambda: stormpy.model_checking(model, formula, environment=stormpy.environments.sound())
    )
    values = np.asarray(result.get_value_vector(), dtype=np.float64)
    lower = np.asarray(result.get_lower_bound_vector()) if result.has_lower_bounds() else values
    upper = np.asarray(result.get_upper_bound_vector()) if result.has_upper_bounds() else values
    np.save(values_path, np.stack([values, lower, upper]).astype(np.float64))
    start = int(mdp.initial_states[0])
    return {
        "states": model.nr_states,
        "to_storm_s": to_storm_s,
        "check_s": check_s,
        "value": float(values[start]),
        "lower": float(lower[start]),
        "upper": float(upper[start]),
        "width": float((upper - lower).max()),
    }


def chain_exact(maze: str, values_path: str) -> dict:
    """The same by Storm's exact engine (`environments.exact()`) on the chain built with
    rational probabilities. With slip 0.25 every probability is a sum of 1/4 * (3/4, 1/8,
    1/8): a float64 exactly, so each is read as the fraction it is (every row must then sum
    to exactly 1). The exact value of each state goes to `values_path` as the two doubles
    around it (equal where it is one), which compare with bounds exactly."""
    import stormpy

    mdp, chain, _ = _random_walk(maze)
    model, build_s = clock(lambda: _exact_dtmc(mdp, chain))
    formula = stormpy.parse_properties(CHAIN_PROPERTY)[0].get_raw_formula()
    result, check_s = clock(
        lambda: stormpy.model_checking(model, formula, environment=stormpy.environments.exact())
    )
    exact = [Fraction(str(value)) for value in result.get_value_vector()]
    nearest = np.array([float(x) for x in exact])
    above = np.array([Fraction(f) > x for f, x in zip(nearest.tolist(), exact, strict=True)])
    below = np.array([Fraction(f) < x for f, x in zip(nearest.tolist(), exact, strict=True)])
    down = np.where(above, np.nextafter(nearest, -np.inf), nearest)
    up = np.where(below, np.nextafter(nearest, np.inf), nearest)
    np.save(values_path, np.stack([down, up]))
    start = exact[int(mdp.initial_states[0])]
    text = str(start)
    return {
        "states": model.nr_states,
        "build_s": build_s,
        "check_s": check_s,
        "value": float(start),
        "fraction": text if len(text) <= 60 else f"{len(text)} characters",
    }


def _exact_dtmc(mdp, chain):
    """The chain (our MDP type, one choice per state) as a Storm DTMC over rationals."""
    import stormpy
    import stormpy.datastructures
    import stormpy.models

    def instance(family):
        found = family.instantiations
        return (found() if callable(found) else found)[(stormpy.Rational,)]

    matrix = chain.transitions
    n = chain.n_states
    builder = instance(stormpy.datastructures.SparseMatrixBuilder)(
        rows=n, columns=n, entries=int(matrix.nnz), force_dimensions=True
    )
    for s in range(n):
        begin, end = int(matrix.indptr[s]), int(matrix.indptr[s + 1])
        row = [Fraction(p) for p in matrix.data[begin:end].tolist()]
        if sum(row) != 1:
            raise ValueError(f"state {s}: the probabilities are not exact (sum {sum(row)})")
        for target, probability in zip(matrix.indices[begin:end].tolist(), row, strict=True):
            builder.add_next_value(s, target, stormpy.Rational(str(probability)))
    labeling = stormpy.models.StateLabeling(n)
    initial = np.zeros(n, dtype=bool)
    initial[mdp.initial_states] = True
    for name, mask in (
        ("exit", mdp.labels["exit"]),
        ("lava", mdp.labels["lava"]),
        ("init", initial),
    ):
        labeling.add_label(name)
        labeling.set_states(
            name, stormpy.datastructures.BitVector(n, np.flatnonzero(mask).tolist())
        )
    components = instance(stormpy.models.SparseModelComponents)(
        transition_matrix=builder.build(), state_labeling=labeling
    )
    return instance(stormpy.models.SparseDtmc)(components)


# The job functions (by name, as the runner finds them in this file) and the keys of their
# results whose seconds add up to the measured time (imports and extra measurements excluded).
TIME_KEYS = {
    function.__name__: keys
    for function, keys in (
        (compile_ours, ("read_s", "parse_s", "compile_s", "to_storm_s")),
        (compile_compact, ("load_s", "build_s")),
        (compile_storm, ("load_s", "build_s")),
        (check_ours, ("load_s", "check_s")),
        (check_compact, ("load_s", "build_s", "check_s")),
        (check_storm, ("load_s", "build_s", "check_s")),
        (reward_ours, ("load_s", "check_s")),
        (worker_ours_nonnegative, ("solve_s",)),
        (worker_storm, ("check_s",)),
        (worker_ours, ("total_s",)),
        (worker_incremental, ("total_s",)),
        (same_mdp, ()),
        (chain_ours, ("solve_s",)),
        (chain_sound, ("check_s",)),
        (chain_exact, ("check_s",)),
    )
}


def write_reward(path: Path, discount: float) -> None:
    """The reward file of the reward pipeline: step STEP, arrive exit +EXIT_BONUS."""
    path.write_text(
        f"discount = {discount!r}\nstep = {STEP!r}\n\n[arrive]\nexit = {EXIT_BONUS!r}\n",
        encoding="utf-8",
    )


def chain_maze(target: int, lava: int):
    """The perfect maze of the chains: n x n characters, n the odd number nearest
    sqrt(2 * target) (rounded up; about half the cells are floor), seeded, slip 0.25."""
    from verifier.inputs.maze_generate import random_maze

    side = round(math.sqrt(2 * target))
    side += side % 2 == 0
    return random_maze(side, side, CHAIN_SEED, lava=lava, slip=CHAIN_SLIP)


# ----------------------------------------------------------------------------- plan and run


def plan(target: int, maze: Path, shape, scratch: Path, policy: Path, discounts) -> list[dict]:
    """The rows of one size, each with its jobs as (function, kwargs, timeout kind) per role:
    `ours` and `baseline`, and for the reward rows `solver` (ours on the reward Storm can
    compute). A row whose `ours` is another row's (the export rows) names it in `shares`."""
    files = {"maze": str(maze)}
    compact = {"prism": str(COMPACT_PRISM), "height": shape[0], "width": shape[1]}
    export = {name: str(scratch / f"{name}-{target}.prism") for name in PIPELINES}
    rows = [
        {
            "pipeline": "compile",
            "label": "compile",
            "ours": ("compile_ours", files, "timeout"),
            "baseline": ("compile_compact", compact, "timeout"),
        },
        {
            "pipeline": "compile",
            "label": "compile (export)",
            "shares": "compile",
            "baseline": ("compile_storm", {**files, "prism": export["compile"]}, "slow"),
        },
        {
            "pipeline": "check",
            "label": "check",
            "ours": ("check_ours", files, "timeout"),
            "baseline": ("check_compact", compact, "timeout"),
        },
        {
            "pipeline": "check",
            "label": "check (export)",
            "shares": "check",
            "baseline": ("check_storm", {**files, "prism": export["check"]}, "slow"),
        },
    ]
    for discount in discounts:
        values = {
            side: str(scratch / f"{side}-{target}-{discount:g}.npy")
            for side in ("solver", "baseline")
        }
        common = {"path": str(maze), "discount": discount}
        reward_file = str(scratch / f"reward-{discount:g}.toml")
        rows.append(
            {
                "pipeline": "reward",
                "label": f"reward γ={discount:g}",
                "discount": discount,
                "values": values,
                "ours": ("reward_ours", {**files, "reward": reward_file}, "timeout"),
                "solver": (
                    "worker_ours_nonnegative",
                    {**common, "values_path": values["solver"]},
                    "timeout",
                ),
                "baseline": (
                    "worker_storm",
                    {**common, "values_path": values["baseline"]},
                    "timeout",
                ),
            }
        )
    policy_files = {"maze_path": str(maze), "policy_path": str(policy)}
    rows.append(
        {
            "pipeline": "policy",
            "label": "policy",
            "ours": ("worker_ours", policy_files, "timeout"),
            "baseline": (
                "worker_incremental",
                {**policy_files, "prism_path": export["policy"]},
                "slow",
            ),
        }
    )
    for row in rows:
        row["target"] = target
    return rows


def record_of(outcome, loads: dict) -> dict:
    """A job's outcome as stored: the runner's fields, `time_s` (the measured time) and
    `load_1min` (the machine's 1-minute load average as the job ended, the job included)."""
    record = outcome.to_dict()
    record["load_1min"] = loads.get(outcome.job.key)
    if outcome.status == "done":
        function = outcome.job.function.rpartition(":")[2]
        record["time_s"] = sum(outcome.result[key] for key in TIME_KEYS[function])
    return record


def compare(row: dict) -> dict | None:
    """Ours (the solver for rewards) against the baseline where both finished: the state
    counts (compile: also choices and transitions), and the values (for rewards at every
    state)."""
    ours, base = row.get("solver") or row["ours"], row["baseline"]
    if ours["status"] != "done" or base["status"] != "done":
        return None
    a, b = ours["result"], base["result"]
    # The incremental baseline builds only the states the policy reaches.
    mine = a["reachable_states"] if row["pipeline"] == "policy" else a["states"]
    found = {"states": [mine, b["states"]], "same_states": mine == b["states"]}
    if row["pipeline"] == "compile":
        found["same_states"] &= all(a[k] == b[k] for k in ("choices", "transitions"))
    elif row["pipeline"] == "reward":
        x, y = np.load(row["values"]["solver"]), np.load(row["values"]["baseline"])
        found["max_abs_diff"] = float(np.abs(x - y).max()) if x.shape == y.shape else math.inf
    else:
        found["max_abs_diff"] = abs(a["value"] - b["value"])
    found["agree"] = found["same_states"] and found.get("max_abs_diff", 0.0) <= TOLERANCE
    return found


def same_mdp_agrees(found: dict) -> bool:
    """The compact model is our MDP: same counts and structure, values within TOLERANCE."""
    return (
        all(len(set(found[k])) == 1 for k in ("states", "choices", "transitions"))
        and found["same_structure"]
        and found["max_probability_diff"] <= 1e-15
        and all(found.get(f"{v}_diff_all", math.inf) <= TOLERANCE for v in ("pmax", "rmin"))
    )


def compare_chain(row: dict, files: dict) -> dict | None:
    """Every value against every bound, at every state: ours and Storm's sound engine (values,
    lower, upper), the exact value (the doubles around it)."""
    if row["ours"]["status"] != "done":
        return None
    values, lower, upper = np.load(files["ours"])
    found = {"ours_inside_ours": bool(((lower <= values) & (values <= upper)).all())}
    if row["sound"]["status"] == "done":
        storm_values, storm_lower, storm_upper = np.load(files["sound"])
        found["storm_inside_storm"] = bool(
            ((storm_lower <= storm_values) & (storm_values <= storm_upper)).all()
        )
        found["storm_inside_ours"] = bool(((lower <= storm_values) & (storm_values <= upper)).all())
        found["ours_inside_storm"] = bool(((storm_lower <= values) & (values <= storm_upper)).all())
        found["bounds_meet"] = bool(((lower <= storm_upper) & (storm_lower <= upper)).all())
        found["max_abs_diff_storm"] = float(np.abs(values - storm_values).max())
    if row["exact"]["status"] == "done":
        down, up = np.load(files["exact"])
        found["exact_inside_ours"] = bool(((lower <= down) & (up <= upper)).all())
        found["max_abs_diff_exact"] = float(
            np.maximum(np.abs(values - down), np.abs(values - up)).max()
        )
        if "storm_inside_storm" in found:
            found["exact_inside_storm"] = bool(((storm_lower <= down) & (up <= storm_upper)).all())
    found["agree"] = (
        found["ours_inside_ours"]
        and found.get("bounds_meet", True)
        and found.get("exact_inside_ours", True)
    )
    return found


def run_fresh(jobs, args, on_done) -> list:
    """`run_jobs`, each job in a fresh process: a local pool reuses its workers for the jobs
    of one call, so they go in calls of `--workers` jobs (one job per call and process at one
    worker). On Dask every job runs in a child interpreter of its own already."""
    from verifier.runner import run_jobs

    if args.scheduler:
        return run_jobs(jobs, None, args.scheduler, on_done)
    outcomes = []
    for first in range(0, len(jobs), args.workers):
        outcomes += run_jobs(jobs[first : first + args.workers], args.workers, None, on_done)
    return outcomes


def run(args) -> dict:
    """Generate the mazes, run each size's jobs, cross-check, judge the goals: the JSON
    document."""
    from verifier.inputs.maze_generate import maze_to_toml
    from verifier.runner import Job

    meta = versions({"torch": version("torch")})
    meta["load_average_start"] = list(os.getloadavg())
    meta["settings"] = {
        "sizes": args.sizes,
        "timeout_s": args.timeout,
        "baseline_timeout_s": args.baseline_timeout,
        "chain_timeout_s": args.chain_timeout,
        "workers": args.workers,
        "scheduler": args.scheduler,
        "discounts": args.discounts,
        "maze": "generate.open_room(n + 2, n + 2, slip=0.1), n = round(sqrt(size))",
        "compact_prism": str(COMPACT_PRISM.relative_to(ROOT)),
        "check_property": CHECK_PROPERTY,
        "reward": {"step": STEP, "arrive": {"exit": EXIT_BONUS}},
        "tolerance": TOLERANCE,
        "chain_sizes": args.chain_sizes,
        "chain_maze": f"generate.random_maze(n, n, {CHAIN_SEED}, lava=k, slip={CHAIN_SLIP}), "
        "n the odd number nearest sqrt(2 size), rounded up",
        "chain_policy": "uniform over the actions of each state",
        "chain_property": CHAIN_PROPERTY,
    }
    timeouts = {"timeout": args.timeout, "slow": args.baseline_timeout}
    rows, same, chains, disagreements, stopped = [], [], [], [], set()
    wall = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - wall:7.1f} s] {message}", file=sys.stderr, flush=True)

    loads: dict[str, float] = {}

    def on_done(outcome) -> None:
        loads[outcome.job.key] = load = os.getloadavg()[0]
        rss = f", {outcome.peak_rss_mb:.0f} MiB" if outcome.peak_rss_mb else ""
        log(
            f"{outcome.job.key}: {outcome.status} {outcome.seconds:.2f} s{rss} (load {load:.2f}) "
            f"{outcome.message}"
        )

    def disagree(problem: str) -> None:
        disagreements.append(problem)
        print(f"DISAGREEMENT: {problem}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="performance-", dir=args.scratch) as tmp:
        scratch = Path(tmp)
        policy = scratch / "mlp.pt"
        write_policy(policy)
        for discount in args.discounts:
            write_reward(scratch / f"reward-{discount:g}.toml", discount)
        for target in args.sizes:
            maze = scratch / f"open-{target}.toml"
            room, generate_s = clock(lambda t=target: maze_for("open", t))
            maze.write_text(maze_to_toml(room), encoding="utf-8")
            shape = tuple(int(x) for x in room.layout.shape)
            log(f"~{target:,} states: {maze.name} written ({generate_s:.2f} s)")
            size_rows, jobs = plan(target, maze, shape, scratch, policy, args.discounts), []
            for row in size_rows:
                for role in (r for r in ROLES if r in row):
                    function, kwargs, timeout = row[role]
                    if (row["label"], role) in stopped:
                        row[role] = {"status": "not tried", "message": "a smaller size ran out"}
                        continue
                    key = f"{row['label']} {target:,} {role} ({function})"
                    job = Job(key, f"{SELF}:{function}", kwargs, timeouts[timeout])
                    jobs.append((row, role, job))
            check = []
            if target <= SAME_MDP_MAX:
                kwargs = {"maze": str(maze), "prism": str(COMPACT_PRISM)}
                kwargs |= {"height": shape[0], "width": shape[1]}
                check = [Job(f"same MDP {target:,}", f"{SELF}:same_mdp", kwargs, args.timeout)]
            outcomes = run_fresh([job for *_, job in jobs] + check, args, on_done)
            for (row, role, _), outcome in zip(jobs, outcomes[: len(jobs)], strict=True):
                row[role] = record_of(outcome, loads)
                if outcome.status in ("timeout", "limit"):
                    stopped.add((row["label"], role))
            for outcome in outcomes[len(jobs) :]:
                record = {"target": target, **record_of(outcome, loads)}
                if record["status"] == "done":
                    record["agree"] = same_mdp_agrees(record["result"])
                    if not record["agree"]:
                        disagree(f"the compact PRISM model at {target:,}: {record['result']}")
                same.append(record)
            by_label = {row["label"]: row for row in size_rows}
            for row in size_rows:
                if "shares" in row:
                    row["ours"] = dict(by_label[row["shares"]]["ours"])
                row["agreement"] = found = compare(row)
                row.pop("values", None)
                if found is None:
                    continue
                ours = row.get("solver") or row["ours"]
                row["ratio"] = row["baseline"]["time_s"] / max(ours["time_s"], 1e-9)
                if not found["agree"]:
                    disagree(f"{row['label']} {target:,}: ours and the baseline DISAGREE: {found}")
            rows += size_rows
            maze.unlink()
        for target in args.chain_sizes:
            for variant, lava in CHAIN_VARIANTS.items():
                chains.append(
                    run_chain(target, variant, lava, scratch, args, stopped, on_done, log, loads)
                )
                found = chains[-1]["agreement"]
                if found is not None and not found["agree"]:
                    disagree(f"chain {variant} {target:,}: {found}")
    meta["load_average_end"] = list(os.getloadavg())
    meta["total_wall_s"] = time.perf_counter() - wall
    document = {
        "meta": meta,
        "pipelines": list(PIPELINES),
        "rows": rows,
        "same_mdp": same,
        "chains": chains,
        "disagreements": disagreements,
    }
    document["goals"] = goals(document)
    return document


def run_chain(target, variant, lava, scratch, args, stopped, on_done, log, loads) -> dict:
    """The three jobs of one slowly mixing chain, and their comparison."""
    from verifier.inputs.maze_generate import maze_to_toml
    from verifier.runner import Job

    maze = chain_maze(target, lava)
    path = scratch / f"chain-{target}-{lava}.toml"
    path.write_text(maze_to_toml(maze), encoding="utf-8")
    log(f"chain ~{target:,} states, {variant}: {maze.name} written")
    files = {role: str(scratch / f"chain-{target}-{lava}-{role}.npy") for role in CHAIN_ROLES}
    row = {"target": target, "variant": variant, "lava": lava, "maze": maze.name}
    row["side"] = int(maze.layout.shape[0])
    jobs = []
    for role, function in zip(
        CHAIN_ROLES, ("chain_ours", "chain_sound", "chain_exact"), strict=True
    ):
        if (f"chain {variant}", role) in stopped:
            row[role] = {"status": "not tried", "message": "a smaller size ran out"}
            continue
        timeout = args.timeout if role == "ours" else args.chain_timeout
        kwargs = {"maze": str(path), "values_path": files[role]}
        key = f"chain {variant} {target:,} {role} ({function})"
        jobs.append((role, Job(key, f"{SELF}:{function}", kwargs, timeout)))
    for (role, _), outcome in zip(
        jobs, run_fresh([job for _, job in jobs], args, on_done), strict=True
    ):
        row[role] = record_of(outcome, loads)
        if outcome.status in ("timeout", "limit"):
            stopped.add((f"chain {variant}", role))
    row["agreement"] = compare_chain(row, files)
    if row["agreement"] is not None and row["sound"]["status"] == "done":
        row["ratio"] = row["sound"]["time_s"] / max(row["ours"]["time_s"], 1e-9)
    path.unlink()
    return row


# ----------------------------------------------------------------------------- goals

GOAL_SIZE = 10**6
# 2 GB read as 2 * 10^9 bytes (the stricter reading; peak RSS is measured in MiB).
MEMORY_LIMIT_MIB = 2e9 / 2**20
# Chains: the variant the goal is judged on (without lava, graph search decides everything).
GOAL_CHAIN_VARIANT = "2 lava"


def _power(size: int) -> str:
    power = round(math.log10(size))
    return f"10^{power}" if size == 10**power else f"{size:,}"


def _row(document: dict, label: str, target: int) -> dict | None:
    """The row of `label` at `target`, else at the largest size run (not judged then)."""
    rows = [row for row in document["rows"] if row["label"] == label]
    exact = [row for row in rows if row["target"] == target]
    return exact[0] if exact else max(rows, key=lambda row: row["target"], default=None)


def _done(record: dict | None) -> bool:
    return bool(record) and record.get("status") == "done"


class Goals:
    """The goals as judged: each with what was measured, its ratio against the baseline of
    the same run and whether it is met; a goal measured at another size than its own is
    shown there and not judged (met None)."""

    def __init__(self):
        self.found: list[dict] = []

    def add(self, number, goal, size, target, measured, versus="", met=None) -> None:
        judged = size == target
        self.found.append(
            {
                "goal": f"{number}. {goal}",
                "goal_size": target,
                "size": size,
                "measured": measured if judged else f"{measured} (at {_power(size)})",
                "ratio": versus,
                "met": bool(met) if judged and met is not None else None,
            }
        )


def goals(document: dict) -> list[dict]:
    """Issue 12's goals judged from the document's measurements (module docstring)."""
    judged = Goals()
    discounts = document["meta"]["settings"]["discounts"]
    check = _row(document, "check", GOAL_SIZE)
    for discount in discounts:
        _reward_goals(judged, _row(document, f"reward γ={discount:g}", GOAL_SIZE), check)
    stops = [r for r in document["rows"] if r["label"] == "policy" and _stopped(r["baseline"])]
    for target, limit in ((10**5, 1.0), (10**6, 8.0)):
        _policy_goal(judged, _row(document, "policy", target), target, limit, stops[:1])
    _compile_goals(judged, _row(document, "compile", GOAL_SIZE))
    _check_goal(judged, check)
    _chain_goals(judged, [c for c in document["chains"] if c["variant"] == GOAL_CHAIN_VARIANT])
    for label in ("compile", "check", *(f"reward γ={d:g}" for d in discounts), "policy"):
        _memory_goal(judged, _row(document, label, GOAL_SIZE), label)
    return judged.found


def _reward_goals(judged: Goals, row: dict | None, check: dict | None) -> None:
    """1: the reward verdict under 15 s, and within 5x of one Storm Pmax check: Storm alone
    (parse + build + check of the compact model), and its check alone."""
    if row is None:
        return
    ours, size, label = row["ours"], row["target"], row["label"]
    measured = time_cell(ours)
    if _done(ours):
        result = ours["result"]
        measured += (
            f" (load {seconds(result['load_s'])}, reward_reports {seconds(result['check_s'])})"
        )
    judged.add(
        1,
        f"{label} verdict at {_power(GOAL_SIZE)} under 15 s",
        size,
        GOAL_SIZE,
        measured,
        met=_done(ours) and ours["time_s"] < 15.0,
    )
    storm = check["baseline"] if check is not None and check["target"] == size else None
    for what, part in (
        ("Storm alone (parse + build + check of the compact model)", None),
        ("Storm's check alone (on the model it built)", "check_s"),
    ):
        goal = f"{label} verdict within 5x of one `{CHECK_PROPERTY}`: {what}"
        if not (_done(ours) and _done(storm)):
            versus = f"Storm: {time_cell(storm).lower()}" if storm else "Storm not run"
            judged.add(1, goal, size, GOAL_SIZE, time_cell(ours), versus, None)
            continue
        base = storm["time_s"] if part is None else storm["result"][part]
        factor = ours["time_s"] / base
        judged.add(
            1,
            goal,
            size,
            GOAL_SIZE,
            f"{seconds(ours['time_s'])} against {seconds(base)}",
            f"ours / Storm = {ratio(factor)}",
            factor <= 5.0,
        )


def _stopped(record: dict) -> bool:
    return record.get("status") in ("timeout", "limit")


def _policy_goal(
    judged: Goals, row: dict | None, target: int, limit: float, stop: list[dict]
) -> None:
    """2: policy verification end to end, imports (torch's too) excluded; against the
    per-state builder where it ran (`stop`: the row where it ran out, if any)."""
    if row is None:
        return
    ours, base = row["ours"], row["baseline"]
    measured = time_cell(ours)
    if _done(ours):
        result = ours["result"]
        measured += (
            f" (imports {seconds(result['imports_s'])} and torch import "
            f"{seconds(result['torch_import_s'])} not counted)"
        )
    if _done(ours) and _done(base):
        versus = f"per-state Storm builder / ours = {ratio(base['time_s'] / ours['time_s'])}"
    elif base.get("status") == "not tried" and stop:
        versus = (
            f"per-state Storm builder: {time_cell(stop[0]['baseline'])} at "
            f"{_power(stop[0]['target'])}, not tried above"
        )
    else:
        versus = f"per-state Storm builder: {time_cell(base)}"
    judged.add(
        2,
        f"policy verification (MLP, every state) at {_power(target)} under {limit:g} s",
        row["target"],
        target,
        measured,
        versus,
        _done(ours) and ours["time_s"] < limit,
    )


def _compile_goals(judged: Goals, row: dict | None) -> None:
    """3: compile into Storm under 3 s, 5x faster than Storm's build of the compact model,
    with at most twice its peak memory."""
    if row is None:
        return
    ours, base, size = row["ours"], row["baseline"], row["target"]
    measured = time_cell(ours)
    if _done(ours):
        result = ours["result"]
        measured += (
            f" (read + parse {seconds(result['read_s'] + result['parse_s'])}, compile "
            f"{seconds(result['compile_s'])}, to_storm {seconds(result['to_storm_s'])})"
        )
    at = _power(GOAL_SIZE)
    judged.add(
        3,
        f"compile into Storm at {at} under 3 s",
        size,
        GOAL_SIZE,
        measured,
        met=_done(ours) and ours["time_s"] < 3.0,
    )
    faster = "compile into Storm at least 5x faster than Storm's parse + build of the compact model"
    memory = "compile into Storm with peak memory within 2x of Storm's build of the compact model"
    if not (_done(ours) and _done(base)):
        for goal in (faster, memory):
            judged.add(3, goal, size, GOAL_SIZE, time_cell(ours), f"Storm: {time_cell(base)}")
        return
    factor = base["time_s"] / ours["time_s"]
    judged.add(
        3,
        faster,
        size,
        GOAL_SIZE,
        f"{seconds(ours['time_s'])} against {seconds(base['time_s'])}",
        f"Storm / ours = {ratio(factor)}",
        factor >= 5.0,
    )
    factor = ours["peak_rss_mb"] / base["peak_rss_mb"]
    judged.add(
        3,
        memory,
        size,
        GOAL_SIZE,
        f"{ours['peak_rss_mb']:.0f} MiB against {base['peak_rss_mb']:.0f} MiB",
        f"ours / Storm = {ratio(factor)}",
        factor <= 2.0,
    )


def _check_goal(judged: Goals, row: dict | None) -> None:
    """4: `verify check` within 1.5x of Storm alone on the compact model."""
    if row is None:
        return
    ours, storm, size = row["ours"], row["baseline"], row["target"]
    goal = (
        f"`verify check` of `{CHECK_PROPERTY}` at {_power(GOAL_SIZE)} within 1.5x of Storm "
        "alone (parse + build + check of the compact model)"
    )
    if not (_done(ours) and _done(storm)):
        judged.add(4, goal, size, GOAL_SIZE, time_cell(ours), f"Storm: {time_cell(storm)}")
        return
    factor = ours["time_s"] / storm["time_s"]
    judged.add(
        4,
        goal,
        size,
        GOAL_SIZE,
        f"{seconds(ours['time_s'])} against {seconds(storm['time_s'])}",
        f"ours / Storm = {ratio(factor)}",
        factor <= 1.5,
    )


def _chain_goals(judged: Goals, chains: list[dict]) -> None:
    """5: on the slowly mixing chains, every value inside its bounds, ours at most 1e-9 wide,
    100x faster than Storm's sound engine."""
    pairs = [(t, c) for t in CHAIN_TARGETS for c in chains if c["target"] == t]
    if not pairs and chains:  # a small run: shown at its largest chain, not judged
        largest = max(chains, key=lambda c: c["target"])
        pairs = [(CHAIN_TARGETS[0], largest)]
    for target, chain in pairs:
        ours, sound, size = chain["ours"], chain["sound"], chain["target"]
        found = chain["agreement"] or {}
        states = f", {ours['result']['states']:,} states" if _done(ours) and size == target else ""
        where = f"at ~{target:,}{states}"
        facts = [
            f"ours in our bounds: {_yes(found.get('ours_inside_ours'))}",
            f"Storm's value in its bounds: {_yes(found.get('storm_inside_storm'))}",
            f"exact value in our bounds: {_yes(found.get('exact_inside_ours'))}",
            f"exact value in Storm's bounds: {_yes(found.get('exact_inside_storm'))}",
            f"Storm's value in our bounds: {_yes(found.get('storm_inside_ours'))}",
        ]
        own = ("ours_inside_ours", "storm_inside_storm", "exact_inside_ours", "exact_inside_storm")
        judged.add(
            5,
            f"slowly mixing chain {where}: every value inside its bounds",
            size,
            target,
            "; ".join(facts),
            "",
            found.get("ours_inside_ours") is True and all(found.get(k) is not False for k in own),
        )
        if not _done(ours):
            continue
        width = ours["result"]["width"]
        judged.add(
            5,
            f"slowly mixing chain {where}: our bounds at most 1e-9 wide",
            size,
            target,
            f"{width:.1e}",
            met=width <= 1e-9,
        )
        if _done(sound):
            factor = sound["time_s"] / ours["time_s"]
            versus, met = f"Storm / ours = {ratio(factor)}", factor >= 100
        elif sound["status"] == "timeout":
            factor = sound["seconds"] / ours["time_s"]
            versus, met = f"Storm / ours > {ratio(factor)}", factor >= 100
        else:
            versus, met = f"Storm: {time_cell(sound)}", None
        judged.add(
            5,
            f"slowly mixing chain {where}: at least 100x faster than Storm's sound engine",
            size,
            target,
            f"{seconds(ours['time_s'])} against {time_cell(sound)}",
            versus,
            met,
        )


def _memory_goal(judged: Goals, row: dict | None, label: str) -> None:
    """6: every command's peak memory at 10^6 under 2 GB."""
    if row is None:
        return
    ours, base = row["ours"], row["baseline"]
    rss = ours.get("peak_rss_mb")
    versus = ""
    if row["pipeline"] in ("compile", "check") and base.get("peak_rss_mb"):
        versus = f"Storm's job: {base['peak_rss_mb']:.0f} MiB"
    judged.add(
        6,
        f"peak memory of {label} at {_power(GOAL_SIZE)} under 2 GB (2 * 10^9 bytes)",
        row["target"],
        GOAL_SIZE,
        f"{rss:.0f} MiB = {rss * 2**20 / 1e9:.2f} GB" if rss else time_cell(ours),
        versus,
        bool(rss) and rss < MEMORY_LIMIT_MIB,
    )


def _load_range(loads: list) -> str:
    known = [x for x in loads if x is not None]
    return f"{min(known):.2f} to {max(known):.2f}" if known else "not recorded"


def _yes(value) -> str:
    return {True: "yes", False: "**no**", None: "not run"}[value]


# ----------------------------------------------------------------------------- report


def states_of(row: dict) -> int | None:
    """The row's model size: from whichever job finished."""
    for role in ROLES:
        if row.get(role, {}).get("status") == "done":
            return row[role]["result"]["states"]
    return None


def time_cell(record: dict) -> str:
    if record["status"] == "done":
        return seconds(record["time_s"])
    if record["status"] == "timeout":
        return f"timeout (> {record['seconds']:g} s)"
    if record["status"] == "not tried":
        return "not tried"
    return f"{record['status']}: {record['message'].split(':')[0]}"  # the JSON has the rest


def rss_cell(record: dict) -> str:
    return f"{record['peak_rss_mb']:.0f} MiB" if record.get("peak_rss_mb") else ""


def agreement_cell(found: dict | None) -> str:
    if found is None:
        return ""
    text = "yes" if found["agree"] else "**NO**"
    if not found["same_states"]:
        text += f" (states {found['states'][0]:,} vs {found['states'][1]:,})"
    if "max_abs_diff" in found:
        difference = found["max_abs_diff"]
        text += f", Δ {difference:.0e}" if difference else ", Δ 0"
    return text


def goals_table(document: dict) -> str:
    lines = ["| goal | measured | ratio | met |", "|---|---|---|---|"]
    for goal in document["goals"]:
        met = {True: "yes", False: "**no**", None: "not judged"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {goal['measured']} | {goal['ratio']} | {met} |")
    return "\n".join(lines) + "\n"


def table(document: dict) -> str:
    """The markdown table: a line per pipeline and size, two for a reward (its verdict, which
    Storm cannot compute, and the optimum on the non-negative reward against Storm)."""
    lines = [
        "| pipeline | size | states | ours | ours peak RSS | baseline | baseline peak RSS "
        "| baseline / ours | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in document["rows"]:
        states = states_of(row)
        start = f"| {row['label']} | {_power(row['target'])} | {f'{states:,}' if states else ''} "
        ratio_text = ratio(row["ratio"]) if "ratio" in row else ""
        agree = agreement_cell(row["agreement"])
        if row["pipeline"] == "reward":
            ours = row["ours"]
            lines.append(
                f"{start.replace(row['label'], row['label'] + ' verdict', 1)}"
                f"| {time_cell(ours)} | {rss_cell(ours)} | none (mixed signs) | | | |"
            )
            ours = row["solver"]
            start = start.replace(row["label"], row["label"] + " optimum", 1)
        else:
            ours = row["ours"]
        base = row["baseline"]
        lines.append(
            f"{start}| {time_cell(ours)} | {rss_cell(ours)} | {time_cell(base)} "
            f"| {rss_cell(base)} | {ratio_text} | {agree} |"
        )
    return "\n".join(lines) + "\n"


def _pair(counts: list[int]) -> str:
    ours, theirs = counts
    return f"{ours:,}" if ours == theirs else f"{ours:,} / {theirs:,} **differ**"


def _values(pair: list) -> str:
    return " / ".join("-" if x is None else f"{x:.10g}" for x in pair)


def same_mdp_table(document: dict) -> str:
    lines = [
        "| size | states | choices | transitions | same MDP (matched by position) "
        "| Pmax at s0, ours / compact | max Δ Pmax | Rmin at s0, ours / compact | max Δ Rmin "
        "| agree |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for record in document["same_mdp"]:
        size = _power(record["target"])
        if record["status"] != "done":
            lines.append(f"| {size} | {time_cell(record)} |" + " |" * 8)
            continue
        r = record["result"]

        structure = "yes" if r["same_structure"] else "**no**"
        structure += f", probabilities Δ {r['max_probability_diff']:.0e}"
        lines.append(
            f"| {size} | {_pair(r['states'])} | {_pair(r['choices'])} | {_pair(r['transitions'])} "
            f"| {structure} | {_values(r['pmax_initial'])} "
            f"| {r.get('pmax_diff_all', math.inf):.0e} "
            f"| {_values(r['rmin_initial'])} "
            f"| {r.get('rmin_diff_all', math.inf):.0e} | {'yes' if record['agree'] else '**NO**'} |"
        )
    return "\n".join(lines) + "\n"


def chains_table(document: dict) -> str:
    """Two tables: the times, and the values at the start state with the checks over all
    states."""
    times = [
        "| maze | lava | states | ours: induced chain | ours: solve | Storm sound: to_storm "
        "| Storm sound: check | Storm exact: build | Storm exact: check | Storm sound / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    values = [
        "| maze | lava | ours at s0 [lower, upper] | our widest bounds | Storm sound at s0 "
        "[lower, upper] | exact at s0 | ours in ours | Storm in Storm's | Storm in ours "
        "| ours in Storm's | exact in ours | exact in Storm's |",
        "|---|---:|---|---:|---|---|---|---|---|---|---|---|",
    ]
    for chain in document["chains"]:
        ours, sound, exact = chain["ours"], chain["sound"], chain["exact"]
        name = f"{chain['maze']} (~{chain['target']:,})"
        states = f"{ours['result']['states']:,}" if _done(ours) else ""

        def part(record, key):
            return seconds(record["result"][key]) if _done(record) else time_cell(record)

        if _done(sound):
            versus = ratio(chain["ratio"]) if "ratio" in chain else ""
        elif sound["status"] == "timeout" and _done(ours):
            versus = f"> {ratio(sound['seconds'] / ours['time_s'])}"
        else:
            versus = ""
        times.append(
            f"| {name} | {chain['lava']} | {states} | {part(ours, 'induced_chain_s')} "
            f"| {part(ours, 'solve_s')} | {part(sound, 'to_storm_s')} | {part(sound, 'check_s')} "
            f"| {part(exact, 'build_s')} | {part(exact, 'check_s')} | {versus} |"
        )

        def interval(record):
            if not _done(record):
                return time_cell(record)
            r = record["result"]
            return f"{r['value']:.12g} [{r['lower']:.12g}, {r['upper']:.12g}]"

        found = chain["agreement"] or {}
        exact_text = (
            f"{exact['result']['value']:.12g} = {exact['result']['fraction']}"
            if _done(exact)
            else time_cell(exact)
        )
        checks = " | ".join(
            _yes(found.get(key))
            for key in (
                "ours_inside_ours",
                "storm_inside_storm",
                "storm_inside_ours",
                "ours_inside_storm",
                "exact_inside_ours",
                "exact_inside_storm",
            )
        )
        width = f"{ours['result']['width']:.1e}" if _done(ours) else ""
        values.append(
            f"| {name} | {chain['lava']} | {interval(ours)} | {width} | {interval(sound)} "
            f"| {exact_text} | {checks} |"
        )
    return "\n".join(times) + "\n\n" + "\n".join(values) + "\n"


def markdown(document: dict) -> str:
    """performance.md: the machine, how it was measured, the goals and the tables."""
    meta, settings = document["meta"], document["meta"]["settings"]
    largest = max(settings["sizes"], default=0)
    largest_loads = [
        row[role].get("load_1min")
        for row in document["rows"]
        if row["target"] == largest
        for role in ROLES
        if role in row and not (role == "ours" and "shares" in row)
    ]
    load = "/".join(f"{x:.2f}" for x in meta["load_average_start"])
    load_end = "/".join(f"{x:.2f}" for x in meta["load_average_end"])
    lines = [
        "# Performance suite",
        "",
        f"- {meta['date']}; verifier at commit {meta['verifier_commit']}"
        + (" with uncommitted changes in verifier/" if meta["verifier_uncommitted"] else ""),
        f"- {meta['cpu_model'] or meta['processor']}, {meta['cpu_count']} cpus; python "
        f"{meta['python']}, stormpy {meta['stormpy']}, numpy {meta['numpy']}, scipy "
        f"{meta['scipy']}, torch {meta['torch']}",
        f"- load average (1/5/15 min) at start {load}, at end {load_end}; the machine is "
        "shared, so other work skews the times",
        f"- every measurement a `verifier.runner` job in a fresh process, {settings['workers']} "
        f"at a time, killed after {settings['timeout_s']:g} s (the per-state baselines, on the "
        f"export and the policy's: {settings['baseline_timeout_s']:g} s; Storm on the chains: "
        f"{settings['chain_timeout_s']:g} s); after a timeout, larger sizes of that series are "
        "not tried",
        f"- 1-minute load average as each job at {_power(largest)} ended: "
        f"{_load_range(largest_loads)} (the job itself counts 1)",
        f"- mazes: `{settings['maze']}`; chains: `{settings['chain_maze']}`, the uniformly "
        f"random policy; total wall time {meta['total_wall_s']:.0f} s",
        "",
        "## Goals (issue 12)",
        "",
        GOALS_LEGEND,
        "",
        goals_table(document),
        "## Pipelines",
        "",
        LEGEND,
        "",
        table(document),
        "## The compact PRISM model is our MDP",
        "",
        SAME_MDP_LEGEND,
        "",
        same_mdp_table(document),
        "## Slowly mixing chains",
        "",
        CHAINS_LEGEND,
        "",
        chains_table(document),
    ]
    if document["disagreements"]:
        lines += ["**Disagreements:**", "", *(f"- {p}" for p in document["disagreements"]), ""]
    return "\n".join(lines)


GOALS_LEGEND = """\
Each goal at its size (10^6 unless it says otherwise); a goal whose size was not run is
shown at the largest size run and not judged. Ratios are against the baseline measured in
the same run. "Storm alone" is what a Storm user runs to answer `Pmax=? [ F "exit" ]`:
parse the compact PRISM model `benchmarks/open_room.prism` (two variables, four guarded
commands) and the property, build the model for the property, check it with the sound engine
(`stormpy.environments.sound()`, the engine our check uses too); "Storm's check alone" is the
last step only, on the model already built. Peak memory is the job process's (python, numpy,
scipy and stormpy included, on both sides). The chain goals are judged on the mazes with two
lava dead ends: without lava every state reaches the exit with probability 1, which graph
search decides on both sides (rows "no lava" below)."""

LEGEND = """\
Times are the pipeline's steps as timed inside the job, imports excluded (the JSON also keeps
each job's whole wall time, `seconds`, and the load average as it ended); peak RSS is the job
process's, in MiB.

- *compile*: into Storm: read + `parse_maze` + `compile_maze` + `to_storm`, against Storm's
  parser and builder on the compact PRISM model (every label and the choices' actions, as
  `to_storm` hands over). *compile (export)*: the same of ours against Storm's `load_prism`
  + `build_prism` of the `to_prism` export, one command per cell and action (writing the
  export is not counted).
- *check*: `Pmax=? [ F "exit" ]`: `verifier.load_environments` + `verifier.check`, against Storm
  alone on the compact model (parse, build for the property, check). *check (export)*: the
  same of ours against Storm's parse, build for the property and check of the export.
- *reward γ verdict*: `verifier.load_environments` + `verifier.verify_reward` with step
  -0.01, exit +1. Storm has no engine for total rewards of mixed signs, so there is no
  baseline.
- *reward γ optimum*: V* of the non-negative reward exit +1, from the compiled MDP: our
  `solve` against Storm's `Rmax=? [ C ]` (γ=1) or `Rmax=? [ Cdiscount=0.99 ]`.
- *policy*: an MLP on valuations verified on every state (load, load_policy, decide,
  objective, classify; the imports and torch's are excluded), against Storm's builder asking
  the network state by state (to_prism, parse, build, check).
- *agree*: same states (policy: the states the policy reaches against those the baseline
  built; compile: also the choices and transitions) and values within 1e-6 (Δ: the largest
  difference; for rewards over all states)."""

SAME_MDP_LEGEND = """\
`benchmarks/open_room.prism` built by Storm (with its reward structure "steps", one per
choice outside the exit) against `compile_maze` of the same room through `to_storm` (with a
reward of 1 on every choice outside the exit): the compact model's states matched to ours by
position, then the choices of each state in order with their actions, the exit label, the
initial state and every transition probability compared (Δ: the largest difference), and
`Pmax=? [ F "exit" ]` and `Rmin=? [ F "exit" ]` (the least expected number of steps) by
Storm's sound engine on both, at every state (max Δ), shown at the initial state s0."""

CHAINS_LEGEND = """\
The uniformly random policy (each action of a state with probability 1/4) on a seeded
perfect maze with slip 0.25; `P=? [ !"lava" U "exit" ]` of its induced chain. Ours:
`reach.probabilities(chain, ~lava, exit, None)` (graph search, then a sparse LU solve with
iterative refinement and componentwise error bounds); the time is the solve (`induced_chain`
shown apart). Storm sound: `stormpy.model_checking` with `environments.sound()` on
`to_storm` of the same chain (the check timed). Storm exact: the chain rebuilt with rational
probabilities (each float64 probability is a sum of 1/4 x (3/4, 1/8, 1/8), exactly the
fraction it is) and `environments.exact()`. The "in" columns hold at every state: a value
inside an interval (the exact value compared exactly, through the two doubles around it)."""


def plot(document: dict, path: Path) -> None:
    """performance.png: time against states, log-log; ours solid, the baseline dashed in the
    same color; a timeout is an upward triangle at its timeout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str], list] = {}
    for row in document["rows"]:
        sides = [("ours", row["label"] + (" verdict" if row["pipeline"] == "reward" else ""))]
        if row["pipeline"] == "reward":
            sides.append(("solver", row["label"] + " optimum"))
        sides.append(("baseline", sides[-1][1]))
        if "shares" in row:  # ours is plotted with the row it shares
            sides = [("baseline", row["label"])]
        for role, name in sides:
            record = row[role]
            x = states_of(row) or row["target"]
            kind = "baseline" if role == "baseline" else "ours"
            if record["status"] in ("done", "timeout"):
                done = record["status"] == "done"
                value = record["time_s"] if done else record["seconds"]
                lines.setdefault((name, kind), []).append((x, value, done))
    names = list(dict.fromkeys(name for name, _ in lines))
    colors = {name: plt.cm.tab10(i % 10) for i, name in enumerate(names)}
    figure, axes = plt.subplots(figsize=(11, 6))
    timeouts = []
    for (name, kind), points in lines.items():
        style = "-" if kind == "ours" else "--"
        xs, ys = [x for x, _, done in points if done], [y for _, y, done in points if done]
        if xs:
            axes.plot(xs, ys, style, marker="o", color=colors[name], label=f"{name}, {kind}")
        timeouts += [(x, y, name) for x, y, done in points if not done]
    for x, y, name in timeouts:  # several at one size side by side
        same = [other for other in timeouts if other[0] == x]
        shift = 1.08 ** (same.index((x, y, name)) - (len(same) - 1) / 2)
        axes.plot(x * shift, y, "^", color=colors[name], markersize=10)
    axes.plot([], [], "^", color="grey", label="timeout (at the timeout)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("states")
    axes.set_ylabel("seconds")
    axes.set_title("ours (solid) against baselines (dashed)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes up to {QUICK_MAX:,} only")
    parser.add_argument("--max-states", type=int, default=10**6, help="largest size")
    parser.add_argument("--sizes", help="comma-separated sizes instead of 10^2 .. 10^6")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per job")
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=120.0,
        help="seconds per job of the per-state baselines (the export's, the policy's)",
    )
    parser.add_argument(
        "--chain-timeout", type=float, default=600.0, help="seconds per job of Storm on a chain"
    )
    parser.add_argument(
        "--chain-sizes",
        help="comma-separated chain sizes (default: 3500,100000 up to the largest size, else "
        "the smallest size)",
    )
    parser.add_argument("--workers", type=int, default=1, help="jobs at once on this machine")
    parser.add_argument("--scheduler", help="a Dask scheduler's address instead")
    parser.add_argument("--discounts", default="1,0.99", help="of the reward pipeline")
    parser.add_argument(
        "--scratch", help="directory for the mazes and job files (shared by Dask workers)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(TARGETS)
    limit = min(args.max_states, QUICK_MAX) if args.quick else args.max_states
    args.sizes = [s for s in sizes if s <= limit]
    args.discounts = [float(d) for d in args.discounts.split(",")]
    if args.chain_sizes:
        args.chain_sizes = [int(s) for s in args.chain_sizes.split(",")]
    else:
        largest = max(args.sizes, default=0)
        args.chain_sizes = [s for s in CHAIN_TARGETS if s <= largest] or args.sizes[:1]

    document = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "performance.json").write_text(
        json.dumps(document, indent=2) + "\n", encoding="utf-8"
    )
    text = markdown(document)
    (args.out / "performance.md").write_text(text, encoding="utf-8")
    plot(document, args.out / "performance.png")
    print(text)
    print(f"wrote performance.json, .md and .png to {args.out}", file=sys.stderr)
    for problem in document["disagreements"]:
        print(f"DISAGREEMENT: {problem}", file=sys.stderr)
    return 1 if document["disagreements"] else 0


if __name__ == "__main__":
    sys.exit(main())

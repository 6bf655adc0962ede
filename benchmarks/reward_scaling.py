"""Scaling of the reward check (`verify reward`), with Storm as a cross-check where it can answer.

For open rooms and random perfect mazes of about 10^3 .. 10^6 states (slip 0.1), one run
measures:

  (a) the check:  `verifier.load_environments(maze.toml)`, the reward vector of
                  "step -0.01, arrive exit +1" (`verifier.spec.reward_file.reward_vector`), then
                  `reward_verdict.check_reward(env, reward, env.properties[0])`, with discount 1
                  and 0.99: total time, the split between `verifier.engine.optimum.solve` (policy
                  iteration) and the rest, policy-iteration iterations, peak RSS, the verdict
  (b) vs Storm:   on the non-negative reward "arrive exit +1, step 0", our `solve` against
                  Storm's `R{"r"}max=? [ C ]` (discount 1) and `R{"r"}max=? [ Cdiscount=0.99 ]`
                  (sparse engine, `environments.sound()`): both times and the largest difference
                  of the values, at the initial state and over all states. Storm's total reward
                  is never run with negative rewards (it is not implemented there and can hang).

Every measurement runs in its own fresh interpreter with a timeout, so the peak resident set
size (`getrusage(RUSAGE_SELF).ru_maxrss` read inside the worker) belongs to that run alone.
After a timeout, larger sizes of the same series are not tried.

    python benchmarks/reward_scaling.py                  # 10^3 .. 10^6, about 10 minutes
    python benchmarks/reward_scaling.py --quick          # up to 10^4, about a minute
    python benchmarks/reward_scaling.py --max-states 100000 --timeout 600

Writes benchmarks/results/reward_scaling.md and .json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from harness import peak_rss_mb, ratio, seconds, status, versions  # noqa: E402

TARGETS = (10**3, 10**4, 10**5, 10**6)
QUICK_MAX = 10**4
VARIANTS = ("open", "random")
DISCOUNTS = (1.0, 0.99)
SLIP = 0.1
SEED = 0
STEP, EXIT_BONUS = -0.01, 1.0
GOAL_SECONDS = 60.0
STORM_PROPERTIES = {1.0: 'R{"r"}max=? [ C ]', 0.99: 'R{"r"}max=? [ Cdiscount=0.99 ]'}


# ----------------------------------------------------------------------------- mazes


def maze_for(variant: str, target: int):
    """open: an open room of side round(sqrt(target)) (every inside cell a state, S top-left,
    blue exit bottom-right). random: `random_maze(n, n, SEED, objects=2, lava=2)`, n the odd
    number nearest sqrt(2 * target): about half the cells of a perfect maze are floor."""
    from verifier.inputs import maze_generate as generate

    if variant == "open":
        side = max(round(math.sqrt(target)), 2)
        return generate.open_room(side + 2, side + 2, slip=SLIP)
    side = round(math.sqrt(2 * target))
    side += side % 2 == 0
    return generate.random_maze(side, side, SEED, objects=2, lava=2, slip=SLIP)


# ----------------------------------------------------------------------------- workers


class Timers:
    """Wraps module functions to add up the wall time and count the calls of each."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.last: dict[str, object] = {}

    def wrap(self, module, attribute: str, name: str | None = None) -> None:
        name = name or attribute
        original = getattr(module, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1
            self.last[name] = result
            return result

        setattr(module, attribute, timed)


def worker_check(path: str, discount: float) -> dict:
    """(a): TOML file -> environment -> reward vector -> `check_reward`, in this process."""
    start = time.perf_counter()
    import numpy as np

    import verifier.analyses.reward_verdict
    import verifier.engine.query
    import verifier.inputs.load
    import verifier.storm
    from verifier import load_environments
    from verifier.spec.reward_file import Reward, reward_vector

    imports_s = time.perf_counter() - start
    rss_start = peak_rss_mb()

    start = time.perf_counter()
    (env,) = load_environments(path)
    load_s = time.perf_counter() - start
    rss_load = peak_rss_mb()
    start = time.perf_counter()
    reward = reward_vector(env.mdp, Reward("exit", "bench", discount, STEP, {"exit": EXIT_BONUS}))
    reward_s = time.perf_counter() - start

    timers = Timers()
    timers.wrap(verifier.engine.query, "solve")
    timers.wrap(verifier.analyses.reward_verdict, "resolve_intended")
    timers.wrap(verifier.storm, "until")
    timers.wrap(verifier.storm, "check")
    timers.wrap(verifier.storm, "to_storm")
    start = time.perf_counter()
    report = verifier.analyses.reward_verdict.check_reward(env, reward, env.properties[0])
    check_s = time.perf_counter() - start
    solution = timers.last["solve"]
    mdp = env.mdp
    return {
        "states": mdp.n_states,
        "choices": mdp.n_choices,
        "transitions": mdp.n_transitions,
        "imports_s": imports_s,
        "load_s": load_s,
        "reward_s": reward_s,
        "check_s": check_s,
        "solve_s": timers.seconds["solve"],
        "rest_s": check_s - timers.seconds["solve"],
        "total_s": load_s + reward_s + check_s,
        "parts_s": timers.seconds,
        "parts_calls": timers.calls,
        "iterations": solution.iterations,
        "residual": solution.residual,
        "gap": solution.gap,
        "verdict": report.verdict,
        "optimal_return": report.optimal_return,
        "objective_min": report.objective_min,
        "objective_max": report.objective_max,
        "objective_optimum": report.optimal_value,
        "initial_value": float(np.min(solution.values[mdp.initial_states])),
        "rss_start_mb": rss_start,
        "rss_load_mb": rss_load,
        "rss_peak_mb": peak_rss_mb(),
    }


def _nonnegative_model(path: str, discount: float):
    """The maze's MDP (parse + compile only) and the reward "arrive exit +1, step 0"."""
    from verifier.inputs.maze import load_maze
    from verifier.inputs.maze_compile import compile_maze
    from verifier.spec.reward_file import Reward, reward_vector

    mdp = compile_maze(load_maze(path))
    return mdp, reward_vector(mdp, Reward("exit", "bench", discount, 0.0, {"exit": EXIT_BONUS}))


def worker_ours_nonnegative(path: str, discount: float, values_path: str) -> dict:
    """(b), our side: `solve` on the non-negative reward; the values go to `values_path`."""
    import numpy as np

    from verifier.engine.optimum import solve

    mdp, reward = _nonnegative_model(path, discount)
    start = time.perf_counter()
    solution = solve(mdp, reward.values, discount)
    solve_s = time.perf_counter() - start
    np.save(values_path, solution.values)
    return {
        "states": mdp.n_states,
        "solve_s": solve_s,
        "iterations": solution.iterations,
        "initial_value": float(solution.values[mdp.initial_states].min()),
        "rss_peak_mb": peak_rss_mb(),
    }


def worker_storm(path: str, discount: float, values_path: str) -> dict:
    """(b), Storm's side: the same reward as a Storm reward model, `Rmax=? [ C ]` (or
    `Cdiscount`) by the sparse engine with sound numerics; the values go to `values_path`."""
    import dataclasses

    import numpy as np
    import stormpy

    from verifier import storm

    mdp, reward = _nonnegative_model(path, discount)
    assert (reward.values >= 0).all(), "Storm's total reward must not see negative rewards"
    start = time.perf_counter()
    model = storm.to_storm(dataclasses.replace(mdp, rewards={"r": reward.values}))
    to_storm_s = time.perf_counter() - start
    formula = stormpy.parse_properties(STORM_PROPERTIES[discount])[0].get_raw_formula()
    start = time.perf_counter()
    result = stormpy.model_checking(
        model, formula, only_initial_states=False, environment=stormpy.environments.sound()
    )
    check_s = time.perf_counter() - start
    values = np.asarray(result.get_value_vector(), dtype=np.float64)
    np.save(values_path, values)
    return {
        "states": model.nr_states,
        "property": STORM_PROPERTIES[discount],
        "to_storm_s": to_storm_s,
        "check_s": check_s,
        "initial_value": float(values[mdp.initial_states].min()),
        "rss_peak_mb": peak_rss_mb(),
    }


run_worker = partial(harness.run_worker, __file__)


# ----------------------------------------------------------------------------- report


def maze_name(variant: str, target: int) -> str:
    return f"{variant} 10^{round(math.log10(target))}"


def render(meta: dict, rows: list[dict], args) -> str:
    out = [
        "# Reward check: scaling",
        "",
        f"- date: {meta['date']}; verifier at commit {meta['verifier_commit']}"
        + (" with uncommitted changes in verifier/" if meta["verifier_uncommitted"] else ""),
        f"- processor: /proc/cpuinfo model name: {meta['cpu_model'] or '?'}; {meta['machine']}; "
        f"cpu count {meta['cpu_count']}",
        f"- python {meta['python']}, stormpy {meta['stormpy']}, numpy {meta['numpy']}, "
        f"scipy {meta['scipy']} ({meta['platform']})",
        f"- mazes: `open` = `open_room(n + 2, n + 2, slip={SLIP})`, n = round(sqrt(target)); "
        f"`random` = `random_maze(n, n, seed={SEED}, objects=2, lava=2, slip={SLIP})`, n the odd "
        "number nearest sqrt(2 target); each written with `maze_to_toml` to a temporary file",
        f"- reward for the check: step {STEP}, arrive exit +{EXIT_BONUS:g} "
        '(`Reward("exit", "bench", discount, -0.01, {"exit": 1.0})`); objective: the maze\'s '
        'default `Pmax=? [ !"lava" U "exit" ]`',
        f"- each run in a fresh subprocess, killed after {args.timeout:g} s (the check), "
        f"{args.compare_timeout:g} s (our solver in the Storm comparison) or "
        f"{args.storm_timeout:g} s (Storm); after a timeout, larger sizes of that series are not "
        "tried. Times are wall clock, one run each.",
        f"- load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']} "
        "(other work on the machine skews times)",
        "- peak RSS: `getrusage(RUSAGE_SELF).ru_maxrss` inside the worker (python + numpy + "
        "scipy + Storm, model included)",
        "",
        "## The reward check: `load_environment` -> `reward_vector` -> `check_reward`",
        "",
        "load = `load_environment` (parse, compile, `to_storm`); solve = `optimum.solve` "
        "(policy iteration); rest = the remainder of `check_reward` (objective, Storm on the "
        "MDP of optimal actions, witness); total = load + reward vector + check, from the TOML "
        f'file to the verdict; "< {GOAL_SECONDS:g} s" compares total + imports with the '
        "one-minute goal. V*(s0): optimal return at the initial state; P(φ): least and greatest "
        "probability of the objective over the optimal policies.",
        "",
        "| maze | states | transitions | γ | load | solve | PI iterations | rest | total "
        f"| < {GOAL_SECONDS:g} s | peak RSS | verdict | V*(s0) | P(φ) min / max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---|---:|---:|",
    ]
    for row in rows:
        for discount in meta["discounts"]:
            record = row["check"].get(str(discount))
            name = maze_name(row["variant"], row["target"])
            note = status(record)
            if note:
                out.append(f"| {name} | ~{row['target']:,} | | {discount:g} | {note} |" + " |" * 10)
                continue
            end_to_end = record["total_s"] + record["imports_s"]
            out.append(
                f"| {name} | {record['states']:,} | {record['transitions']:,} | {discount:g} "
                f"| {seconds(record['load_s'])} | {seconds(record['solve_s'])} "
                f"| {record['iterations']} | {seconds(record['rest_s'])} "
                f"| {seconds(record['total_s'])} | {'yes' if end_to_end < GOAL_SECONDS else 'no'} "
                f"| {record['rss_peak_mb']:.0f} MB | {record['verdict']} "
                f"| {record['optimal_return']:.6g} "
                f"| {record['objective_min']:.3g} / {record['objective_max']:.3g} |"
            )
    if not meta["storm"]:
        return "\n".join(out) + "\n"
    out += [
        "",
        "## Against Storm on a non-negative reward (arrive exit +1, step 0)",
        "",
        "ours = `verifier.engine.optimum.solve` (policy iteration, exact sparse LU); Storm = "
        "`stormpy.model_checking` of the property on `to_storm` of the same MDP with the reward "
        "as a choice reward model, sparse engine, `environments.sound()`. Both start from the "
        "compiled MDP (their model building is not timed). ratio = ours / Storm check (a lower "
        "bound where ours timed out). "
        "|Δ| = largest absolute difference of the values, at the initial state and over all "
        "states.",
        "",
        "| maze | states | γ | Storm property | ours solve | PI iterations | Storm to_storm "
        "| Storm check | ratio | V(s0) ours | V(s0) Storm | max abs Δ s0 | max abs Δ all |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for discount in meta["discounts"]:
            ours = row["ours_nonnegative"].get(str(discount))
            theirs = row["storm"].get(str(discount))
            name = maze_name(row["variant"], row["target"])
            cells = [name]
            states = (ours or {}).get("states") or (theirs or {}).get("states")
            cells.append(f"{states:,}" if states else f"~{row['target']:,}")
            cells += [f"{discount:g}", f"`{STORM_PROPERTIES[discount]}`"]
            ours_note, storm_note = status(ours), status(theirs)
            cells += (
                [ours_note, ""]
                if ours_note
                else [seconds(ours["solve_s"]), str(ours["iterations"])]
            )
            cells += (
                [storm_note, ""]
                if storm_note
                else [seconds(theirs["to_storm_s"]), seconds(theirs["check_s"])]
            )
            compare = row["compare"].get(str(discount))
            if compare:
                cells.append(ratio(ours["solve_s"] / max(theirs["check_s"], 1e-9)))
            elif ours and "timeout" in ours and storm_note is None:
                cells.append("> " + ratio(ours["timeout"] / max(theirs["check_s"], 1e-9)))
            else:
                cells.append("")
            cells.append(f"{ours['initial_value']:.12g}" if not ours_note else "")
            cells.append(f"{theirs['initial_value']:.12g}" if not storm_note else "")
            if compare:
                cells += [f"{compare['initial_abs_diff']:.1e}", f"{compare['all_abs_diff']:.1e}"]
            else:
                cells += ["", ""]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-states", type=int, default=1_000_000, help="largest target size")
    parser.add_argument("--quick", action="store_true", help=f"sizes up to {QUICK_MAX:,} only")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per run of the reward check"
    )
    parser.add_argument(
        "--compare-timeout",
        type=float,
        default=60.0,
        help="seconds per run of our solver on the non-negative reward (the Storm comparison)",
    )
    parser.add_argument(
        "--storm-timeout", type=float, default=120.0, help="seconds per Storm baseline run"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument(
        "--discounts", default=",".join(f"{d:g}" for d in DISCOUNTS), help="comma-separated"
    )
    parser.add_argument("--no-storm", action="store_true", help="skip the comparison with Storm")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument("--name", default="reward_scaling", help="results file name (no suffix)")
    parser.add_argument(
        "--worker", choices=("check", "ours_nonnegative", "storm"), help=argparse.SUPPRESS
    )
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--discount", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--values", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "check":
        print(json.dumps(worker_check(args.path, args.discount)))
        return 0
    if args.worker == "ours_nonnegative":
        print(json.dumps(worker_ours_nonnegative(args.path, args.discount, args.values)))
        return 0
    if args.worker == "storm":
        print(json.dumps(worker_storm(args.path, args.discount, args.values)))
        return 0

    import numpy as np

    from verifier.inputs.maze_generate import maze_to_toml

    limit = min(args.max_states, QUICK_MAX) if args.quick else args.max_states
    targets = [t for t in TARGETS if t <= limit]
    variants = [v for v in args.variants.split(",") if v]
    discounts = [float(d) for d in args.discounts.split(",") if d]
    for discount in discounts:
        if discount not in DISCOUNTS:
            parser.error(f"--discounts: {discount:g} is not one of {DISCOUNTS}")
    meta = versions()
    meta["discounts"] = discounts
    meta["storm"] = not args.no_storm
    meta["load_start"] = round(os.getloadavg()[0], 2)
    rows: list[dict] = []
    stopped: set[tuple] = set()
    wall = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - wall:6.1f} s] {message}", file=sys.stderr, flush=True)

    def series(kind: str, variant: str, discount: float, arguments: list[str], timeout: float):
        key = (kind, variant, discount)
        if key in stopped:
            return None
        log(f"{variant} ~{target:,} states, discount {discount:g}: {kind}")
        record = run_worker(kind, arguments, timeout)
        if "timeout" in record or "error" in record:
            stopped.add(key)
        return record

    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            for variant in variants:
                start = time.perf_counter()
                maze = maze_for(variant, target)
                path = Path(tmp) / f"{variant}-{target}.toml"
                path.write_text(maze_to_toml(maze), encoding="utf-8")
                row = {
                    "target": target,
                    "variant": variant,
                    "maze": maze.name,
                    "toml_bytes": path.stat().st_size,
                    "generate_s": time.perf_counter() - start,
                    "check": {},
                    "ours_nonnegative": {},
                    "storm": {},
                    "compare": {},
                }
                for discount in discounts:
                    arguments = ["--path", str(path), "--discount", repr(discount)]
                    row["check"][str(discount)] = series(
                        "check", variant, discount, arguments, args.timeout
                    )
                for discount in [] if args.no_storm else discounts:
                    ours_values = Path(tmp) / f"ours-{variant}-{target}-{discount}.npy"
                    storm_values = Path(tmp) / f"storm-{variant}-{target}-{discount}.npy"
                    base = ["--path", str(path), "--discount", repr(discount)]
                    ours = series(
                        "ours_nonnegative",
                        variant,
                        discount,
                        [*base, "--values", str(ours_values)],
                        args.compare_timeout,
                    )
                    theirs = series(
                        "storm",
                        variant,
                        discount,
                        [*base, "--values", str(storm_values)],
                        args.storm_timeout,
                    )
                    row["ours_nonnegative"][str(discount)] = ours
                    row["storm"][str(discount)] = theirs
                    if status(ours) is None and status(theirs) is None:
                        a, b = np.load(ours_values), np.load(storm_values)
                        assert a.shape == b.shape, (a.shape, b.shape)
                        row["compare"][str(discount)] = {
                            "initial_abs_diff": abs(
                                ours["initial_value"] - theirs["initial_value"]
                            ),
                            "all_abs_diff": float(np.abs(a - b).max()),
                        }
                        ours_values.unlink()
                        storm_values.unlink()
                rows.append(row)
                path.unlink()
    meta["total_wall_s"] = time.perf_counter() - wall
    meta["load_end"] = round(os.getloadavg()[0], 2)
    meta["timeout_s"] = args.timeout
    meta["compare_timeout_s"] = args.compare_timeout
    meta["storm_timeout_s"] = args.storm_timeout
    meta["reward"] = {"step": STEP, "arrive": {"exit": EXIT_BONUS}}
    meta["storm_properties"] = STORM_PROPERTIES
    meta["peak_rss_method"] = "getrusage(RUSAGE_SELF).ru_maxrss inside a fresh worker process"

    table = render(meta, rows, args)
    table += f"\nTotal wall time of this run: {meta['total_wall_s']:.0f} s.\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(table, encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out / args.name}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

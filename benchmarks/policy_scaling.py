"""Scaling of learned-policy verification (`verify POLICY --model MAZE.toml`), against the
per-state incremental route of existing tools (COOL-MC: Storm's callback builder).

The policy is a small MLP (valuation observation: 8 inputs -> 64 hidden (ReLU) -> 4 logits for
up, down, left, right), random weights from `torch.manual_seed(0)`, saved as TorchScript with
its `verifier.json` metadata. On open rooms and random perfect mazes of about 10^2 .. 10^6
states (slip 0.1) one run measures:

  (a) ours:         `verifier.load_environments`, `verifier.load_policy`, `decide`
                    (verifier.policy.load)
                    (the network on every state, in batches), `resolve_objective` and
                    `policy_verdict.classify` (the induced chain checked by Storm, and, when
                    the policy fails, the goal analysis), each timed, with peak RSS
  (b) the CLI:      `python -m verifier.cli POLICY --model MAZE.toml --json FILE` (the `verify`
                    console script's code path) end to end in a subprocess: wall time, exit
                    code, peak RSS of that process
  (c) incremental:  `maze_compile.to_prism(maze)` written to a file, Storm's PRISM parser,
                    then `stormpy.developer.make_explicit_model_builder(program, options,
                    StateValuationFunctionMask(f))` where f(valuation, action_index) runs the
                    network on that one state's valuation (cached per state; the cache lookups
                    and network runs count) and keeps only the chosen action; then
                    `Pmax=? [ !"lava" U "exit" ]` on the built model (an MDP with one choice per
                    state, so Pmax is the policy's probability; Storm refuses `P=?` on an MDP).
                    In a subprocess with a timeout; after a timeout, larger sizes are not tried.

Where (a) and (c) both finish, the script asserts that they give the same value at the initial
state and that (c) explored exactly the states the policy reaches in (a)'s induced chain.

    python benchmarks/policy_scaling.py                 # 10^2 .. 10^6, about 8 minutes
    python benchmarks/policy_scaling.py --quick         # up to 10^4
    python benchmarks/policy_scaling.py --max-states 100000 --baseline-timeout 600

Writes benchmarks/results/policy_scaling.md and .json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
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
from harness import clock, peak_rss_mb, ratio, seconds, status, versions  # noqa: E402

TARGETS = (10**2, 10**3, 10**4, 10**5, 10**6)
QUICK_MAX = 10**4
VARIANTS = ("open", "random")
SLIP = 0.1
MAZE_SEED = 0
# Seed 2: among seeds 0..15, the first whose network reaches most of the open room (97% and
# 96% of the states at 10^3 and 10^4; most seeds push into a wall near the start and reach
# 1-13%). The incremental route explores only the states the policy reaches, so a policy stuck
# at the start would flatter it. In random mazes every seed tried gets stuck near the start.
NET_SEED = 2
ACTIONS = ("up", "down", "left", "right")
METADATA = {"observation": "valuation", "actions": list(ACTIONS), "output": "logits"}
BASELINE_PROPERTY = 'Pmax=? [ !"lava" U "exit" ]'
GOAL_SECONDS = 60.0
# Both routes use Storm's sound engine; its relative precision is 1e-6.
VALUE_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- inputs


def maze_for(variant: str, target: int):
    """open: an open room of side round(sqrt(target)); random: `random_maze(n, n, 0,
    objects=2, lava=2)`, n the odd number nearest sqrt(2 * target) (about half the cells of a
    perfect maze are floor). Same mazes as benchmarks/reward_scaling.py."""
    from verifier.inputs import maze_generate as generate

    if variant == "open":
        side = max(round(math.sqrt(target)), 2)
        return generate.open_room(side + 2, side + 2, slip=SLIP)
    side = round(math.sqrt(2 * target))
    side += side % 2 == 0
    return generate.random_maze(side, side, MAZE_SEED, objects=2, lava=2, slip=SLIP)


def write_policy(path: Path) -> None:
    """The MLP with seeded random weights, as TorchScript with `verifier.json`."""
    import torch

    torch.manual_seed(NET_SEED)
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    torch.jit.save(
        torch.jit.script(net), str(path), _extra_files={"verifier.json": json.dumps(METADATA)}
    )


# ----------------------------------------------------------------------------- workers


class Timers:
    """Wraps module functions to add up the wall time and count the calls of each."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, module, attribute: str, name: str | None = None) -> None:
        name = name or attribute
        original = getattr(module, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(module, attribute, timed)


def worker_ours(maze_path: str, policy_path: str) -> dict:
    """(a) in this process: every step of `verify POLICY --model MAZE` through the library."""
    start = time.perf_counter()
    import verifier.analyses.policy_verdict
    import verifier.inputs.load
    import verifier.policy.live
    import verifier.storm
    import verifier.storm.model_checking
    from verifier import load_environments, load_policy
    from verifier.policy.decide import decide, induced_chain
    from verifier.spec.objective import resolve_objective

    imports_s = time.perf_counter() - start
    _, torch_import_s = clock(lambda: __import__("torch"))
    import torch

    rss_start = peak_rss_mb()
    (env,), load_s = clock(lambda: load_environments(maze_path))
    policy, load_policy_s = clock(lambda: load_policy(policy_path))
    decisions, decide_s = clock(lambda: decide(policy, env))
    objective, objective_s = clock(lambda: resolve_objective(env, env.properties[0]))
    timers = Timers()
    timers.wrap(verifier.storm, "to_storm")
    timers.wrap(verifier.storm, "until")
    timers.wrap(verifier.storm.model_checking, "_model_check")
    timers.wrap(verifier.analyses.policy_verdict, "goals")
    report, classify_s = clock(
        lambda: verifier.analyses.policy_verdict.classify(
            env, policy_path, decisions, env.properties[0]
        )
    )
    rss_peak = peak_rss_mb()

    # Not part of the pipeline: the states the policy reaches (for the cross-check with the
    # incremental route) and `decide` again with one torch thread.
    reachable = int(
        verifier.analyses.policy_verdict._reachable(induced_chain(env.mdp, decisions)).sum()
    )
    threads = torch.get_num_threads()
    again, decide_warm_s = clock(lambda: decide(policy, env))
    torch.set_num_threads(1)
    once_more, decide_one_thread_s = clock(lambda: decide(policy, env))
    for other in (again, once_more):
        assert (other.choice_probs == decisions.choice_probs).all()
    mdp = env.mdp
    return {
        "states": mdp.n_states,
        "choices": mdp.n_choices,
        "transitions": mdp.n_transitions,
        "imports_s": imports_s,
        "torch_import_s": torch_import_s,
        "load_s": load_s,
        "load_policy_s": load_policy_s,
        "decide_s": decide_s,
        "objective_s": objective_s,
        "classify_s": classify_s,
        "total_s": load_s + load_policy_s + decide_s + objective_s + classify_s,
        "classify_parts_s": timers.seconds,
        "classify_parts_calls": timers.calls,
        "torch_threads": threads,
        "decide_warm_s": decide_warm_s,
        "decide_one_thread_s": decide_one_thread_s,
        "verdict": report.verdict,
        "value": report.value,
        "value_bounds": list(report.value_bounds),
        "optimal_value": report.optimal_value,
        "pursued_goal": report.pursued_goal,
        "goals": [goal["goal"] for goal in report.goals],
        "masked_states": report.masked_states,
        "reachable_states": reachable,
        "rss_start_mb": rss_start,
        "rss_peak_mb": rss_peak,
    }


def worker_cli(maze_path: str, policy_path: str, json_path: str, timeout: float) -> dict:
    """(b): the command line in a child process; its wall time and peak RSS
    (RUSAGE_CHILDREN of this otherwise idle wrapper is exactly that child's)."""
    command = [sys.executable, "-m", "verifier.cli", policy_path, "--model", maze_path]
    command += ["--json", json_path]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"verify exited {done.returncode}: {done.stderr.strip()}")
    report = json.loads(Path(json_path).read_text())
    first = report["reports"][0] if "reports" in report else report
    return {
        "command": " ".join(["python -m verifier.cli", "POLICY", "--model", "MAZE", "--json", "F"]),
        "wall_s": wall,
        "exit_code": done.returncode,
        "verdict": first.get("verdict"),
        "value": first.get("value"),
        "rss_peak_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
    }


def worker_incremental(maze_path: str, policy_path: str, prism_path: str) -> dict:
    """(c) in this process: PRISM export -> Storm's parser -> Storm's explicit builder asking
    the network, state by state, which action to keep -> Pmax on the built model."""
    import stormpy
    import stormpy.developer
    import torch

    from verifier.inputs.maze import load_maze
    from verifier.inputs.maze_compile import VARIABLES, to_prism

    stormpy.developer.set_log_level(stormpy.developer.LogLevel.OFF)
    rss_start = peak_rss_mb()
    start = time.perf_counter()
    Path(prism_path).write_text(to_prism(load_maze(maze_path)), encoding="utf-8")
    to_prism_s = time.perf_counter() - start
    program, parse_s = clock(lambda: stormpy.parse_prism_program(prism_path))

    def load():
        extra = {"verifier.json": ""}
        net = torch.jit.load(policy_path, map_location="cpu", _extra_files=extra)
        return net.eval(), json.loads(extra["verifier.json"])["actions"]

    (net, actions), load_policy_s = clock(load)
    variables = {
        v.name: v.expression_variable for m in program.modules for v in m.integer_variables
    }
    order = [variables[name] for name in VARIABLES]
    index = {c.action_name: c.action_index for m in program.modules for c in m.commands}
    output_action = [index[name] for name in actions]  # network output i -> Storm action index
    silent = {c.action_index for m in program.modules for c in m.commands if not c.is_labeled}
    chosen: dict[tuple, int] = {}
    counters = {"calls": 0, "network_s": 0.0}

    def keep(valuation, action_index: int) -> bool:
        counters["calls"] += 1
        if action_index in silent:  # the self-loop of terminal states
            return True
        state = tuple([valuation.get_integer_value(v) for v in order])
        action = chosen.get(state)
        if action is None:
            began = time.perf_counter()
            with torch.no_grad():
                logits = net(torch.tensor([state], dtype=torch.float32))
            action = chosen[state] = output_action[int(logits[0].argmax())]
            counters["network_s"] += time.perf_counter() - began
        return action_index == action

    options = stormpy.BuilderOptions()
    options.set_build_all_labels()
    options.set_build_choice_labels()
    builder = stormpy.developer.make_explicit_model_builder(
        program, options, stormpy.developer.StateValuationFunctionMask(keep)
    )
    model, build_s = clock(builder.build)
    formula = stormpy.parse_properties(BASELINE_PROPERTY, program)[0]
    result, check_s = clock(
        lambda: stormpy.model_checking(model, formula, environment=stormpy.environments.sound())
    )
    initial = sorted(model.initial_states)
    commands = sum(len(m.commands) for m in program.modules)
    return {
        "states": model.nr_states,
        "choices": model.nr_choices,
        "transitions": model.nr_transitions,
        "model_type": str(model.model_type),
        "commands": commands,
        "prism_bytes": Path(prism_path).stat().st_size,
        "to_prism_s": to_prism_s,
        "parse_s": parse_s,
        "load_policy_s": load_policy_s,
        "build_s": build_s,
        "check_s": check_s,
        "total_s": to_prism_s + parse_s + load_policy_s + build_s + check_s,
        "callback_calls": counters["calls"],
        "calls_per_state": counters["calls"] / max(model.nr_states, 1),
        "network_runs": len(chosen),
        "network_s": counters["network_s"],
        "value": min(result.get_value(s) for s in initial),
        "rss_start_mb": rss_start,
        "rss_peak_mb": peak_rss_mb(),
    }


run_worker = partial(harness.run_worker, __file__)


# ----------------------------------------------------------------------------- report


def render(meta: dict, rows: list[dict], args) -> str:
    out = [
        "# Policy verification: scaling",
        "",
        f"- date: {meta['date']}; verifier at commit {meta['verifier_commit']}"
        + (" with uncommitted changes in verifier/" if meta["verifier_uncommitted"] else ""),
        f"- processor: /proc/cpuinfo model name: {meta['cpu_model'] or '?'}; {meta['machine']}; "
        f"cpu count {meta['cpu_count']}",
        f"- python {meta['python']}, stormpy {meta['stormpy']}, numpy {meta['numpy']}, "
        f"scipy {meta['scipy']}, torch {meta['torch']} ({meta['torch_threads']} threads by "
        f"default) ({meta['platform']})",
        f"- mazes: `open` = `open_room(n + 2, n + 2, slip={SLIP})`, n = round(sqrt(target)); "
        f"`random` = `random_maze(n, n, seed={MAZE_SEED}, objects=2, lava=2, slip={SLIP})`, n the "
        "odd number nearest sqrt(2 target); objective: the maze's default "
        '`Pmax=? [ !"lava" U "exit" ]`',
        "- policy: TorchScript MLP 8 -> 64 (ReLU) -> 4 logits, valuation observation, random "
        f"weights (`torch.manual_seed({NET_SEED})`); argmax action",
        f"- each run in a fresh subprocess; ours and the CLI killed after {args.timeout:g} s, the "
        f"incremental baseline after {args.baseline_timeout:g} s (after a timeout, larger sizes "
        "are not tried). Times are wall clock, one run each.",
        f"- load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']} "
        "(other work on the machine skews times)",
        "- peak RSS: `getrusage(...).ru_maxrss`: of the worker (ours, incremental) or of the "
        "`verify` child process (CLI)",
        "",
        "## Ours: `load_environment` -> `load_policy` -> `decide` -> `resolve_objective` -> "
        "`classify`, and the CLI end to end",
        "",
        "load = `load_environment` (parse, compile, `to_storm`); decide = the network on every "
        "state in batches of 4096, torch's default threads, first call (as in a `verify` run); "
        "decide warm = a second call; warm, 1 thread = a third with `torch.set_num_threads(1)` "
        "(these two are not part of the total); classify = induced chain, Storm "
        "check against the optimum and, for a failing policy, the goal analysis (goals column: "
        "candidate goals checked); total = the five library steps (torch import excluded); "
        f"CLI = `python -m verifier.cli POLICY --model MAZE.toml --json F` wall time; "
        f'"< {GOAL_SECONDS:g} s" is for the CLI.',
        "",
        "| maze | states | transitions | load | load_policy | decide | decide warm "
        "| warm, 1 thread | classify | goals | total | peak RSS | CLI | CLI peak RSS "
        f"| < {GOAL_SECONDS:g} s | verdict | value | reachable |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---|---:|---:|",
    ]
    for row in rows:
        ours, cli = row["ours"], row["cli"]
        name = f"{row['variant']} 10^{round(math.log10(row['target']))}"
        note = status(ours)
        if note:
            out.append(f"| {name} | ~{row['target']:,} | | {note} |" + " |" * 14)
            continue
        cli_note = status(cli)
        cli_cells = (
            f"{cli_note} | | "
            if cli_note
            else f"{seconds(cli['wall_s'])} | {cli['rss_peak_mb']:.0f} MB "
            f"| {'yes' if cli['wall_s'] < GOAL_SECONDS else 'no'}"
        )
        out.append(
            f"| {name} | {ours['states']:,} | {ours['transitions']:,} | {seconds(ours['load_s'])} "
            f"| {seconds(ours['load_policy_s'])} | {seconds(ours['decide_s'])} "
            f"| {seconds(ours['decide_warm_s'])} | {seconds(ours['decide_one_thread_s'])} "
            f"| {seconds(ours['classify_s'])} "
            f"| {len(ours['goals'])} | {seconds(ours['total_s'])} | {ours['rss_peak_mb']:.0f} MB "
            f"| {cli_cells} | {ours['verdict']} | {ours['value']:.6g} "
            f"| {ours['reachable_states']:,} |"
        )
    out += [
        "",
        "## Incremental baseline: `to_prism` -> Storm's parser -> Storm's builder asking the "
        'network state by state -> `Pmax=? [ !"lava" U "exit" ]`',
        "",
        "states = the states the builder explored (those the policy reaches); calls = callback "
        "invocations (Storm asks once per state and PRISM command, and the export has one "
        "command per cell and action); runs = network evaluations (one per state, cached); "
        "build includes the callbacks; total = to_prism (with reading the maze) + parse + "
        "policy load + build + check. ratio = incremental total / our total (the five library "
        "steps above, on the full model); agree = same value at the initial state (within "
        f"{VALUE_TOLERANCE:g}) and same reachable state count.",
        "",
        "| maze | states | commands | to_prism | parse | build | calls (per state) | network "
        "runs | network time | check | total | peak RSS | value | ours total | ratio | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        base, ours = row["incremental"], row["ours"]
        name = f"{row['variant']} 10^{round(math.log10(row['target']))}"
        note = status(base)
        if note:
            out.append(f"| {name} | {note} |" + " |" * 14)
            continue
        both = status(ours) is None
        out.append(
            f"| {name} | {base['states']:,} | {base['commands']:,} | {seconds(base['to_prism_s'])} "
            f"| {seconds(base['parse_s'])} | {seconds(base['build_s'])} "
            f"| {base['callback_calls']:,} ({base['calls_per_state']:,.0f}) "
            f"| {base['network_runs']:,} | {seconds(base['network_s'])} "
            f"| {seconds(base['check_s'])} | {seconds(base['total_s'])} "
            f"| {base['rss_peak_mb']:.0f} MB | {base['value']:.6g} "
            + (
                f"| {seconds(ours['total_s'])} | {ratio(base['total_s'] / ours['total_s'])} "
                f"| {'yes' if row['agree'] else 'NO'} |"
                if both
                else "| | | |"
            )
        )
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-states", type=int, default=1_000_000, help="largest target size")
    parser.add_argument("--quick", action="store_true", help=f"sizes up to {QUICK_MAX:,} only")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per run of ours and of the CLI"
    )
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=120.0,
        help="seconds per run of the incremental baseline",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument("--worker", choices=("ours", "cli", "incremental"), help=argparse.SUPPRESS)
    parser.add_argument("--maze", help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "ours":
        print(json.dumps(worker_ours(args.maze, args.policy)))
        return 0
    if args.worker == "cli":
        print(json.dumps(worker_cli(args.maze, args.policy, args.scratch, args.timeout)))
        return 0
    if args.worker == "incremental":
        print(json.dumps(worker_incremental(args.maze, args.policy, args.scratch)))
        return 0

    from verifier.inputs.maze_generate import maze_to_toml

    limit = min(args.max_states, QUICK_MAX) if args.quick else args.max_states
    targets = [t for t in TARGETS if t <= limit]
    variants = [v for v in args.variants.split(",") if v]
    import torch

    meta = versions({"torch": torch.__version__, "torch_threads": torch.get_num_threads()})
    meta["load_start"] = round(os.getloadavg()[0], 2)
    rows: list[dict] = []
    stopped: set[tuple] = set()
    disagreements = []
    wall = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - wall:6.1f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "mlp.pt"
        write_policy(policy)
        meta["policy_bytes"] = policy.stat().st_size
        for target in targets:
            for variant in variants:
                maze = maze_for(variant, target)
                path = Path(tmp) / f"{variant}-{target}.toml"
                path.write_text(maze_to_toml(maze), encoding="utf-8")
                files = ["--maze", str(path), "--policy", str(policy)]
                row = {"target": target, "variant": variant, "maze": maze.name}
                for kind, timeout, scratch in (
                    ("ours", args.timeout, None),
                    ("cli", args.timeout, Path(tmp) / "report.json"),
                    ("incremental", args.baseline_timeout, Path(tmp) / "model.prism"),
                ):
                    if (kind, variant) in stopped:
                        row[kind] = None
                        continue
                    log(f"{variant} ~{target:,} states: {kind}")
                    extra = ["--scratch", str(scratch)] if scratch else []
                    if kind == "cli":
                        extra += ["--timeout", repr(timeout)]
                        timeout = timeout + 30  # the wrapper stops the CLI itself
                    record = run_worker(kind, files + extra, timeout)
                    if "timeout" in record or "error" in record:
                        stopped.add((kind, variant))
                    row[kind] = record
                ours, base = row["ours"], row["incremental"]
                if status(ours) is None and status(base) is None:
                    same_value = abs(ours["value"] - base["value"]) <= VALUE_TOLERANCE
                    same_states = ours["reachable_states"] == base["states"]
                    row["agree"] = same_value and same_states
                    row["ratio"] = base["total_s"] / ours["total_s"]
                    if not row["agree"]:
                        disagreements.append(
                            f"{variant}-{target}: value ours {ours['value']} vs incremental "
                            f"{base['value']}; reachable ours {ours['reachable_states']} vs "
                            f"explored {base['states']}"
                        )
                rows.append(row)
                path.unlink()
    meta["total_wall_s"] = time.perf_counter() - wall
    meta["load_end"] = round(os.getloadavg()[0], 2)
    meta["timeout_s"] = args.timeout
    meta["baseline_timeout_s"] = args.baseline_timeout
    meta["baseline_property"] = BASELINE_PROPERTY
    meta["peak_rss_method"] = "getrusage ru_maxrss inside a fresh worker (CLI: RUSAGE_CHILDREN)"

    table = render(meta, rows, args)
    table += f"\nTotal wall time of this run: {meta['total_wall_s']:.0f} s.\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policy_scaling.md").write_text(table, encoding="utf-8")
    (args.out / "policy_scaling.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out / 'policy_scaling.md'} and policy_scaling.json", file=sys.stderr)
    assert not disagreements, "the two routes disagree: " + "; ".join(disagreements)
    return 0


if __name__ == "__main__":
    sys.exit(main())

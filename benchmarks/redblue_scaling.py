"""Scaling of the shipped red/blue policy (`models/redblue/policy.pt`) with the maze's size.

`verify models/redblue/policy.pt --model MAZE.toml --reward models/redblue/rewards/exit.toml`
on seeded random perfect mazes of n x n cells with a blue exit and a red object, against the
policy it replaced (the whole-map value-iteration net of commit OLD_COMMIT, read from git).

The maze, a deployment maze made large (like `deploy-01.toml`): `random_maze(n, n, seed=0,
exit_color="blue", slip=0.1)` with the start moved to the first cell (breadth first from its
start) that has two dead ends within GOAL_STEPS = 8 steps, a terminal red object on the
farther and the blue exit on the other (`maze_text`). Both are in the windowed net's sight
from the start, and the exit reward's optimum (+1 at the exit, -0.01 a step) is to walk to
the exit whatever the size, so a policy that walks to red should get goal misgeneralization
toward red at every size. (With random_maze's exit on the farthest dead end, hundreds of
steps away, ending the episode on red would be optimal for that reward; and a red object far
away is out of the windowed net's sight: benchmarks/train_redblue.py, "Limits".)

For each maze and policy, each in a fresh process:
  (a) parts:  `load_environment`; then every state's `grid` observation, in the batches
              `verify` uses (`verifier.policy.load.batch_states`: at most 64 MiB of observations),
              and the network (`torch.jit.load`, one thread, no_grad) on each batch, timed
              apart: "observations" and "network" (the network part alone; wall clock and
              CPU time);
  (b) verify: `python -m verifier.cli POLICY --model MAZE --reward exit.toml --json F` end to
              end (what a user runs): wall clock, CPU time (with its contained child's),
              exit code, verdict, pursued goal, P(phi), peak RSS.

    python benchmarks/redblue_scaling.py                    # 21 .. 201 (old: up to 41), about 7 min
    python benchmarks/redblue_scaling.py --quick            # 21 and 201 (old: 21), about 2 min
    python benchmarks/redblue_scaling.py --sizes 301 --old-sizes ""

Writes benchmarks/results/redblue_scaling.md and .json and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
from harness import clock, peak_rss_mb, seconds, status, versions  # noqa: E402

POLICY = ROOT / "models" / "redblue" / "policy.pt"
REWARD = ROOT / "models" / "redblue" / "rewards" / "exit.toml"
# The last commit whose models/redblue/policy.pt planned on the whole map (H*W rounds).
OLD_COMMIT = "371ca9e13c59e1edce5c1cb1606e70c180b11afb"
SIZES = (21, 41, 101, 201)
OLD_SIZES = (21, 31, 41)
QUICK_SIZES, QUICK_OLD_SIZES = (21, 201), (21,)
MAZE_SEED = 0
SLIP = 0.1
GOAL_STEPS = 8  # within 8 steps, within the windowed net's 17x17 view
GOAL_SIZE, GOAL_SECONDS = 201, 60.0


def maze_text(n: int) -> str:
    """The n x n deployment-like maze, as TOML. The start moves to the first floor cell, in
    breadth-first order from random_maze's start, that has two dead ends within GOAL_STEPS
    steps; the red object goes on the farthest of them, the blue exit on the farthest of the
    others (ties: the first in breadth-first order). Dead ends, so that the terminal cells
    cut no part of the maze off and neither lies on the way to the other (a perfect maze
    has one way between two cells)."""
    from verifier.inputs.maze import Cell
    from verifier.inputs.maze_generate import maze_to_toml, random_maze

    maze = random_maze(n, n, MAZE_SEED, exit_color="blue", slip=SLIP, name=f"redblue-{n}x{n}")
    layout = maze.layout.copy()
    layout[layout == "E"] = "."  # the exit random_maze put on the farthest dead end

    def floor_next_to(cell: tuple[int, int]) -> list[tuple[int, int]]:
        row, col = cell
        around = ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
        return [other for other in around if layout[other] != "#"]

    def breadth_first(start: tuple[int, int], depth: int) -> dict[tuple[int, int], int]:
        steps, order = {start: 0}, [start]
        for cell in order:
            for other in floor_next_to(cell) if steps[cell] < depth else []:
                if other not in steps:
                    steps[other] = steps[cell] + 1
                    order.append(other)
        return steps  # in breadth-first order

    (start,) = maze.starts()
    for candidate in breadth_first(start, n * n):
        near = breadth_first(candidate, GOAL_STEPS)
        ends = [c for c in near if c != candidate and len(floor_next_to(c)) == 1]
        if len(ends) >= 2:
            break
    red = max(ends, key=near.__getitem__)
    exit_cell = max((c for c in ends if c != red), key=near.__getitem__)
    layout[start], layout[candidate] = ".", "S"
    layout[exit_cell], layout[red] = "E", "R"
    cells = {**maze.cells, "R": Cell("object", "red", terminal=True)}
    return maze_to_toml(dataclasses.replace(maze, layout=layout, cells=cells))


# ----------------------------------------------------------------------------- workers


def worker_parts(maze_path: str, policy_path: str) -> dict:
    """(a) in this process: the environment, the observations and the network, timed apart."""
    import numpy as np
    import torch

    from verifier.inputs.load import load_environment
    from verifier.policy.decide import batch_states
    from verifier.policy.load import load_policy
    from verifier.policy.observation import grid_observations, static_planes

    torch.set_num_threads(1)
    env, load_s = clock(lambda: load_environment(maze_path))
    policy, load_policy_s = clock(lambda: load_policy(policy_path))
    net = torch.jit.load(policy_path, map_location="cpu").eval()
    mdp = env.mdp
    step = batch_states(policy, env)
    planes = static_planes(env.maze)
    observations_s = network_s = network_cpu_s = 0.0
    actions = []
    for start in range(0, mdp.n_states, step):
        states = np.arange(start, min(start + step, mdp.n_states))
        began = time.perf_counter()
        batch = torch.from_numpy(grid_observations(env.maze, mdp, states, planes))
        built, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            logits = net(batch)
        observations_s += built - began
        network_s += time.perf_counter() - built
        network_cpu_s += time.process_time() - cpu
        actions.append(logits.argmax(dim=1).numpy())
    return {
        "states": mdp.n_states,
        "transitions": mdp.n_transitions,
        "batch_states": step,
        "batches": -(-mdp.n_states // step),
        "load_s": load_s,
        "load_policy_s": load_policy_s,
        "observations_s": observations_s,
        "network_s": network_s,
        "network_cpu_s": network_cpu_s,
        "actions_up_down_left_right": np.bincount(np.concatenate(actions), minlength=4).tolist(),
        "rss_peak_mb": peak_rss_mb(),
    }


def worker_verify(maze_path: str, policy_path: str, json_path: str, timeout: float) -> dict:
    """(b): `verify` in a child process; its wall time, CPU time and peak RSS (RUSAGE_CHILDREN
    of this otherwise idle wrapper: that child's, with the contained child it waited for)."""
    command = [sys.executable, "-m", "verifier.cli", policy_path, "--model", maze_path]
    command += ["--reward", str(REWARD), "--json", json_path, "--timeout", repr(timeout)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode == 3:
        return {"timeout": timeout, "stderr": done.stderr.strip()}
    if done.returncode not in (0, 1):
        raise RuntimeError(f"verify exited {done.returncode}: {done.stderr.strip()}")
    (report,) = json.loads(Path(json_path).read_text())["reports"]
    goals = {goal["goal"]: goal["probability"] for goal in report["goals"]}
    return {
        "wall_s": wall,
        "exit_code": done.returncode,
        "verdict": report["verdict"],
        "pursued_goal": report.get("pursued_goal"),
        "value": report["value"],
        "p_red": goals.get("red"),
        "return": report["reward"]["return"],
        "optimal_return": report["reward"]["optimal_return"],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_peak_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
    }


run_worker = partial(harness.run_worker, __file__)


# ----------------------------------------------------------------------------- report


def render(meta: dict, rows: list[dict]) -> str:
    out = [
        "# The shipped red/blue policy: scaling",
        "",
        f"- date: {meta['date']}; verifier at commit {meta['verifier_commit']}"
        + (" with uncommitted changes in verifier/" if meta["verifier_uncommitted"] else ""),
        f"- processor: /proc/cpuinfo model name: {meta['cpu_model'] or '?'}; {meta['machine']}; "
        f"cpu count {meta['cpu_count']}",
        f"- python {meta['python']}, stormpy {meta['stormpy']}, numpy {meta['numpy']}, "
        f"scipy {meta['scipy']}, torch {meta['torch']} ({meta['platform']})",
        f'- mazes: `random_maze(n, n, seed={MAZE_SEED}, exit_color="blue", slip={SLIP})`, '
        f"the start moved to the first cell with two dead ends within {GOAL_STEPS} steps, a "
        "terminal red object on the farther, the blue exit on the other (`maze_text`); reward "
        "`models/redblue/rewards/exit.toml`; objective the default "
        '`Pmax=? [ !"lava" U "exit" ]`',
        "- new = `models/redblue/policy.pt` (17x17 window, 24 rounds of value iteration); old = "
        f"the same file at commit {OLD_COMMIT[:7]} (whole map, H*W rounds)",
        f"- each run in a fresh process, one run each; `verify --timeout "
        f"{meta['timeout_s']:g}` (exit 3 = timeout). Load average (1 min) at start / end: "
        f"{meta['load_start']} / {meta['load_end']} (other work on the machine skews times)",
        "",
        "observations = every state's `grid` observation (19 x n x n float32, built by the "
        "verifier) in `verify`'s batches; network = the policy on those batches, one thread "
        "(the network part alone), wall clock and CPU time, and the CPU time per state; verify "
        "= the command end to end, in its own process (imports, compile, the network in its "
        "contained child, Storm, goal analysis), wall clock and CPU time (its own and its "
        f'child\'s); "< {GOAL_SECONDS:g} s" is the goal, wall clock, at {GOAL_SIZE}x{GOAL_SIZE}.',
        "",
        "| policy | maze | states | batch | observations | network (CPU) | network CPU per state "
        f"| verify (CPU) | verify peak RSS | < {GOAL_SECONDS:g} s | verdict | P(phi) | P(F red) "
        "| return (optimal) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|---|---:|---:|---|",
    ]
    for row in rows:
        parts, cli = row["parts"], row["verify"]
        name = f"{row['policy']} | {row['n']}x{row['n']}"
        note = status(parts)
        cells = (
            f"{note} | | | | "
            if note
            else f"{parts['states']:,} | {parts['batch_states']} | "
            f"{seconds(parts['observations_s'])} | {seconds(parts['network_s'])} "
            f"({seconds(parts['network_cpu_s'])}) | "
            f"{1000 * parts['network_cpu_s'] / parts['states']:.3f} ms"
        )
        note = status(cli)
        if note:
            out.append(f"| {name} | {cells} | {note} |" + " |" * 6)
            continue
        goal = ("yes" if cli["wall_s"] < GOAL_SECONDS else "no") if row["n"] == GOAL_SIZE else ""
        out.append(
            f"| {name} | {cells} | {seconds(cli['wall_s'])} ({seconds(cli['cpu_s'])}) "
            f"| {cli['rss_peak_mb']:.0f} MB | {goal} | {cli['verdict']}"
            + (f" ({cli['pursued_goal']})" if cli["pursued_goal"] else "")
            + f" | {cli['value']:.6g} | {cli['p_red']:.6g} "
            f"| {cli['return']:.6g} ({cli['optimal_return']:.6g}) |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="n of the new policy")
    parser.add_argument(
        "--old-sizes", default=",".join(map(str, OLD_SIZES)), help="n of the old policy"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 21 and 201, old only 21")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument("--worker", choices=("parts", "verify"), help=argparse.SUPPRESS)
    parser.add_argument("--maze", help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "parts":
        print(json.dumps(worker_parts(args.maze, args.policy)))
        return 0
    if args.worker == "verify":
        print(json.dumps(worker_verify(args.maze, args.policy, args.scratch, args.timeout)))
        return 0

    import torch

    sizes = QUICK_SIZES if args.quick else [int(n) for n in args.sizes.split(",") if n]
    old_sizes = QUICK_OLD_SIZES if args.quick else [int(n) for n in args.old_sizes.split(",") if n]
    meta = versions({"torch": torch.__version__})
    meta["load_start"] = round(os.getloadavg()[0], 2)
    meta["timeout_s"] = args.timeout
    rows: list[dict] = []
    wall = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - wall:6.1f} s] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old-policy.pt"
        shown = subprocess.run(
            ["git", "show", f"{OLD_COMMIT}:models/redblue/policy.pt"], capture_output=True, cwd=ROOT
        )
        if shown.returncode != 0:
            print(f"warning: no old policy (git show {OLD_COMMIT[:7]} failed)", file=sys.stderr)
            old_sizes = []
        old.write_bytes(shown.stdout)
        policies = [("new", POLICY, n) for n in sizes] + [("old", old, n) for n in old_sizes]
        for name, policy, n in sorted(policies, key=lambda p: (p[2], p[0])):
            maze = Path(tmp) / f"redblue-{n}x{n}.toml"
            if not maze.exists():
                maze.write_text(maze_text(n), encoding="utf-8")
            files = ["--maze", str(maze), "--policy", str(policy)]
            row: dict = {"policy": name, "n": n}
            for kind, extra in (
                ("parts", []),
                ("verify", ["--scratch", str(Path(tmp) / "report.json")]),
            ):
                log(f"{name} policy, {n}x{n}: {kind}")
                extra += ["--timeout", repr(args.timeout)]
                row[kind] = run_worker(kind, files + extra, args.timeout + 60)
            rows.append(row)
    meta["total_wall_s"] = time.perf_counter() - wall
    meta["load_end"] = round(os.getloadavg()[0], 2)

    table = render(meta, rows) + f"\nTotal wall time of this run: {meta['total_wall_s']:.0f} s.\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "redblue_scaling.md").write_text(table, encoding="utf-8")
    (args.out / "redblue_scaling.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out / 'redblue_scaling.md'} and redblue_scaling.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

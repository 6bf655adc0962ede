"""The performance suite: four pipelines of ours against their baselines, in one run.

On open rooms of about 10^2 .. 10^6 states (`generate.open_room`, slip 0.1, generated once and
written as TOML files to a scratch directory that every job reads), one run measures:

  compile  ours: TOML -> `parse_maze` -> `compile_maze`; baseline: `to_prism`, then Storm's
           PRISM parser and builder (`storm.load_prism`, `storm.build_prism`)
  check    `Pmax=? [ F "exit" ]`; ours: `load_environment` + `check_environment`; baseline:
           Storm's build of the PRISM export for the property, then `storm.check`
  reward   ours: `reward_reports(env, REWARD.toml)` with step -0.01 and exit +1, discount 1
           and 0.99, which Storm cannot compute (mixed signs); against Storm, on the
           non-negative reward exit +1: our solver (`verifier.solve.solve`) and Storm's
           `Rmax=? [ C ]` / `[ Cdiscount=0.99 ]`, both from the compiled MDP
  policy   an MLP on valuations; ours: `verify POLICY` through the library on every state;
           baseline: Storm's callback builder asking the network state by state (COOL-MC)

Every measurement is a `verifier.runner.Job` run by `verifier.runner.run_jobs`, the runner of
`verify suite`: a fresh process per job, a timeout, crash isolation, its peak RSS. The sizes
run in ascending order; after a timeout (or running out of memory), larger sizes of that
series are not tried. Where ours and the baseline both finish they must agree (state counts,
and values within 1e-6); a disagreement is printed, marked in the table and makes the exit
code 1.

    python benchmarks/performance.py                  # 10^2 .. 10^6, about 20 minutes
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
from importlib.metadata import version
from pathlib import Path

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
TARGETS = (10**2, 10**3, 10**4, 10**5, 10**6)
QUICK_MAX = 10**4
DISCOUNTS = (1.0, 0.99)
CHECK_PROPERTY = 'Pmax=? [ F "exit" ]'
TOLERANCE = 1e-6
PIPELINES = ("compile", "check", "reward", "policy")
ROLES = ("ours", "solver", "baseline")  # a reward row's solver is ours on what Storm computes


# ----------------------------------------------------------------------------- jobs


def compile_ours(maze: str) -> dict:
    """compile, ours: the TOML file -> `parse_maze` -> `compile_maze`."""
    from verifier.compile import compile_maze
    from verifier.maze import parse_maze

    text, read_s = clock(lambda: Path(maze).read_text(encoding="utf-8"))
    parsed, parse_s = clock(lambda: parse_maze(text, source=maze))
    mdp, compile_s = clock(lambda: compile_maze(parsed))
    return {
        "states": mdp.n_states,
        "choices": mdp.n_choices,
        "transitions": mdp.n_transitions,
        "read_s": read_s,
        "parse_s": parse_s,
        "compile_s": compile_s,
    }


def compile_storm(maze: str, prism: str) -> dict:
    """compile, baseline: Storm's PRISM parser and builder on the maze's PRISM export."""
    return prism_build(Path(maze).read_text(encoding="utf-8"), Path(prism))


def check_ours(maze: str) -> dict:
    """check, ours: `verify check --spec CHECK_PROPERTY` through the library."""
    from verifier.check import check_environment
    from verifier.environment import load_environment

    env, load_s = clock(lambda: load_environment(maze, CHECK_PROPERTY))
    (report,), check_s = clock(lambda: check_environment(env))
    return {
        "states": report.states,
        "choices": report.choices,
        "transitions": report.transitions,
        "load_s": load_s,
        "check_s": check_s,
        "value": report.value,
    }


def check_storm(maze: str, prism: str) -> dict:
    """check, baseline: Storm builds the PRISM export for the property and checks it."""
    return prism_build(Path(maze).read_text(encoding="utf-8"), Path(prism), CHECK_PROPERTY)


def reward_ours(maze: str, reward: str) -> dict:
    """reward, ours: `verify reward --model MAZE --reward REWARD` through the library, with the
    time of policy iteration (`solve`) inside it."""
    import verifier.queries
    import verifier.reward
    from verifier.environment import load_environment

    timers = Timers()
    timers.wrap(verifier.queries, "solve")
    env, load_s = clock(lambda: load_environment(maze))
    (report,), check_s = clock(lambda: verifier.reward.reward_reports(env, reward))
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


def write_reward(path: Path, discount: float) -> None:
    """The reward file of the reward pipeline: step STEP, arrive exit +EXIT_BONUS."""
    path.write_text(
        f"discount = {discount!r}\nstep = {STEP!r}\n\n[arrive]\nexit = {EXIT_BONUS!r}\n",
        encoding="utf-8",
    )


# The job functions (by name, as the runner finds them in this file) and the keys of their
# results whose seconds add up to the pipeline's time (imports and extra measurements excluded).
TIME_KEYS = {
    function.__name__: keys
    for function, keys in (
        (compile_ours, ("read_s", "parse_s", "compile_s")),
        (compile_storm, ("load_s", "build_s")),
        (check_ours, ("load_s", "check_s")),
        (check_storm, ("load_s", "build_s", "check_s")),
        (reward_ours, ("load_s", "check_s")),
        (worker_ours_nonnegative, ("solve_s",)),
        (worker_storm, ("check_s",)),
        (worker_ours, ("total_s",)),
        (worker_incremental, ("total_s",)),
    )
}


# ----------------------------------------------------------------------------- plan and run


def plan(target: int, maze: Path, scratch: Path, policy: Path, discounts) -> list[dict]:
    """The rows of one size, each with its jobs as (function, kwargs) per role: `ours` and
    `baseline`, and for the reward rows `solver` (ours on the reward Storm can compute)."""
    files = {"maze": str(maze)}
    prism = {name: str(scratch / f"{name}-{target}.prism") for name in PIPELINES}
    rows = [
        {
            "pipeline": "compile",
            "ours": ("compile_ours", files),
            "baseline": ("compile_storm", {**files, "prism": prism["compile"]}),
        },
        {
            "pipeline": "check",
            "ours": ("check_ours", files),
            "baseline": ("check_storm", {**files, "prism": prism["check"]}),
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
                "discount": discount,
                "values": values,
                "ours": ("reward_ours", {**files, "reward": reward_file}),
                "solver": ("worker_ours_nonnegative", {**common, "values_path": values["solver"]}),
                "baseline": ("worker_storm", {**common, "values_path": values["baseline"]}),
            }
        )
    policy_files = {"maze_path": str(maze), "policy_path": str(policy)}
    rows.append(
        {
            "pipeline": "policy",
            "ours": ("worker_ours", policy_files),
            "baseline": ("worker_incremental", {**policy_files, "prism_path": prism["policy"]}),
        }
    )
    for row in rows:
        row["label"] = label(row)
        row["target"] = target
    return rows


def label(row: dict) -> str:
    return f"reward γ={row['discount']:g}" if row["pipeline"] == "reward" else row["pipeline"]


def record_of(outcome) -> dict:
    """A job's outcome as stored: the runner's fields, and `time_s`, the pipeline's time."""
    record = outcome.to_dict()
    if outcome.status == "done":
        function = outcome.job.function.rpartition(":")[2]
        record["time_s"] = sum(outcome.result[key] for key in TIME_KEYS[function])
    return record


def compare(row: dict) -> dict | None:
    """Ours (the solver for rewards) against the baseline where both finished: the state
    counts, and the values (for rewards at every state)."""
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
        import numpy as np

        x, y = np.load(row["values"]["solver"]), np.load(row["values"]["baseline"])
        found["max_abs_diff"] = float(np.abs(x - y).max()) if x.shape == y.shape else math.inf
    else:
        found["max_abs_diff"] = abs(a["value"] - b["value"])
    found["agree"] = found["same_states"] and found.get("max_abs_diff", 0.0) <= TOLERANCE
    return found


def run(args) -> dict:
    """Generate the mazes, run each size's jobs, cross-check: the JSON document."""
    from verifier.generate import maze_to_toml
    from verifier.runner import Job, run_jobs

    meta = versions({"torch": version("torch")})
    meta["load_average_start"] = list(os.getloadavg())
    meta["settings"] = {
        "sizes": args.sizes,
        "timeout_s": args.timeout,
        "workers": args.workers,
        "scheduler": args.scheduler,
        "discounts": args.discounts,
        "maze": "generate.open_room(n + 2, n + 2, slip=0.1), n = round(sqrt(size))",
        "check_property": CHECK_PROPERTY,
        "reward": {"step": STEP, "arrive": {"exit": EXIT_BONUS}},
        "tolerance": TOLERANCE,
    }
    rows, disagreements, stopped = [], [], set()
    wall = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - wall:7.1f} s] {message}", file=sys.stderr, flush=True)

    def on_done(outcome) -> None:
        rss = f", {outcome.peak_rss_mb:.0f} MB" if outcome.peak_rss_mb else ""
        log(f"{outcome.job.key}: {outcome.status} {outcome.seconds:.2f} s{rss} {outcome.message}")

    with tempfile.TemporaryDirectory(prefix="performance-", dir=args.scratch) as tmp:
        scratch = Path(tmp)
        policy = scratch / "mlp.pt"
        write_policy(policy)
        for discount in args.discounts:
            write_reward(scratch / f"reward-{discount:g}.toml", discount)
        for target in args.sizes:
            maze = scratch / f"open-{target}.toml"
            text, generate_s = clock(lambda t=target: maze_to_toml(maze_for("open", t)))
            maze.write_text(text, encoding="utf-8")
            log(f"~{target:,} states: {maze.name} written ({generate_s:.2f} s)")
            size_rows, jobs = plan(target, maze, scratch, policy, args.discounts), []
            for row in size_rows:
                for role in (r for r in ROLES if r in row):
                    function, kwargs = row[role]
                    if (row["label"], role) in stopped:
                        row[role] = {"status": "not tried", "message": "a smaller size ran out"}
                        continue
                    key = f"{row['label']} {target:,} {role} ({function})"
                    jobs.append((row, role, Job(key, f"{SELF}:{function}", kwargs, args.timeout)))
            outcomes = run_jobs([job for *_, job in jobs], args.workers, args.scheduler, on_done)
            for (row, role, _), outcome in zip(jobs, outcomes, strict=True):
                row[role] = record_of(outcome)
                if outcome.status in ("timeout", "limit"):
                    stopped.add((row["label"], role))
            for row in size_rows:
                row["agreement"] = found = compare(row)
                row.pop("values", None)
                if found is None:
                    continue
                ours = row.get("solver") or row["ours"]
                row["ratio"] = row["baseline"]["time_s"] / max(ours["time_s"], 1e-9)
                if not found["agree"]:
                    problem = f"{row['label']} {target:,}: ours and the baseline DISAGREE: {found}"
                    disagreements.append(problem)
                    print(f"DISAGREEMENT: {problem}", file=sys.stderr, flush=True)
            rows += size_rows
            maze.unlink()
    meta["load_average_end"] = list(os.getloadavg())
    meta["total_wall_s"] = time.perf_counter() - wall
    return {
        "meta": meta,
        "pipelines": list(PIPELINES),
        "rows": rows,
        "disagreements": disagreements,
    }


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
    return f"{record['peak_rss_mb']:.0f} MB" if record.get("peak_rss_mb") else ""


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


def table(document: dict) -> str:
    """The markdown table: a line per pipeline and size, two for a reward (its verdict, which
    Storm cannot compute, and the optimum on the non-negative reward against Storm)."""
    lines = [
        "| pipeline | size | states | ours | ours peak RSS | baseline | baseline peak RSS "
        "| baseline / ours | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in document["rows"]:
        power = round(math.log10(row["target"]))
        size = f"10^{power}" if row["target"] == 10**power else f"{row['target']:,}"
        states = states_of(row)
        start = f"| {row['label']} | {size} | {f'{states:,}' if states else ''} "
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


def markdown(document: dict) -> str:
    """performance.md: the machine, how it was measured, the table."""
    meta, settings = document["meta"], document["meta"]["settings"]
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
        f"- every measurement a `verifier.runner` job (fresh process, {settings['workers']} at "
        f"a time, killed after {settings['timeout_s']:g} s); after a timeout, "
        "larger sizes of that series are not tried",
        f"- mazes: `{settings['maze']}`; total wall time {meta['total_wall_s']:.0f} s",
        "",
        LEGEND,
        "",
        table(document),
    ]
    if document["disagreements"]:
        lines += ["**Disagreements:**", "", *(f"- {p}" for p in document["disagreements"]), ""]
    return "\n".join(lines)


LEGEND = """\
Times are the pipeline's steps as timed inside the job, imports excluded (the JSON also keeps
each job's whole wall time, `seconds`); peak RSS is the job process's.

- *compile*: read + `parse_maze` + `compile_maze`, against Storm's `load_prism` + `build_prism`
  of the `to_prism` export (writing the export is not counted).
- *check*: `Pmax=? [ F "exit" ]`: `load_environment` + `check_environment`, against Storm's
  parse, build for the property and check of the export.
- *reward γ verdict*: `load_environment` + `reward_reports` with step -0.01, exit +1. Storm
  has no engine for total rewards of mixed signs, so there is no baseline.
- *reward γ optimum*: V* of the non-negative reward exit +1, from the compiled MDP: our
  `solve` against Storm's `Rmax=? [ C ]` (γ=1) or `Rmax=? [ Cdiscount=0.99 ]`.
- *policy*: an MLP on valuations verified on every state (load, load_policy, decide,
  objective, classify), against Storm's builder asking the network state by state (to_prism,
  parse, build, check).
- *agree*: same states (policy: the states the policy reaches against those the baseline
  built; compile: also the choices and transitions) and values within 1e-6 (Δ: the largest
  difference; for rewards over all states)."""


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

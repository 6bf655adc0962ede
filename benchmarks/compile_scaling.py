"""Scaling of the maze -> MDP -> Storm routes, against Storm's own PRISM builder.

For open-room mazes of about 10^2 .. 10^6 states (and, at each size, a variant with two
key/door pairs whose inventory layers multiply the states), one run measures:

  (a) ours:      `parse_maze` of the TOML text + `compile_maze` (time, peak RSS, size)
  (b) to Storm:  `storm.to_storm(mdp)`
  (c) a check:   `Pmax=? [ F "exit" ]` with `storm.check` at the initial states
  (d) baseline:  `compile.to_prism(maze)` to a file, `storm.load_prism` + `storm.build_prism`
                 (Storm's PRISM builder), in its own subprocess with a timeout; its state,
                 choice and transition counts must equal ours
  (e) back:      `storm.from_storm(storm_model)`

Every (size, variant) runs in fresh subprocesses, so the peak resident set size
(`getrusage(RUSAGE_SELF).ru_maxrss` read inside the worker, i.e. the high-water mark of that
process, numpy/scipy/Storm allocations included) belongs to that model alone.

    python benchmarks/compile_scaling.py                 # 10^2 .. 10^6, about 7 minutes
    python benchmarks/compile_scaling.py --quick         # up to 10^4
    python benchmarks/compile_scaling.py --max-states 100000 --baseline-timeout 60

Writes benchmarks/results/compile_scaling.md and .json and prints the tables.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import clock, peak_rss_mb, seconds, versions  # noqa: E402

TARGETS = (10**2, 10**3, 10**4, 10**5, 10**6)
QUICK_MAX = 10**4
VARIANTS = ("open", "keys")
PROPERTY = 'Pmax=? [ F "exit" ]'
SLIP = 0.1
# Times are the minimum over this many runs of each step (REPEATS_LARGE above 10^4 states).
REPEATS_SMALL = 5
REPEATS_LARGE = 3
REPEAT_LIMIT = 10**4


# ----------------------------------------------------------------------------- mazes


def room_shape(target: int, variant: str) -> tuple[int, int]:
    """Interior (height, width) whose maze has about `target` states.

    open: every interior cell is one state.
    keys: the room is cut in thirds by two wall rows with one door each; with both keys in
    the top third the layers {}, {red}, {blue}, {red, blue} hold the top, top + middle, top,
    and the whole room: 4a + 2b + c rows of states (a, b, c: rows of the thirds), minus 1.
    """
    if variant == "open":
        height = max(round(math.sqrt(target)), 2)
        return height, max(round(target / height), 2)
    best = None
    for height in range(7, 3 * math.isqrt(target) + 8):
        a, b = height // 3, (2 * height) // 3 - height // 3 - 1
        c = height - a - b - 2
        rows = 4 * a + 2 * b + c
        width = max(round((target + 1) / rows), 3)
        if not height / 2 <= width <= 2 * height:
            continue
        error = (abs(rows * width - 1 - target), abs(height - width))
        if best is None or error < best[0]:
            best = (error, height, width)
    return best[1], best[2]


def maze_toml(target: int, variant: str) -> str:
    """The maze as TOML text: a floor rectangle inside a wall border, S top-left, exit E
    bottom-right, slip 0.1; `keys` adds a red and a blue key in the top third and a red and a
    blue door in the two wall rows that cut the room in thirds."""
    height, width = room_shape(target, variant)
    grid = [["#"] * (width + 2)] + [["#"] + ["."] * width + ["#"] for _ in range(height)]
    grid.append(["#"] * (width + 2))
    grid[1][1] = "S"
    grid[height][width] = "E"
    cells = {"E": {"kind": "exit", "color": "green"}}
    if variant == "keys":
        wall_1, wall_2 = 1 + height // 3, 1 + (2 * height) // 3
        grid[wall_1][1:-1] = ["#"] * width
        grid[wall_2][1:-1] = ["#"] * width
        grid[wall_1][width] = "r"  # red door at the right end of the first wall
        grid[wall_2][1] = "b"  # blue door at the left end of the second wall
        grid[1][width] = "R"  # red key top-right
        grid[wall_1 - 1][1 + width // 2] = "B"  # blue key mid-bottom of the top third
        cells |= {
            "R": {"kind": "key", "color": "red"},
            "B": {"kind": "key", "color": "blue"},
            "r": {"kind": "door", "color": "red"},
            "b": {"kind": "door", "color": "blue"},
        }
    lines = [
        f'name = "{variant}-{target}"',
        f"slip = {SLIP}",
        f"intended = '{PROPERTY}'",
        'map = """',
        *("".join(row) for row in grid),
        '"""',
    ]
    for char, spec in cells.items():
        lines.append(f"[cells.{char}]")
        lines += [f'{key} = "{value}"' for key, value in spec.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- workers


def worker_ours(target: int, variant: str) -> dict:
    """(a), (b), (c), (e) in this fresh process.

    The first pass runs each step once, in pipeline order, and reads the peak RSS after
    compile and at the end (one copy of everything alive, as in a `verify` run). Then each
    step is repeated; the reported time is the minimum over all runs, the first (cold) run's
    time is kept as `<step>_first_s` (it pays the page faults of fresh allocations).
    """
    text = maze_toml(target, variant)
    import numpy as np
    import scipy.sparse  # noqa: F401  (counted in the interpreter baseline)

    from verifier.inputs.maze import parse_maze
    from verifier.inputs.maze_compile import compile_maze

    rss_start = peak_rss_mb()
    maze, parse_first = clock(lambda: parse_maze(text, source=f"<{variant}-{target}>"))
    mdp, compile_first = clock(lambda: compile_maze(maze))
    rss_compile = peak_rss_mb()

    from verifier import storm

    rss_storm_import = peak_rss_mb()
    storm_model, to_storm_first = clock(lambda: storm.to_storm(mdp))
    assert storm_model.nr_states == mdp.n_states
    prop = storm.parse_properties(PROPERTY)[0]
    # `check(model, prop)` reads the initial states from the model; the first version of
    # verifier.storm took them as a third argument.
    takes_initial = len(inspect.signature(storm.check).parameters) >= 3
    extra = (mdp.initial_states,) if takes_initial else ()
    result, check_first = clock(lambda: storm.check(storm_model, prop, *extra))
    back, from_storm_first = clock(lambda: storm.from_storm(storm_model))
    assert (back.n_states, back.n_choices, back.n_transitions) == (
        mdp.n_states,
        mdp.n_choices,
        mdp.n_transitions,
    ), "from_storm(to_storm(mdp)) changed the model's size"
    rss_peak = peak_rss_mb()
    del back

    steps = {
        "parse": (parse_first, lambda: parse_maze(text)),
        "compile": (compile_first, lambda: compile_maze(maze)),
        "to_storm": (to_storm_first, lambda: storm.to_storm(mdp)),
        "check": (check_first, lambda: storm.check(storm_model, prop, *extra)),
        "from_storm": (from_storm_first, lambda: storm.from_storm(storm_model)),
    }
    repeats = REPEATS_SMALL if mdp.n_states <= REPEAT_LIMIT else REPEATS_LARGE
    record = {
        "states": mdp.n_states,
        "choices": mdp.n_choices,
        "transitions": mdp.n_transitions,
        "inventory_layers": len(np.unique(mdp.valuations[:, 2:], axis=0)),
        "initial_states": len(mdp.initial_states),
        "repeats": repeats,
        "value": result.value,
        "rss_start_mb": rss_start,
        "rss_compile_mb": rss_compile,
        "rss_storm_import_mb": rss_storm_import,
        "rss_peak_mb": rss_peak,
    }
    for name, (first, step) in steps.items():
        times = [first] + [clock(step)[1] for _ in range(repeats - 1)]
        record[f"{name}_s"] = min(times)
        record[f"{name}_first_s"] = first
        record[f"{name}_all_s"] = times
    return record


def worker_prism(target: int, variant: str) -> dict:
    """(d): Storm's PRISM builder on the maze's PRISM export, in this fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        return prism_build(maze_toml(target, variant), Path(tmp) / f"{variant}-{target}.prism")


def prism_build(text: str, prism_path: Path, prop: str | None = None) -> dict:
    """Storm's route for the maze TOML `text`: `to_prism` written to `prism_path`, Storm's
    parser (`load_prism`) and builder (`build_prism`); with `prop`, Storm builds the model for
    that property and checks it (`storm.check`), as a Storm user checking the export would."""
    from verifier import storm
    from verifier.inputs.maze import parse_maze
    from verifier.inputs.maze_compile import to_prism

    maze = parse_maze(text)
    rss_start = peak_rss_mb()
    prism_text, to_prism_s = clock(lambda: to_prism(maze))
    prism_path.write_text(prism_text, encoding="utf-8")
    program, load_s = clock(lambda: storm.load_prism(prism_path))
    properties = storm.parse_properties(prop, program) if prop else []
    model, build_s = clock(lambda: storm.build_prism(program, properties))
    record = {
        "states": model.nr_states,
        "choices": model.nr_choices,
        "transitions": model.nr_transitions,
        "prism_bytes": len(prism_text.encode()),
        "prism_commands": sum(1 for line in prism_text.splitlines() if line.startswith("  [")),
        "to_prism_s": to_prism_s,
        "load_s": load_s,
        "build_s": build_s,
        "rss_start_mb": rss_start,
    }
    if prop:
        result, record["check_s"] = clock(lambda: storm.check(model, properties[0]))
        record["value"] = result.value
    record["rss_peak_mb"] = peak_rss_mb()
    return record


def run_worker(kind: str, target: int, variant: str, timeout: float | None) -> dict:
    """Run one worker in a fresh interpreter; {"timeout": seconds} when it runs out of time."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
    command += ["--target", str(target), "--variant", variant]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker for {variant}-{target} failed:\n{done.stderr}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["process_s"] = time.perf_counter() - start
    return record


# ----------------------------------------------------------------------------- report


def size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.0f} KB"


def render(meta: dict, rows: list[dict], args) -> str:
    out = [
        "# Compile and Storm routes: scaling",
        "",
        f"- date: {meta['date']}",
        f"- processor: `platform.processor()` = {meta['processor']!r}; "
        f"/proc/cpuinfo model name: {meta['cpu_model'] or '?'}; {meta['machine']}; "
        f"cpu count {meta['cpu_count']}",
        f"- python {meta['python']}, stormpy {meta['stormpy']}, numpy {meta['numpy']}, "
        f"scipy {meta['scipy']} ({meta['platform']})",
        f"- mazes: open room with slip {SLIP} (S top-left, exit bottom-right); `keys` = the "
        "room cut in thirds by two wall rows with a red and a blue door, both keys in the top "
        "third (4 inventory layers)",
        f"- property for (c): `{PROPERTY}`, Storm sparse engine with sound numerics "
        "(`verifier.storm.model_checking`)",
        f"- times are wall clock, the minimum of {REPEATS_SMALL} runs up to {REPEAT_LIMIT:,} "
        f"states and of {REPEATS_LARGE} above (first, cold runs are in the JSON as "
        "`*_first_s`); baseline (d) one run, in a subprocess killed after "
        f"{args.baseline_timeout:g} s",
        f"- load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']} "
        "(other work on the machine skews times)",
        "- peak RSS: `getrusage(RUSAGE_SELF).ru_maxrss` read inside a fresh worker process per "
        "model (so numpy/scipy/Storm allocations count); *compile* = high-water mark after "
        "parse + compile, *+Δ* = that minus the mark after the imports (python + numpy + scipy "
        "+ verifier), *all* = at the end of (a)-(e) including Storm's copy of the model",
        "",
        "## Our route: TOML -> `parse_maze` -> `compile_maze` -> `to_storm` -> check -> "
        "`from_storm`",
        "",
        "| maze | states | choices | transitions | parse | compile | peak RSS compile (+Δ) "
        "| to_storm | check | Pmax | from_storm | peak RSS all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours = row["ours"]
        out.append(
            f"| {row['variant']} 10^{round(math.log10(row['target']))} | {ours['states']:,} "
            f"| {ours['choices']:,} | {ours['transitions']:,} | {seconds(ours['parse_s'])} "
            f"| {seconds(ours['compile_s'])} | {ours['rss_compile_mb']:.0f} MB "
            f"(+{ours['rss_compile_mb'] - ours['rss_start_mb']:.0f}) "
            f"| {seconds(ours['to_storm_s'])} | {seconds(ours['check_s'])} | {ours['value']:.6g} "
            f"| {seconds(ours['from_storm_s'])} | {ours['rss_peak_mb']:.0f} MB |"
        )
    out += [
        "",
        "## Baseline: `to_prism` -> file -> `load_prism` (Storm's parser) -> `build_prism` "
        "(Storm's PRISM builder)",
        "",
        "ratio A = (load + build) / (parse + compile); ratio B = (load + build) / (parse + "
        "compile + to_storm), i.e. against our route all the way to a Storm model.",
        "",
        "| maze | states | commands | PRISM file | to_prism | load | build | load + build "
        "| ratio A | ratio B | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours, base = row["ours"], row["prism"]
        name = f"{row['variant']} 10^{round(math.log10(row['target']))}"
        if base is None:
            out.append(f"| {name} | not tried (a smaller size timed out) |" + " |" * 9)
            continue
        if "timeout" in base:
            out.append(
                f"| {name} | timeout (> {base['timeout']:g} s, whole subprocess) |" + " |" * 9
            )
            continue
        total = base["load_s"] + base["build_s"]
        ratio_a = total / (ours["parse_s"] + ours["compile_s"])
        ratio_b = total / (ours["parse_s"] + ours["compile_s"] + ours["to_storm_s"])
        out.append(
            f"| {name} | {base['states']:,} | {base['prism_commands']:,} "
            f"| {size(base['prism_bytes'])} | {seconds(base['to_prism_s'])} "
            f"| {seconds(base['load_s'])} | {seconds(base['build_s'])} | {seconds(total)} "
            f"| {ratio_a:,.0f}x | {ratio_b:,.0f}x | {base['rss_peak_mb']:.0f} MB |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-states", type=int, default=1_000_000, help="largest target size")
    parser.add_argument("--quick", action="store_true", help=f"sizes up to {QUICK_MAX:,} only")
    parser.add_argument(
        "--baseline-timeout", type=float, default=120.0, help="seconds per PRISM-builder run"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument("--worker", choices=("ours", "prism"), help=argparse.SUPPRESS)
    parser.add_argument("--target", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        work = worker_ours if args.worker == "ours" else worker_prism
        print(json.dumps(work(args.target, args.variant)))
        return 0

    limit = min(args.max_states, QUICK_MAX) if args.quick else args.max_states
    targets = [t for t in TARGETS if t <= limit]
    variants = [v for v in args.variants.split(",") if v]
    meta = versions()
    meta["load_start"] = round(os.getloadavg()[0], 2)
    rows: list[dict] = []
    baseline_stopped = set()
    wall = time.perf_counter()
    for target in targets:
        for variant in variants:
            print(
                f"[{time.perf_counter() - wall:6.1f} s] {variant} ~{target:,} states: ours",
                file=sys.stderr,
                flush=True,
            )
            ours = run_worker("ours", target, variant, timeout=None)
            prism = None
            if variant not in baseline_stopped:
                print(
                    f"[{time.perf_counter() - wall:6.1f} s] {variant} ~{target:,} states: "
                    "Storm PRISM builder",
                    file=sys.stderr,
                    flush=True,
                )
                prism = run_worker("prism", target, variant, timeout=args.baseline_timeout)
                if "timeout" in prism:
                    baseline_stopped.add(variant)
                else:
                    assert prism["states"] == ours["states"], (variant, target, prism, ours)
                    prism["same_choices_and_transitions"] = all(
                        prism[count] == ours[count] for count in ("choices", "transitions")
                    )
                    for count in ("choices", "transitions"):
                        if prism[count] != ours[count]:
                            print(
                                f"warning: {variant}-{target}: {count} differ: PRISM "
                                f"{prism[count]} vs ours {ours[count]}",
                                file=sys.stderr,
                            )
            rows.append({"target": target, "variant": variant, "ours": ours, "prism": prism})
    meta["total_wall_s"] = time.perf_counter() - wall
    meta["load_end"] = round(os.getloadavg()[0], 2)
    meta["baseline_timeout_s"] = args.baseline_timeout
    meta["property"] = PROPERTY
    meta["peak_rss_method"] = "getrusage(RUSAGE_SELF).ru_maxrss inside a fresh worker process"

    table = render(meta, rows, args)
    table += f"\nTotal wall time of this run: {meta['total_wall_s']:.0f} s.\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_scaling.md").write_text(table, encoding="utf-8")
    (args.out / "compile_scaling.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out / 'compile_scaling.md'} and compile_scaling.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of the objective forms in the reward verdict: reach-avoid against G and an LTL
sequencing objective (Storm's automaton product, with F G idle at discount 1).

On random perfect mazes of about 10^4 and 10^5 states (`random_maze(n, n, 0, objects=2,
lava=2, slip=0.1)`), with the reward "step -0.0001, +1 at the exit" (the exit is worth its
hundreds of steps), discount 1 and 0.99, one fresh interpreter per measurement runs
`check_reward` for

    until     Pmax=? [ !"lava" U "exit" ]            (the plain verdict)
    globally  Pmax=? [ G !"lava" ]
    ltl       Pmax=? [ F ("object" & F "exit") ]      (visit an object, then the exit)

and records the wall time of `check_reward`, that of the optimal-policy solve alone (run
once before it, for scale: the verdict repeats it), the verdict, objective_min/max and the
peak RSS.

    python benchmarks/objective_scaling.py                 # 10^4 and 10^5
    python benchmarks/objective_scaling.py --quick         # 10^4 only

Writes benchmarks/results/objective_scaling.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import peak_rss_mb, versions  # noqa: E402

TARGETS = (10**4, 10**5)
OBJECTIVES = {
    "until": 'Pmax=? [ !"lava" U "exit" ]',
    "globally": 'Pmax=? [ G !"lava" ]',
    "ltl": 'Pmax=? [ F ("object" & F "exit") ]',
}
DISCOUNTS = (1.0, 0.99)
TIMEOUT = 900


def worker(target: int, objective: str, discount: float) -> dict:
    from verifier.analyses import reward_verdict as reward
    from verifier.engine import optimum as solve
    from verifier.inputs import maze_generate as generate
    from verifier.inputs.load import maze_environment
    from verifier.spec.reward_file import Reward, reward_vector

    side = round(math.sqrt(2 * target))
    side += side % 2 == 0
    maze = generate.random_maze(side, side, 0, objects=2, lava=2, slip=0.1)
    env = maze_environment(maze, "bench.toml", OBJECTIVES[objective])
    vector = reward_vector(env.mdp, Reward("r", "bench", discount, -1e-4, {"exit": 1.0}))
    started = time.perf_counter()
    solved = solve.solve(env.mdp, vector.values, discount)
    solve_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = reward.check_reward(env, vector, env.properties[0])
    return {
        "states": env.mdp.n_states,
        "objective": objective,
        "discount": discount,
        "seconds": time.perf_counter() - started,
        "solve_seconds": solve_seconds,
        "verdict": report.verdict,
        "objective_min": report.objective_min,
        "objective_max": report.objective_max,
        "peak_rss_mb": peak_rss_mb(),
        "iterations": solved.iterations,
    }


def measure(target: int, objective: str, discount: float) -> dict:
    command = [sys.executable, __file__, "--worker", str(target), objective, str(discount)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"target": target, "objective": objective, "discount": discount, "timeout": True}
    if done.returncode != 0:
        return {"target": target, "objective": objective, "discount": discount,
                "error": done.stderr.strip().splitlines()[-1:]}  # fmt: skip
    return {"target": target, **json.loads(done.stdout)}


def table(rows: list[dict]) -> str:
    lines = [
        "| states | discount | objective | check s | solve alone s | vs until | verdict "
        "| objective min, max | peak MB |",
        "|---:|---:|---|---:|---:|---:|---|---|---:|",
    ]
    plain = {(r["target"], r["discount"]): r for r in rows if r["objective"] == "until"}
    for r in rows:
        if "seconds" not in r:
            lines.append(f"| ~{r['target']} | {r['discount']} | {r['objective']} | "
                         f"{'timeout' if r.get('timeout') else r.get('error')} |||||")  # fmt: skip
            continue
        base = plain.get((r["target"], r["discount"]), {}).get("seconds")
        factor = f"{r['seconds'] / base:.1f}x" if base else "-"
        lines.append(
            f"| {r['states']} | {r['discount']} | {r['objective']} | {r['seconds']:.2f} | "
            f"{r['solve_seconds']:.2f} | {factor} | {r['verdict']} | "
            f"{r['objective_min']:.4g}, {r['objective_max']:.4g} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args()
    if args.worker:
        target, objective, discount = args.worker
        print(json.dumps(worker(int(target), objective, float(discount))))
        return
    targets = TARGETS[:1] if args.quick else TARGETS
    rows = [
        measure(t, o, d) for t in targets for d in DISCOUNTS for o in OBJECTIVES
    ]  # fmt: skip
    out = HERE / "results" / "objective_scaling"
    header = versions()
    out.with_suffix(".json").write_text(json.dumps({"machine": header, "rows": rows}, indent=1))
    text = (
        "# Objective forms in the reward verdict\n\n"
        f"{__doc__.split('python benchmarks')[0].split(chr(10), 2)[2].strip()}\n\n"
        f"{table(rows)}\n\n"
        f"Machine: {json.dumps(header)}\n"
    )
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

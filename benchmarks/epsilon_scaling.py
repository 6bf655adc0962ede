"""Cost of `verify reward --epsilon`, the margin and the trade-off curve next to the plain
reward verdict, at about 10^4 and 10^5 states.

Mazes as in reward_scaling.py: an open room and a random perfect maze (two lava dead ends),
slip 0.1, reward "step -0.01, arrive exit +1", discount 1, the maze's default objective
Pmax=? [ !"lava" U "exit" ]. Each measurement runs in a fresh interpreter with a timeout:

  plain     `check_reward(env, reward, prop)` without the margin (the verdict of today)
  margin    `near_optimal(..., epsilon=None, margin=True)`: the margin's one LP
  epsilon   `near_optimal(..., epsilon=0.01, margin=False)`: the least and greatest P(φ)
            within 0.01 of the optimum, two LPs
  tradeoff  `near_optimal(..., epsilon=None, margin=False, tradeoff=True)`: the curve

The LP rows after building the model, V* and the objective (those are in `plain`).

    python benchmarks/epsilon_scaling.py                   # 10^4 and 10^5, long at 10^5
    python benchmarks/epsilon_scaling.py --max-states 20000 --timeout 600

Writes benchmarks/results/epsilon_scaling.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import peak_rss_mb, run_worker, seconds, status, versions  # noqa: E402
from reward_scaling import maze_for  # noqa: E402  (the same open rooms and random mazes)

TARGETS = (10**4, 10**5)
VARIANTS = ("open", "random")
KINDS = ("plain", "margin", "epsilon", "tradeoff")
STEP, EXIT_BONUS, EPSILON = -0.01, 1.0, 0.01


def worker(kind: str, variant: str, target: int) -> dict:
    """One measurement in this process (module docstring)."""
    import numpy as np

    from verifier import storm
    from verifier.analyses import near_optimal
    from verifier.analyses import reward_verdict as reward_module
    from verifier.analyses.reward_verdict import check_reward
    from verifier.engine.optimum import solve
    from verifier.inputs.load import maze_environment
    from verifier.spec.objective import resolve_objective
    from verifier.spec.reward_file import Reward, reward_vector

    reward_module.MARGIN_STATES = 0  # `plain`: the verdict without the margin
    env = maze_environment(maze_for(variant, target), f"{variant}-{target}.toml")
    reward = reward_vector(env.mdp, Reward("r", "bench", 1.0, STEP, {"exit": EXIT_BONUS}))
    prop = env.properties[0]
    record = {"kind": kind, "variant": variant, "target": target, "states": env.mdp.n_states}
    if kind == "plain":
        start = time.perf_counter()
        report = check_reward(env, reward, prop)
        record.update(seconds=time.perf_counter() - start, verdict=report.verdict)
        record["objective"] = [report.objective_min, report.objective_max]
    else:
        solution = solve(env.mdp, reward.values, 1.0)
        objective = resolve_objective(env, prop)
        optimum = storm.check(env.storm_model, prop).values
        options = {
            "margin": {"epsilon": None, "margin": True},
            "epsilon": {"epsilon": EPSILON, "margin": False},
            "tradeoff": {"epsilon": None, "margin": False, "tradeoff": True},
        }[kind]
        start = time.perf_counter()
        found = near_optimal.near_optimal(env.mdp, reward, solution, objective, optimum, **options)
        record.update(seconds=time.perf_counter() - start, method=found.method)
        if kind == "margin":
            record["margin"] = found.margin
        elif kind == "epsilon":
            record["objective"] = [float(np.min(found.worst)), float(np.min(found.best))]
        else:
            record["breakpoints"] = len(found.tradeoff)
            record["tradeoff"] = found.tradeoff[:10]
    record["peak_rss_mb"] = peak_rss_mb()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "VARIANT", "TARGET"))
    parser.add_argument("--max-states", type=int, default=max(TARGETS))
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    if args.worker:
        kind, variant, target = args.worker
        print(json.dumps(worker(kind, variant, int(target))))
        return
    rows = []
    for variant in args.variants:
        for target in (t for t in TARGETS if t <= args.max_states):
            for kind in KINDS:
                record = run_worker(__file__, kind, [variant, str(target)], args.timeout)
                record.update(kind=kind, variant=variant, target=target)
                rows.append(record)
                print(json.dumps(record), flush=True)
    results = HERE / "results"
    document = {"versions": versions({"timeout_s": args.timeout}), "rows": rows}
    (results / "epsilon_scaling.json").write_text(json.dumps(document, indent=2) + "\n")
    (results / "epsilon_scaling.md").write_text(_markdown(rows, document["versions"]))


def _markdown(rows: list[dict], info: dict) -> str:
    lines = [
        "# --epsilon, margin and trade-off next to the plain reward verdict",
        "",
        f"{info['date']}, {info['cpu_model']} ({info['cpu_count']} cores, shared), "
        f"scipy {info['scipy']} (HiGHS), stormpy {info['stormpy']}, commit "
        f"{info['verifier_commit']}. Written by benchmarks/epsilon_scaling.py.",
        "",
        "| maze | states | plain verdict | margin LP | --epsilon 0.01 (2 LPs) | trade-off |",
        "|---|---|---|---|---|---|",
    ]
    by_size: dict[tuple, dict] = {}
    for row in rows:
        by_size.setdefault((row["variant"], row["target"]), {})[row["kind"]] = row
    for (variant, target), kinds in by_size.items():
        states = next((r["states"] for r in kinds.values() if "states" in r), f"~{target}")
        cells = []
        for kind in KINDS:
            row = kinds.get(kind)
            text = status(row) or seconds(row["seconds"])
            if row and "verdict" in row:
                text += f" ({row['verdict']})"
            if row and "margin" in row:
                text += f" (margin {row['margin']:.3g})"
            if row and "breakpoints" in row:
                text += f" ({row['breakpoints']} points)"
            cells.append(text)
        lines.append(f"| {variant} | {states} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

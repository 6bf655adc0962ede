"""Runtime of the goal-misgeneralization audit (`verify audit`) on sets of 20 mazes.

Ten training mazes have a red exit; ten deployment mazes have a blue exit and two colored
objects. All are seeded random perfect mazes (`maze_generate.random_maze`) of side n,
the odd number nearest sqrt(2 * target): about `target` states each. One run per size, in a
fresh interpreter (so its peak RSS is its own), through the command line's own code path:
`verify audit --train ... --deploy ... --json`, proxies, deployment checks and the fix from
recolored training variants, and the reward repair in the span of red, exit and the step
cost (`--features red,exit`), whose own time the JSON report gives.

    python benchmarks/audit_scaling.py                 # 20 mazes of 10^2, 10^3, 10^4 states
    python benchmarks/audit_scaling.py --sizes 10000   # the issue's figure alone

Writes benchmarks/results/audit_scaling.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import peak_rss_mb, run_worker, seconds, versions  # noqa: E402

MAZES_PER_SIDE = 10


def write_mazes(target: int, directory: Path) -> tuple[list[str], list[str]]:
    """Ten red-exit training mazes and ten blue-exit deployment mazes of about `target`
    states, as TOML files in `directory`."""
    from verifier.inputs.maze_generate import maze_to_toml, random_maze

    side = round(math.sqrt(2 * target))
    side += side % 2 == 0
    train, deploy = [], []
    for seed in range(MAZES_PER_SIDE):
        for names, color, objects, offset in ((train, "red", 0, 0), (deploy, "blue", 2, 100)):
            maze = random_maze(side, side, seed + offset, exit_color=color, objects=objects)
            path = directory / f"{maze.name}-{color}.toml"
            path.write_text(maze_to_toml(maze), encoding="utf-8")
            names.append(str(path))
    return train, deploy


def worker(train: list[str], deploy: list[str], report: str) -> dict:
    """One audit as `verify audit --features red,exit` does it (verifier.audit); its time,
    states, proxies and peak RSS."""
    import time

    import verifier

    start = time.perf_counter()
    audit = verifier.audit(train, deploy, features=["red", "exit"])
    elapsed = time.perf_counter() - start
    data = audit.to_dict()
    Path(report).write_text(json.dumps(data), encoding="utf-8")
    return {
        "exit_code": 0 if audit.passed else 1,
        "seconds": elapsed,
        "proxies": len(data["proxies"]),
        "risks": data["risks"],
        "fix": data["fix"]["environments"] if data["fix"] else [],
        "repair": data["repair"],
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="target states per maze")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per size")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", choices=("audit",), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        job = json.loads(args.job)
        print(json.dumps(worker(job["train"], job["deploy"], job["report"])))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="audit-scaling-") as scratch:
        for target in (int(s) for s in args.sizes.split(",")):
            directory = Path(scratch, str(target))
            directory.mkdir()
            train, deploy = write_mazes(target, directory)
            import verifier

            states = [env.mdp.n_states for env in verifier.load_environments(train + deploy)]
            job = {"train": train, "deploy": deploy, "report": str(directory / "audit.json")}
            record = run_worker(__file__, "audit", ["--job", json.dumps(job)], args.timeout)
            record.update(target=target, states_min=min(states), states_max=max(states))
            rows.append(record)
            print(json.dumps(record), file=sys.stderr)
    meta = versions()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit_scaling.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )
    lines = [
        "# Audit scaling",
        "",
        f"Measured {meta['date']} on {meta['cpu_model']} ({meta['cpu_count']} cpus), "
        f"python {meta['python']}, stormpy {meta['stormpy']}, commit {meta['verifier_commit']}.",
        "",
        "| mazes | states per maze | proxies | audit time | of which repair | peak RSS | risks "
        "| fix | repair |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        if "seconds" not in row:
            lines.append(f"| 20 | {row['states_min']:,} | | {row} | | | | | |")
            continue
        fix = ", ".join(Path(p).stem for p in row["fix"]) or "-"
        repair = row["repair"]
        weights = ", ".join(f"{k} {v:g}" for k, v in (repair["weights"] or {}).items())
        lines.append(
            f"| 20 | {row['states_min']:,} | {row['proxies']} | {seconds(row['seconds'])} | "
            f"{seconds(repair['seconds'])} | {row['peak_rss_mb']:.0f} MB | "
            f"{', '.join(row['risks']) or '-'} | {fix} | {repair['status']}: {weights} |"
        )
    text = "\n".join(lines) + "\n"
    (args.out / "audit_scaling.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

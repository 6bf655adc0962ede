"""Start-up cost of `verify`: wall time of short commands and what they import.

Each command runs in a fresh interpreter `--repeat` times (minimum and median wall time);
one extra run under `python -X importtime` lists the heavy modules it imported (torch,
onnxruntime, dask, z3, matplotlib must never appear for check, compile and generate) and
the cumulative import time of the big libraries. Floors (bare `import numpy`, `stormpy`,
...) show what no change to the verifier can remove.

    python benchmarks/startup.py                      # this checkout
    python benchmarks/startup.py --tree /tmp/old --label before   # another source tree

Results are appended to benchmarks/results/startup.json (one record per label) and the
table of every recorded label is rewritten in benchmarks/results/startup.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, versions

RESULTS = ROOT / "benchmarks" / "results"
HEAVY = ("torch", "onnxruntime", "dask", "distributed", "z3", "matplotlib", "gymnasium")
LIBRARIES = ("numpy", "scipy.sparse", "stormpy", "verifier.policy.load", "rich", "pebble", "torch")


def commands(scratch: Path) -> dict[str, list[str]]:
    """Name -> interpreter arguments. Paths are relative to the repository root."""
    policy = ["models/redblue/policy.pt", "--model", "models/redblue/train-01.toml"]
    return {
        "python -c pass": ["-c", "pass"],
        "import numpy": ["-c", "import numpy"],
        "import numpy, scipy.sparse": ["-c", "import numpy, scipy.sparse"],
        "import stormpy": ["-c", "import stormpy"],
        "import numpy, scipy.sparse, stormpy": ["-c", "import numpy, scipy.sparse, stormpy"],
        "import torch": ["-c", "import torch"],
        "import verifier": ["-c", "import verifier"],
        "verify --help": ["-m", "verifier.cli", "--help"],
        "verify check (maze)": ["-m", "verifier.cli", "check", "--model", "models/lava.toml"],
        "verify compile": [
            "-m",
            "verifier.cli",
            "compile",
            "models/lava.toml",
            "-o",
            str(scratch / "l.prism"),
        ],  # fmt: skip
        "verify generate 21x21": ["-m", "verifier.cli", "generate", "--size", "21x21"],
        "verify nope.pt (missing policy)": ["-m", "verifier.cli", "nope.pt", *policy[1:]],
        "verify policy.pt (torch)": ["-m", "verifier.cli", *policy],
    }


def run(arguments: list[str], tree: Path, importtime: bool = False) -> tuple[float, str]:
    """(wall seconds, stderr) of one fresh interpreter with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), *arguments]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    return time.perf_counter() - start, done.stderr


def imports(stderr: str) -> dict[str, float]:
    """Module -> cumulative import seconds, from `-X importtime` output."""
    found = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit():
            found[name.strip()] = int(cumulative) / 1e6
    return found


def measure(tree: Path, repeat: int) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="verify-startup-") as scratch:
        for name, arguments in commands(Path(scratch)).items():
            times = [run(arguments, tree)[0] for _ in range(1 if "torch" in name else repeat)]
            _, stderr = run(arguments, tree, importtime=True)
            modules = imports(stderr)
            rows[name] = {
                "min_s": min(times),
                "median_s": statistics.median(times),
                "runs": len(times),
                "heavy_imports": sorted(m for m in HEAVY if m in modules),
                "library_import_s": {m: modules[m] for m in LIBRARIES if m in modules},
            }
            print(f"{name:40s} {min(times):7.3f} s  {rows[name]['heavy_imports']}", flush=True)
    return rows


def table(records: dict) -> str:
    labels = list(records)
    lines = [
        "# Start-up of `verify`",
        "",
        "Wall time of a fresh interpreter per command (minimum of the runs; torch rows one run),",
        "and the heavy modules each imported (`python -X importtime`). Produced by",
        "`python benchmarks/startup.py`. Two CPU cores shared with other work: compare rows",
        "within one label, and labels by their floors.",
        "",
    ]
    for label in labels:
        info = records[label]["versions"]
        lines.append(
            f"- {label}: tree `{records[label]['tree']}`, commit {info['verifier_commit']}, "
            f"{info['date']}, load average {records[label]['load']:.2f}"
        )
    lines += ["", "| command | " + " | ".join(labels) + " | heavy imports |"]
    lines.append("|---|" + "---:|" * len(labels) + "---|")
    names = list(records[labels[-1]]["rows"])
    for name in names:
        cells = []
        for label in labels:
            row = records[label]["rows"].get(name)
            cells.append(f"{row['min_s']:.2f} s" if row else "-")
        heavy = ", ".join(records[labels[-1]]["rows"][name]["heavy_imports"]) or "none"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {heavy} |")
    lines += ["", "Cumulative import time of the big libraries, last label:", ""]
    lines += ["| command | " + " | ".join(LIBRARIES) + " |", "|---|" + "---:|" * len(LIBRARIES)]
    for name in names:
        spent = records[labels[-1]]["rows"][name]["library_import_s"]
        cells = [f"{spent[m]:.2f}" if m in spent else "-" for m in LIBRARIES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree to import from")
    parser.add_argument("--label", default="after", help="name of this record")
    parser.add_argument("--commit", help="the tree's commit, when it is not this checkout")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    store = RESULTS / "startup.json"
    records = json.loads(store.read_text()) if store.is_file() else {}
    records[args.label] = {
        "tree": str(args.tree),
        "load": os.getloadavg()[0],
        "versions": versions({"verifier_commit": args.commit} if args.commit else None),
        "rows": measure(args.tree.resolve(), args.repeat),
    }
    store.write_text(json.dumps(records, indent=2) + "\n")
    (RESULTS / "startup.md").write_text(table(records))


if __name__ == "__main__":
    main()

"""What containment costs: loading and running a policy in a child process versus before.

Since the policy file is read, checked and run only in forked children (one to load and
inspect it, one per model to run it), `load_policy` and `decide` pay a fork and a reload
each. This measures both steps, per policy, in two source trees (`--before`, a checkout of
the commit before containment, and this checkout), each in a fresh interpreter with torch
already imported and every step repeated (minimum and median), plus the wall time of the
whole `verify POLICY --model MAZE` command.

    git worktree add /tmp/before 371ca9e      # or: git archive 371ca9e | tar -x -C /tmp/before
    python benchmarks/policy_load.py --before /tmp/before

Results go to benchmarks/results/policy_load.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from harness import ROOT, seconds, versions

RESULTS = ROOT / "benchmarks" / "results"
REDBLUE = ROOT / "models" / "redblue"
DEPLOY = [str(p) for p in sorted(REDBLUE.glob("*.toml"))]

WORKER = textwrap.dedent(
    """
    import json, statistics, sys, time, warnings
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)
    from verifier.inputs.environment import load_environment
    from verifier.policy.load import decide, load_policy
    policy_path, repeat, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    envs = [load_environment(m) for m in models]
    loads, decides = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            policy = load_policy(policy_path)
        except Exception as exc:
            print(json.dumps({"refused": str(exc).splitlines()[0]}))
            sys.exit(0)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        for env in envs:
            decide(policy, env)
        decides.append(time.perf_counter() - start)
    print(json.dumps({"load": loads, "decide": decides}))
    """
)


def _policies(scratch: Path) -> dict[str, tuple[str, list[str]]]:
    """Name -> (policy file, models)."""
    import torch

    torch.manual_seed(0)
    meta = {"observation": "valuation", "actions": ["up", "down", "left", "right"]}
    extra = {"verifier.json": json.dumps({**meta, "output": "logits"})}
    mlp = torch.nn.Sequential(
        torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4)
    ).eval()
    torch.jit.save(torch.jit.script(mlp), str(scratch / "mlp.pt"), _extra_files=extra)
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    encoder = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8)), torch.nn.TransformerEncoder(layer, 2), torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval()  # fmt: skip
    torch.jit.save(torch.jit.script(encoder), str(scratch / "encoder.pt"), _extra_files=extra)
    torch.onnx.export(
        mlp,
        (torch.zeros(2, 8),),
        str(scratch / "mlp.onnx"),
        input_names=["obs"],
        output_names=["logits"],
        dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    import onnx

    model = onnx.load(str(scratch / "mlp.onnx"))
    entry = model.metadata_props.add()
    entry.key, entry.value = "verifier.json", extra["verifier.json"]
    onnx.save(model, str(scratch / "mlp.onnx"))
    lava = [str(ROOT / "models" / "lava.toml")]
    return {
        "redblue policy.pt (grid CNN), 1 maze": (str(REDBLUE / "policy.pt"), DEPLOY[:1]),
        "redblue policy.pt, 5 mazes": (str(REDBLUE / "policy.pt"), DEPLOY),
        "MLP .pt, 1 maze": (str(scratch / "mlp.pt"), lava),
        "MLP .onnx, 1 maze": (str(scratch / "mlp.onnx"), lava),
        "TransformerEncoder .pt (2 layers), 1 maze": (str(scratch / "encoder.pt"), lava),
    }


def _environment(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}


def measure(tree: Path, policies: dict, repeat: int) -> dict:
    rows = {}
    for name, (policy, models) in policies.items():
        done = subprocess.run(
            [sys.executable, "-c", WORKER, policy, str(repeat), *models],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_environment(tree),
        )
        if done.returncode:
            raise SystemExit(f"{tree}: {name}: {done.stderr.strip().splitlines()[-1]}")
        times = json.loads(done.stdout.strip().splitlines()[-1])
        if "refused" in times:
            rows[name] = {"refused": times["refused"]}
            print(f"{tree}: {name}: refused", flush=True)
            continue
        rows[name] = {
            step: {"min_s": min(values), "median_s": statistics.median(values)}
            for step, values in times.items()
        }
        print(f"{tree}: {name}: {rows[name]}", flush=True)
    walls = []
    command = ["-m", "verifier.cli", str(REDBLUE / "policy.pt"), "--model", DEPLOY[0]]
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, *command], capture_output=True, cwd=ROOT, env=_environment(tree)
        )
        walls.append(time.perf_counter() - start)
    rows["verify redblue/policy.pt --model deploy-01.toml (wall)"] = {
        "command": {"min_s": min(walls), "median_s": statistics.median(walls)}
    }
    return rows


def table(record: dict) -> str:
    before, after = record["before"], record["after"]
    lines = [
        "# Loading and running a policy: contained (after) versus in-process (before)",
        "",
        f"Before: tree `{record['before_tree']}`; after: commit "
        f"{record['versions']['verifier_commit']}, {record['versions']['date']}, load average "
        f"{record['load']:.2f} (two CPU cores shared with other work). Minimum (median) of "
        f"{record['repeat']} runs, torch already imported. `load` is `load_policy`, `decide` "
        "is `decide` on every model listed. Produced by `python benchmarks/policy_load.py`.",
        "",
        "| policy | step | before | after | after - before |",
        "|---|---|---:|---:|---:|",
    ]
    for name, steps in after.items():
        for step, cell in steps.items():
            old = before[name].get(step)
            if old is None:
                shown, change = "refused", "-"
            else:
                shown = f"{seconds(old['min_s'])} ({seconds(old['median_s'])})"
                change = seconds(cell["min_s"] - old["min_s"])
            lines.append(
                f"| {name} | {step} | {shown} "
                f"| {seconds(cell['min_s'])} ({seconds(cell['median_s'])}) | {change} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree before")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verify-policy-load-") as scratch:
        policies = _policies(Path(scratch))
        before = measure(args.before.resolve(), policies, args.repeat)
        after = measure(ROOT, policies, args.repeat)
    record = {
        "before_tree": str(args.before),
        "load": os.getloadavg()[0],
        "repeat": args.repeat,
        "versions": versions(),
        "before": before,
        "after": after,
    }
    (RESULTS / "policy_load.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "policy_load.md").write_text(table(record))
    print(table(record))


if __name__ == "__main__":
    main()

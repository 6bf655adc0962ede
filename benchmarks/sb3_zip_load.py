"""Loading a Stable-Baselines3 `.zip` agent: the time from the start of `verify` to the
network's first batch, against the same agent exported as TorchScript (`.pt`).

The agent is the shipped DistShift PPO agent. models/minigrid/distshift-ppo.zip is SB3's own
`model.save` of the weights of models/minigrid/distshift-ppo.pt; `--resave` writes it again:
the PPO of benchmarks/train_minigrid.py (MlpPolicy 64-64 tanh on the flattened full grid,
three actions), untrained, its policy's state dict replaced by the export's weights (a
strict load), then `model.save`. Before measuring, the script checks that the zip and the
export decide alike on every state of DistShift1 and DistShift2.

Each measurement is a fresh interpreter (imports included, one torch thread) that times,
from its first line: the verifier's imports; `import torch`; `load_policy` (for the zip:
reading `data` and `policy.pth`, the rebuild, the strict load, scripting and the operator
check; for the `.pt`: the archive check, `torch.jit.load` and the operator check);
`load_environment` of DistShift1; and `decide`, whose first batch is the whole level here
(121 states: the interface check, the observations and the network in the contained
child). Then the wall time of the whole `verify POLICY --model distshift1.toml` command.
Each is run `--repeat` times, the two formats in turn; the table gives the median and
the minimum.

    python benchmarks/sb3_zip_load.py [--repeat 5] [--resave]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, seconds, versions

RESULTS = ROOT / "benchmarks" / "results"
AGENT = ROOT / "models" / "minigrid" / "distshift-ppo"
LEVEL = ROOT / "models" / "minigrid" / "distshift1.toml"
LEVELS = (LEVEL, ROOT / "models" / "minigrid" / "distshift2.toml")
PHASES = ("import", "import_torch", "load_policy", "load_environment", "first_batch")

WORKER = """
import time
started = time.perf_counter()
import json, sys
from verifier.inputs.load import load_environment
from verifier.policy.load import batch_states, decide, load_policy
imported = time.perf_counter()
import torch
torch_imported = time.perf_counter()
policy = load_policy(sys.argv[1])
loaded = time.perf_counter()
env = load_environment(sys.argv[2])
built = time.perf_counter()
decide(policy, env)
done = time.perf_counter()
print(json.dumps({"import": imported - started, "import_torch": torch_imported - imported,
                  "load_policy": loaded - torch_imported,
                  "load_environment": built - loaded, "first_batch": done - built,
                  "batch_states": min(batch_states(policy, env), env.mdp.n_states)}))
"""


def resave() -> Path:
    """models/minigrid/distshift-ppo.zip from the shipped export's weights."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from train_minigrid import make_env

    torch.set_num_threads(1)
    model = PPO(
        "MlpPolicy",
        make_vec_env(make_env, n_envs=8, seed=0),
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        gamma=0.99,
        learning_rate=3e-4,
        ent_coef=0.02,
        seed=0,
        device="cpu",
        verbose=0,
    )
    exported = torch.jit.load(str(AGENT.with_suffix(".pt")), map_location="cpu")
    weights = {k.removeprefix("policy."): v for k, v in exported.state_dict().items()}
    model.policy.load_state_dict(weights, strict=True)
    model.save(AGENT.with_suffix(".zip"))
    return AGENT.with_suffix(".zip")


def same_decisions() -> dict:
    """Per level: the number of states, and whether the zip and the export take the same
    action in every one."""
    import numpy as np

    from verifier.inputs.load import load_environment
    from verifier.policy.decide import decide
    from verifier.policy.load import load_policy

    agree = {}
    for level in LEVELS:
        env = load_environment(level)
        zipped = decide(load_policy(AGENT.with_suffix(".zip")), env).choice_probs
        exported = decide(load_policy(AGENT.with_suffix(".pt")), env).choice_probs
        agree[level.name] = {
            "states": env.mdp.n_states,
            "same": bool(np.array_equal(zipped, exported)),
        }
    return agree


def phases(policy: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(policy), str(LEVEL)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def command(policy: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "verifier.cli", str(policy), "--model", str(LEVEL)],
        capture_output=True,
        cwd=ROOT,
        env=env,
    )
    return time.perf_counter() - started


def measure(repeat: int) -> dict:
    """Each format `repeat` times, the formats interleaved so that both meet the same load."""
    suffixes = (".zip", ".pt")
    runs: dict[str, list] = {suffix: [] for suffix in suffixes}
    walls: dict[str, list] = {suffix: [] for suffix in suffixes}
    for _ in range(repeat):
        for suffix in suffixes:
            runs[suffix].append(phases(AGENT.with_suffix(suffix)))
            walls[suffix].append(command(AGENT.with_suffix(suffix)))
    rows = {}
    for suffix in suffixes:
        row: dict = {
            phase: {
                "median_s": statistics.median(r[phase] for r in runs[suffix]),
                "min_s": min(r[phase] for r in runs[suffix]),
            }
            for phase in PHASES
        }
        starts = [sum(r[p] for p in PHASES) for r in runs[suffix]]
        row["start_to_first_batch"] = {"median_s": statistics.median(starts), "min_s": min(starts)}
        row["verify_command"] = {
            "median_s": statistics.median(walls[suffix]),
            "min_s": min(walls[suffix]),
        }
        row["batch_states"] = runs[suffix][0]["batch_states"]
        row["file_bytes"] = AGENT.with_suffix(suffix).stat().st_size
        rows[suffix] = row
        print(suffix, json.dumps(row), flush=True)
    return rows


def table(record: dict) -> str:
    info, rows = record["versions"], record["rows"]
    lines = [
        "# Loading an SB3 `.zip` agent",
        "",
        "The shipped DistShift PPO agent as SB3's `model.save` zip and as its TorchScript export,",
        "verified on `models/minigrid/distshift1.toml` (121 states, one batch). Produced by",
        f"`python benchmarks/sb3_zip_load.py`: commit {info['verifier_commit']}, {info['date']},",
        f"load average {record['load']:.2f} (2 shared cores), {record['repeat']} fresh "
        "interpreters per row; median (minimum).",
        "",
        "Same decisions as the export on every state: "
        + ", ".join(
            f"{name} {'yes' if a['same'] else 'NO'} ({a['states']} states)"
            for name, a in record["same_decisions"].items()
        ),
        "",
        "| step | `.zip` | `.pt` |",
        "|---|---:|---:|",
    ]
    for step in (*PHASES, "start_to_first_batch", "verify_command"):
        cells = [
            f"{seconds(rows[s][step]['median_s'])} ({seconds(rows[s][step]['min_s'])})"
            for s in (".zip", ".pt")
        ]
        lines.append(f"| {step.replace('_', ' ')} | {cells[0]} | {cells[1]} |")
    lines.append(
        f"| file size | {rows['.zip']['file_bytes']:,} B | {rows['.pt']['file_bytes']:,} B |"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--resave", action="store_true", help="write the zip from the export")
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.resave or not AGENT.with_suffix(".zip").is_file():
        print(f"wrote {resave()}")
    record = {
        "load": os.getloadavg()[0],
        "repeat": args.repeat,
        "versions": versions(),
        "same_decisions": same_decisions(),
    }
    record["rows"] = measure(args.repeat)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sb3_zip_load.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "sb3_zip_load.md").write_text(table(record))
    print(table(record))


if __name__ == "__main__":
    main()

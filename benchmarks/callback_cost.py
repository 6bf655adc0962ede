"""The cost of verifying while training: one VerifyCallback check, as a fraction of the
training time between two checks, on the shipped DistShift example.

The agent and its training are benchmarks/train_minigrid.py's (SB3 PPO MlpPolicy, 8 envs,
n_steps 128, batch 256, 4 epochs, seed 0, CPU, one torch thread), the environments the
shipped models/minigrid/distshift1.toml and distshift2.toml (121 and 124 states), the
training reward `env`. One run of `--steps` steps checks every `--every` steps; each check
is timed by the callback (`Verification.seconds`: the policy built from the model, its
observations and network on every state of both levels, the induced chains, the goals),
and the training time per step is the run's wall time less the checks, over its steps.
The fraction at a check interval N is (seconds of one check) / (N x training seconds per
step); the run's own interval is measured, the others follow from the same two numbers.
Loading the two levels (enumerating them) happens once, before training, and is reported
apart.

    python benchmarks/callback_cost.py [--steps 20480] [--every 2048]

Writes benchmarks/results/callback_cost.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from harness import ROOT, versions
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from train_minigrid import make_env, new_ppo

from verifier import load_environments
from verifier.integrations.sb3 import VerifyCallback

RESULTS = ROOT / "benchmarks" / "results"
LEVELS = [ROOT / "models/minigrid/distshift1.toml", ROOT / "models/minigrid/distshift2.toml"]
INTERVALS = (2_048, 10_240, 51_200)  # steps between two checks, for the table


def measure(steps: int, every: int) -> dict:
    torch.set_num_threads(1)
    started = time.perf_counter()
    levels = load_environments(LEVELS, notify=lambda text: None)
    load_s = time.perf_counter() - started
    vec = make_vec_env(make_env, n_envs=8, seed=0)
    model = new_ppo(vec, 0)
    model.set_logger(Logger(folder=None, output_formats=[]))
    gate = VerifyCallback(levels, reward="env", every=every)
    started = time.perf_counter()
    model.learn(steps, callback=gate)
    learn_s = time.perf_counter() - started
    checks = [check.seconds for check in gate.history]
    train_per_step = (learn_s - sum(checks)) / model.num_timesteps
    check_s = statistics.median(checks)
    return {
        "steps": model.num_timesteps,
        "every": every,
        "levels": {env.path.name: env.mdp.n_states for env in levels},
        "load_levels_s": load_s,
        "learn_s": learn_s,
        "checks": len(checks),
        "check_s": checks,
        "check_median_s": check_s,
        "train_s_per_step": train_per_step,
        "verdicts": [check.verdicts for check in gate.history],
        "fraction": {n: check_s / (n * train_per_step) for n in sorted({*INTERVALS, every})},
    }


def table(record: dict) -> str:
    info, row = record["versions"], record["result"]
    checks = row["check_s"]
    lines = [
        "# Verifying while training: the cost of one check",
        "",
        "`python benchmarks/callback_cost.py` (module docstring: what is timed). "
        f"{info['date']}, commit {info['verifier_commit']}, {info['cpu_count']} CPUs shared "
        f"with other work (load average {record['load']:.2f} at the start): compare the "
        "fractions, not the seconds, across machines.",
        "",
        f"- levels: {', '.join(f'{k} ({v} states)' for k, v in row['levels'].items())}, "
        f"loaded and enumerated once before training in {row['load_levels_s']:.2f} s",
        f"- training: {row['steps']:,} steps in {row['learn_s']:.1f} s with {row['checks']} "
        f"checks, {row['train_s_per_step'] * 1000:.2f} ms per step without them",
        f"- one check (both levels): median {row['check_median_s']:.2f} s "
        f"(min {min(checks):.2f}, max {max(checks):.2f}, {len(checks)} checks)",
        "",
        "| check every | training between two checks | one check | fraction |",
        "|---:|---:|---:|---:|",
    ]
    for n, fraction in row["fraction"].items():
        between = int(n) * row["train_s_per_step"]
        measured = " (this run)" if int(n) == row["every"] else ""
        lines.append(
            f"| {int(n):,} steps{measured} | {between:.1f} s | {row['check_median_s']:.2f} s "
            f"| {fraction:.1%} |"
        )
    lines += ["", "Verdicts at each check (the run's own):", ""]
    for index, verdicts in enumerate(row["verdicts"], 1):
        step = index * row["every"]
        lines.append(f"- {step:,}: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_480)
    parser.add_argument("--every", type=int, default=2_048)
    args = parser.parse_args()
    record = {
        "versions": versions(),
        "load": os.getloadavg()[0],
        "result": measure(args.steps, args.every),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "callback_cost.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "callback_cost.md").write_text(table(record))
    print(table(record))


if __name__ == "__main__":
    main()

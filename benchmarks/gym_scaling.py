"""Enumeration and policy verification on the largest MiniGrid levels we support.

For each level (seed 0, all 7 actions) one run measures:
  (a) enumeration: `verifier.load_environments("gym:ID")`, i.e. the BFS through
      the level's own `step`, the 100-sample deep-copy self-check and the conversion to
      Storm: states, transitions, wall and CPU seconds, `step` calls per second;
  (b) `Pmax=? [ !"lava" U "goal" ]` checked by Storm;
  (c) policy verification through the `env` observation: an SB3 PPO MlpPolicy (64-64 tanh,
      seeded, untrained: the cost does not depend on the weights) on FullyObsWrapper ->
      ImgObsWrapper -> FlattenObservation, exported with verifier.policy.export.export_sb3, then
      `verifier.policy.load.decide` (observations of every state, in batches, and the network)
      and `verifier.analyses.policy_verdict.classify` (the induced chain checked by Storm).

    python benchmarks/gym_scaling.py            # the default levels, a few minutes
    python benchmarks/gym_scaling.py --levels MiniGrid-DoorKey-16x16-v0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

LEVELS = (
    "MiniGrid-DoorKey-8x8-v0",
    "MiniGrid-MultiRoom-N6-v0",
    "MiniGrid-UnlockPickup-v0",
    "MiniGrid-KeyCorridorS3R3-v0",
)
WRAPPERS = (
    "minigrid.wrappers.FullyObsWrapper",
    "minigrid.wrappers.ImgObsWrapper",
    "gymnasium.wrappers.FlattenObservation",
)
RESULTS = Path(__file__).parent / "results"


def measure(level: str) -> dict:
    from stable_baselines3 import PPO

    from verifier import load_environments, load_policy, storm
    from verifier.analyses.policy_verdict import classify
    from verifier.inputs.gym import make_instance
    from verifier.policy.decide import decide
    from verifier.policy.export import export_sb3

    row: dict = {"level": level}
    wall, cpu = time.perf_counter(), time.process_time()
    (env,) = load_environments(f"gym:{level}", notify=lambda text: None)
    row.update(
        states=env.mdp.n_states,
        transitions=env.mdp.n_transitions,
        enumerate_wall_s=round(time.perf_counter() - wall, 2),
        enumerate_cpu_s=round(time.process_time() - cpu, 2),
        steps_per_s=round(env.gym.steps_per_second),
    )
    started = time.perf_counter()
    row["pmax"] = storm.check(env.storm_model, env.properties[0]).value
    row["check_s"] = round(time.perf_counter() - started, 3)

    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "level.toml"
        listed = ", ".join(f'"{w}"' for w in WRAPPERS)
        toml.write_text(f'[gymnasium]\nid = "{level}"\nseed = 0\nwrappers = [{listed}]\n')
        wall = time.perf_counter()
        (wrapped_env,) = load_environments(toml, notify=lambda text: None)
        row["enumerate_wrapped_wall_s"] = round(time.perf_counter() - wall, 2)
        train_env = make_instance(wrapped_env.gym.instance.spec, 0).env
        model = PPO("MlpPolicy", train_env, seed=0, device="cpu")
        network = export_sb3(model, Path(tmp) / "policy.pt", train_env)
        started = time.perf_counter()
        policy = load_policy(network)
        decisions = decide(policy, wrapped_env)
        row["decide_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        report = classify(wrapped_env, str(network), decisions, env.properties[0])
        row["classify_s"] = round(time.perf_counter() - started, 2)
        row["policy_verdict"] = report.verdict
        row["policy_value"] = report.value
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", default=list(LEVELS))
    parser.add_argument("--out", default=str(RESULTS / "gym_scaling"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for level in args.levels:
        rows.append(measure(level))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

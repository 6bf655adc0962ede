"""Train a small PPO agent on MiniGrid-DistShift1-v0 (seeded, CPU, one torch thread) and ship
it as models/minigrid/distshift-ppo.pt, for `verify` on DistShift1 and DistShift2.

The agent sees the full grid (FullyObsWrapper -> ImgObsWrapper -> FlattenObservation, 189
numbers) and acts with the three navigation actions (left, right, forward), as in the
research note's run (SB3 PPO MlpPolicy 64-64 tanh, 8 envs, n_steps 128, batch 256, 4
epochs, entropy 0.02), and SB3's own zip of the agent beside it (`verify` reads both). The
model TOMLs beside it name the same wrappers and actions.

    python benchmarks/train_minigrid.py [--steps 250000] [--out models/minigrid/distshift-ppo.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid ids)
import torch
from minigrid.wrappers import FullyObsWrapper, ImgObsWrapper
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from verifier.policy.export import export_sb3

ACTIONS = ["left", "right", "forward"]


class NavigationActions(gym.ActionWrapper):
    """Only MiniGrid's first three actions (left, right, forward), whose ids are unchanged."""

    def __init__(self, env):
        super().__init__(env)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))

    def action(self, action):
        return int(action)


def make_env(env_id: str = "MiniGrid-DistShift1-v0"):
    return NavigationActions(
        gym.wrappers.FlattenObservation(ImgObsWrapper(FullyObsWrapper(gym.make(env_id))))
    )


def new_ppo(vec, seed: int) -> PPO:
    """PPO as the shipped MiniGrid agents are trained (DistShift, LavaGap) and as
    callback_cost.py times it: 8 environments of 128 steps each, on the CPU."""
    return PPO(
        "MlpPolicy",
        vec,
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        gamma=0.99,
        learning_rate=3e-4,
        ent_coef=0.02,
        seed=seed,
        device="cpu",
        verbose=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="models/minigrid/distshift-ppo.pt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, cpu = time.perf_counter(), time.process_time()
    vec = make_vec_env(make_env, n_envs=8, seed=args.seed)
    model = new_ppo(vec, args.seed)
    model.learn(args.steps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export_sb3(model, out, make_env(), actions=ACTIONS)
    model.save(out.with_suffix(".zip"))
    print(
        f"trained {args.steps} steps in {time.perf_counter() - started:.0f} s wall, "
        f"{time.process_time() - cpu:.0f} s CPU; wrote {out} ({out.stat().st_size} bytes) "
        f"and SB3's own {out.with_suffix('.zip')}"
    )


if __name__ == "__main__":
    main()

"""Train a small PPO agent on MiniGrid-LavaGapS5-v0 (seeded, CPU, one torch thread) and ship
it twice: models/minigrid/lavagap-ppo.zip (SB3's own `model.save`, what a user has) and
models/minigrid/lavagap-ppo.pt (`export_sb3`, what `verify` reads).

The agent sees MiniGrid's egocentric 7x7 view (ImgObsWrapper -> FlattenObservation, 147
numbers; no FullyObsWrapper) and acts with the three navigation actions (left, right,
forward; train_minigrid.py's NavigationActions). PPO MlpPolicy 64-64 tanh, 8 envs, n_steps
128, batch 256, 4 epochs, entropy 0.02, as in train_minigrid.py. Every reset of a training
env draws a new layout (LavaGapS5 has three: the gap in row 1, 2 or 3 of the lava column).

At the end the agent is rolled out in gymnasium (`model.predict(obs, deterministic=True)`,
the env's own max_steps) from the reset of each of LavaGapS5's seeds 0..19; the script
fails (exit 1) unless every rollout ends at the goal. `lavagap5.toml` (seed 0) and
`lavagap6.toml` (seeds 0..9) beside the models name the same wrappers and actions;
benchmarks/lavagap_rollouts.py tabulates what the agent really does on both.

    python benchmarks/train_lavagap.py [--steps 100000] [--out models/minigrid/lavagap-ppo]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import gymnasium as gym  # noqa: E402
import minigrid  # noqa: E402, F401  (registers the MiniGrid ids)
from minigrid.wrappers import ImgObsWrapper  # noqa: E402
from train_minigrid import ACTIONS, NavigationActions, new_ppo  # noqa: E402

TRAIN_ID = "MiniGrid-LavaGapS5-v0"
CHECK_SEEDS = range(20)


def make_env(env_id: str = TRAIN_ID):
    """The env as the agent sees it: egocentric view, flattened (147 numbers), 3 actions."""
    return NavigationActions(gym.wrappers.FlattenObservation(ImgObsWrapper(gym.make(env_id))))


def rollout(model, env_id: str, seed: int) -> dict:
    """One deterministic episode from `env.reset(seed=seed)`, up to the env's own max_steps.

    `end` is "goal" (terminated with a positive reward), "lava" (terminated on a lava tile)
    or "timeout" (truncated at max_steps); `cells` are the (x, y) cells the agent stood on,
    in order from the start, a cell repeated only when the agent came back to it; `actions`
    are the action names taken. A LavaGap level does not change while the agent walks and
    the agent does not see the step counter, so once the agent's (x, y, dir) repeats the
    episode is periodic: `loop` is then the cells of that cycle from its first visit (the
    agent enters it after `loop_after` steps, having stood on `before_loop`), else None."""
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    level = env.unwrapped
    states = [(*(int(v) for v in level.agent_pos), int(level.agent_dir))]
    actions: list[str] = []
    reward, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        action, _ = model.predict(obs, deterministic=True)
        actions.append(ACTIONS[int(action)])
        obs, reward, terminated, truncated, _ = env.step(int(action))
        states.append((*(int(v) for v in level.agent_pos), int(level.agent_dir)))
    if terminated and reward > 0:
        end = "goal"
    elif terminated:
        tile = level.grid.get(*level.agent_pos)
        end = "lava" if tile is not None and tile.type == "lava" else "terminated"
    else:
        end = "timeout"
    loop, loop_after, before_loop = None, None, None
    first: dict[tuple[int, int, int], int] = {}
    for t, state in enumerate(states):
        if state in first:
            loop_after = first[state]
            loop = _cells(states[loop_after:t])
            before_loop = _cells(states[:loop_after])
            break
        first[state] = t
    env.close()
    return {
        "env": env_id,
        "seed": seed,
        "end": end,
        "steps": len(actions),
        "max_steps": int(level.max_steps),
        "reward": float(reward),
        "gap": [int(v) for v in level.gap_pos],
        "goal": [int(v) for v in level.goal_pos],
        "cells": _cells(states),
        "loop": loop,
        "loop_after": loop_after,
        "before_loop": before_loop,
        "actions": actions,
    }


def _cells(states: list[tuple[int, int, int]]) -> list[list[int]]:
    """The (x, y) of `states`, a cell repeated only when the agent came back to it."""
    cells: list[list[int]] = []
    for x, y, _ in states:
        if not cells or cells[-1] != [x, y]:
            cells.append([x, y])
    return cells


def main() -> None:
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from verifier.policy.export import export_sb3

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default="models/minigrid/lavagap-ppo", help="path without suffix (.zip, .pt)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, cpu = time.perf_counter(), time.process_time()
    vec = make_vec_env(make_env, n_envs=8, seed=args.seed)
    model = new_ppo(vec, args.seed)
    model.learn(args.steps)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    archive, network = out.with_suffix(".zip"), out.with_suffix(".pt")
    model.save(archive)
    export_sb3(model, network, make_env(), actions=ACTIONS)
    print(
        f"trained {model.num_timesteps} steps in {wall:.0f} s wall, {cpu:.0f} s CPU; wrote "
        f"{archive} ({archive.stat().st_size} bytes), {network} ({network.stat().st_size} bytes)"
    )
    runs = [rollout(model, TRAIN_ID, seed) for seed in CHECK_SEEDS]
    for run in runs:
        print(f"{TRAIN_ID} seed {run['seed']}: {run['end']} after {run['steps']} steps")
    failed = [run["seed"] for run in runs if run["end"] != "goal"]
    if failed:
        sys.exit(f"not solved: {TRAIN_ID} seeds {failed} do not end at the goal")
    print(
        f"solved: {TRAIN_ID} seeds {CHECK_SEEDS.start}..{CHECK_SEEDS.stop - 1} all end at the goal"
    )


if __name__ == "__main__":
    main()

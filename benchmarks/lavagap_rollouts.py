"""What the shipped LavaGap agent really does: deterministic gymnasium rollouts, seed by seed.

The agent is models/minigrid/lavagap-ppo.zip (benchmarks/train_lavagap.py), loaded with SB3's
own `PPO.load` as a user would. For each of LavaGapS6's seeds 0..9 (models/minigrid/
lavagap6.toml) and LavaGapS5's seeds 0..9 it is rolled out from `env.reset(seed=seed)` with
`model.predict(obs, deterministic=True)` until the episode ends or the env's own max_steps
(S5: 100, S6: 144) truncates it, and the table records how it ends (goal, lava, timeout),
the steps taken and the (x, y) cells visited (MiniGrid's x = column, y = row; the agent
starts at (1, 1) facing east; the lava column's gap and the goal are given per seed). A run
that times out is periodic (the level is static and the agent does not see the counter):
its cells are given up to the loop and the loop once.

The same episodes are replayed with the exported network models/minigrid/lavagap-ppo.pt
(TorchScript, argmax of its logits, i.e. what `verify` reads); every one must take the same
actions (column "pt"), else the script exits 1.

    python benchmarks/lavagap_rollouts.py

Writes benchmarks/results/lavagap_rollouts.md and .json and prints the table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (HERE, ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness import versions  # noqa: E402
from train_lavagap import rollout  # noqa: E402

AGENT = ROOT / "models" / "minigrid" / "lavagap-ppo"
LEVELS = (("MiniGrid-LavaGapS6-v0", range(10)), ("MiniGrid-LavaGapS5-v0", range(10)))
RESULTS = HERE / "results"


class Exported:
    """The exported TorchScript network behind SB3's `predict` interface: argmax of logits."""

    def __init__(self, path: Path):
        import torch

        self.network = torch.jit.load(str(path))

    def predict(self, obs, deterministic: bool = True):
        import torch

        with torch.no_grad():
            logits = self.network(torch.as_tensor(obs[None]))
        return int(logits.argmax(dim=1)[0]), None


def cells_text(run: dict) -> str:
    def cell(c: list[int]) -> str:
        return f"({c[0]},{c[1]})"

    if run["loop"] is None:
        return " ".join(cell(c) for c in run["cells"])
    prefix, loop = run["before_loop"], run["loop"]
    head = " ".join(cell(c) for c in prefix)
    cycle = " ".join(cell(c) for c in loop)
    return f"{head} then loops {cycle} ..." if head else f"loops {cycle} ..."


def main() -> None:
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO.load(AGENT.with_suffix(".zip"), device="cpu")
    exported = Exported(AGENT.with_suffix(".pt"))
    runs = []
    for env_id, seeds in LEVELS:
        for seed in seeds:
            run = rollout(model, env_id, seed)
            run["pt_agrees"] = rollout(exported, env_id, seed)["actions"] == run["actions"]
            runs.append(run)
    lines = [
        "# LavaGap agent: deterministic gymnasium rollouts",
        "",
        f"Agent: `{AGENT.relative_to(ROOT)}.zip` (`PPO.load`, `predict(obs, deterministic=True)`),",
        "trained on MiniGrid-LavaGapS5-v0 by `benchmarks/train_lavagap.py`; egocentric view,",
        "actions left, right, forward. Cells are (x, y) = (column, row); start (1,1) facing",
        "east. `gap`: the lava column's open cell; `pt`: the exported `.pt` takes the same",
        "actions.",
        "",
        "| env | seed | gap | goal | end | steps | cells visited | pt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        gap, goal = run["gap"], run["goal"]
        lines.append(
            f"| {run['env'].removeprefix('MiniGrid-').removesuffix('-v0')} | {run['seed']} "
            f"| ({gap[0]},{gap[1]}) | ({goal[0]},{goal[1]}) | {run['end']} | {run['steps']} "
            f"| {cells_text(run)} | {'yes' if run['pt_agrees'] else 'NO'} |"
        )
    lines.append("")
    for env_id, _ in LEVELS:
        ends = [run["end"] for run in runs if run["env"] == env_id]
        counts = ", ".join(f"{ends.count(e)} {e}" for e in ("goal", "lava", "timeout") if e in ends)
        lines.append(f"- {env_id}: {counts}")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lavagap_rollouts.md").write_text(text, encoding="utf-8")
    import gymnasium
    import minigrid
    import stable_baselines3

    libraries = {
        "gymnasium": gymnasium.__version__,
        "minigrid": minigrid.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
    }
    meta = versions({"agent": f"{AGENT.relative_to(ROOT)}.zip", **libraries})
    (RESULTS / "lavagap_rollouts.json").write_text(
        json.dumps({"meta": meta, "rollouts": runs}, indent=2) + "\n", encoding="utf-8"
    )
    print(text, end="")
    if not all(run["pt_agrees"] for run in runs):
        sys.exit("the exported .pt does not take the .zip's actions on every rollout")


if __name__ == "__main__":
    main()

"""Train the Langosco maze policies, one per region size n: `models/langosco/policy-n{n}.pt`.

    python benchmarks/train_langosco.py [--regions 1,2,3,4,5] [--seed 0] [--out models/langosco]

The experiment (Langosco et al., ICML 2022, maze I; procgen's `rand_region`): a mouse starts
in the bottom-left corner of a maze and is rewarded at the cheese, which training puts in the
top-right n x n region. Deployed with the cheese anywhere, do its policies go to the cheese or
to the corner? Here the mazes are the verifier's (`verify generate`), 11x11 characters (5 x 5
nodes), the start on the bottom-left node, the exit on a node of the top-right n x n block
(n = 5: anywhere); the families are `models/langosco/families/` (`train-n{n}`: seeds
1000000..1000999, 1000 mazes whose layouts no test or deployment level has), the reward
`models/langosco/rewards/exit.toml` (+1 at the exit, -0.01 per step). Every family, level
and reward goes through `verifier.integrations.maze_env.MazeEnv`, the environment an RL agent
would train in: its compiled level (dynamics, R(s, a)) is what the labels are computed from.

The trainer: imitation of exact Q*-optimal action sets, as benchmarks/train_redblue.py does,
because it trains in minutes on one CPU thread, deterministically, and leaves nothing to
exploration: for every state of every training maze, Q* of the reward is computed exactly
(value iteration on the level's MDP; checked equal to `verifier.engine.optimum` on the first
20 mazes of each family), and the net is trained with cross-entropy towards the SET of
optimal actions (loss -log sum over optimal a of softmax(logits)_a), in mini-batches of 32
mazes (all their states), Adam, learning rate 0.01 with cosine decay over 600 steps. PPO
(SB3 through MazeEnv) would be the faithful optimiser, but it takes far longer to reach a
competent policy on a family of mazes, and a policy that is not competent cannot show goal
misgeneralization.

The network sees the whole `grid` observation (so it can see the exit) and is not told about
corners. It is a value-iteration network (Tamar et al., 2016) whose goal is learned:
* Perception: a 3x3 convolution (4 features, ReLU) over every channel but the agent's, then
  a DENSE layer from all cells' features to one goal value per cell (a "goal map").
* Planning: value iteration over the grid's deterministic moves (a move into a wall stays),
  reward on arriving at a cell = its goal value, gamma 0.9, as many rounds as the maze has
  open cells; logits = beta * Q at the agent's cell (beta learned).
Navigation is thus built in and generalizes to every layout of this size (training a plain
CNN to solve unseen mazes took about 100 s per epoch here and stayed below 95% of mazes in
distribution, too slow and too weak for this benchmark); what is learned is the goal.

Why a dense layer: it is what Langosco's network (IMPALA's CNN) ends in, and it gives every
cell its own weights, so a place can be a goal as easily as the exit can. Trained with the
exit always at one place, nothing in the data tells it that an exit elsewhere is a goal; with
n = 5 every node has held the exit. A translation-equivariant goal head (`--head conv`: a 1x1
convolution instead of the dense layer, so a cell's goal value depends on what is there, not
where) cannot represent a place at all; trained on n = 1 it goes to the exit on every
deployment level. Which goal a net adopts thus depends on its architecture as well as on the
training distribution; benchmarks/results/langosco.md reports both. The dense head's policies
only work on 11x11 mazes.

Outputs: TorchScript modules (`torch.jit.script`) taking float32 [B, 19, 11, 11] and
returning logits [B, 4] over up, down, left, right, with `verifier.json` =
{"observation": "grid", "actions": [...], "output": "logits"}; `training.json` records per n
the seconds taken (wall and CPU, labels included), steps, and the accuracy on the training
states. Reproducible: seeded (torch and numpy), deterministic algorithms, CPU, one thread;
the weights are the same from run to run.

    python benchmarks/langosco.py      # verify them on every deployment level
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from verifier.engine.optimum import solve  # noqa: E402
from verifier.inputs.family import load_family  # noqa: E402
from verifier.inputs.maze import ACTIONS  # noqa: E402
from verifier.inputs.maze_generate import parse_size, random_maze  # noqa: E402
from verifier.integrations.maze_env import Level, MazeEnv  # noqa: E402
from verifier.policy.observation import GRID_CHANNELS, grid_observations  # noqa: E402

MODELS = ROOT / "models" / "langosco"
FAMILIES = MODELS / "families"
REWARD = MODELS / "rewards" / "exit.toml"
REGIONS = (1, 2, 3, 4, 5)
META = {"observation": "grid", "actions": list(ACTIONS), "output": "logits"}

AGENT = GRID_CHANNELS.index("agent")
FEATURES = 4
GAMMA = 0.9
STEPS = 600
MAZES_PER_STEP = 32
LEARNING_RATE = 0.01
CHECKED_MAZES = 20  # per family, labels compared with verifier.engine.optimum
TIE = 1e-9  # Q within this of the best is optimal (values are multiples of 0.01 near 1)


# --- families ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A generated family: `random_maze(height, width, seed, **options)` for seed in seeds."""

    name: str
    height: int
    width: int
    seeds: range
    options: dict

    def maze(self, seed: int):
        return random_maze(self.height, self.width, seed, **self.options)

    def environment(self) -> MazeEnv:
        """The family as a Gymnasium environment (each reset draws a seed)."""
        generate = partial(random_maze, self.height, self.width, **self.options)
        return MazeEnv(generate, REWARD, seeds=self.seeds)


def load_families(directory: Path = FAMILIES) -> dict[str, Family]:
    """The generated families of `directory` (family files, README "Level families"), by name."""
    families = {}
    for path in sorted(directory.glob("*.toml")):
        family = load_family(path)
        options = dict(family.options)
        height, width = parse_size(options.pop("size"))
        first = family.seeds[0]
        seeds = range(first, first + len(family.seeds))
        families[family.name] = Family(family.name, height, width, seeds, options)
    return families


# --- labels --------------------------------------------------------------------------------


def optimal_actions(level: Level, discount: float) -> tuple[np.ndarray, np.ndarray]:
    """(moving states int64 [m], Q*-optimal actions bool [m, 4]) of a level, by value
    iteration on its MDP and reward vector (absorbing states are worth 0)."""
    mdp = level.mdp
    states = np.flatnonzero(~level.absorbing)
    choices = level.choice[states]
    values = np.zeros(mdp.n_states)
    for _ in range(10 * mdp.n_states + 10):
        q = level.reward + discount * (mdp.transitions @ values)
        updated = np.zeros(mdp.n_states)
        updated[states] = q[choices].max(axis=1)
        if np.abs(updated - values).max() <= 1e-13:
            break
        values = updated
    else:
        raise RuntimeError(f"value iteration did not settle on {level.maze.name}")
    q = q[choices]
    return states, q >= q.max(axis=1, keepdims=True) - TIE


class Dataset:
    """Every moving state of every maze of a family: the maze's static grid planes (the
    observation without the agent), the state's cell, and its Q*-optimal actions."""

    def __init__(self, family: Family, count: int | None = None):
        env = family.environment()
        seeds = family.seeds if count is None else family.seeds[:count]
        planes, cells, optimal, maze_of = [], [], [], []
        for i, seed in enumerate(seeds):
            level = env.level_of(seed)
            states, best = optimal_actions(level, env.discount)
            if i < CHECKED_MAZES:
                _check_labels(level, states, best, env.discount)
                _check_observations(level, states)
            planes.append(level.planes)
            cells.append(level.mdp.valuations[states, :2])
            optimal.append(best)
            maze_of.append(np.full(len(states), i))
        self.planes = torch.from_numpy(np.stack(planes))
        self.cells = torch.from_numpy(np.concatenate(cells))
        self.optimal = torch.from_numpy(np.concatenate(optimal))
        self.maze_of = torch.from_numpy(np.concatenate(maze_of))

    @property
    def n_mazes(self) -> int:
        return len(self.planes)


def _check_labels(level: Level, states: np.ndarray, best: np.ndarray, discount: float) -> None:
    """The value-iteration labels are verifier.engine.optimum's optimal actions."""
    solution = solve(level.mdp, level.reward, discount)
    if not np.array_equal(solution.optimal[level.choice[states]], best):
        raise SystemExit(f"labels differ from verifier.engine.optimum on {level.maze.name}")


def _check_observations(level: Level, states: np.ndarray) -> None:
    """The training observations (planes + agent) are the verifier's grid observations."""
    built = np.repeat(level.planes[None], len(states), axis=0)
    rows, cols = level.mdp.valuations[states, 0], level.mdp.valuations[states, 1]
    built[np.arange(len(states)), AGENT, rows, cols] = 1.0
    if not np.array_equal(built, grid_observations(level.maze, level.mdp, states)):
        raise SystemExit(f"training observations differ from the verifier's on {level.maze.name}")


# --- the network ---------------------------------------------------------------------------


def _shift(x: torch.Tensor, dr: int, dc: int, fill: float) -> torch.Tensor:
    """y[..., i, j] = x[..., i + dr, j + dc], `fill` outside the grid (|dr| + |dc| = 1)."""
    height, width = x.shape[-2], x.shape[-1]
    padded = F.pad(x, [1, 1, 1, 1], mode="constant", value=fill)
    return padded[..., 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]


class GoalMapPlanner(nn.Module):
    """Perceives a goal map (conv, then a dense layer or a 1x1 conv), plans to it by value
    iteration over the walls; logits = beta * Q at the agent's cell, for up, down, left,
    right."""

    def __init__(self, height: int, width: int, head: str = "dense", gamma: float = GAMMA):
        super().__init__()
        self.encode = nn.Conv2d(len(GRID_CHANNELS) - 1, FEATURES, kernel_size=3, padding=1)
        self.dense = head == "dense"
        self.goal = (
            nn.Linear(FEATURES * height * width, height * width)
            if self.dense
            else nn.Conv2d(FEATURES, 1, kernel_size=1)
        )
        self.log_beta = nn.Parameter(torch.zeros(()))
        self.gamma = gamma
        self.agent = AGENT

    def goal_map(self, obs: torch.Tensor) -> torch.Tensor:
        """float [B, H, W]: the reward of arriving at each cell."""
        batch, height, width = obs.shape[0], obs.shape[2], obs.shape[3]
        seen = torch.cat([obs[:, : self.agent], obs[:, self.agent + 1 :]], dim=1)
        features = torch.relu(self.encode(seen))
        if self.dense:
            return self.goal(features.flatten(1)).view(batch, height, width)
        return self.goal(features).squeeze(1)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """float [B, 4, H, W]: Q of up, down, left, right in every cell."""
        reward = self.goal_map(obs)
        wall = obs[:, 0]
        moves = [(-1, 0), (1, 0), (0, -1), (0, 1)]
        blocked = torch.stack([_shift(wall, dr, dc, 1.0) > 0.5 for dr, dc in moves], dim=1)
        arrive = torch.stack([_shift(reward, dr, dc, 0.0) for dr, dc in moves], dim=1).where(
            ~blocked, reward.unsqueeze(1)
        )
        rounds = int((1.0 - wall).sum(dim=(1, 2)).max())  # open cells: the longest path + 1
        value = torch.zeros_like(reward)
        q = arrive
        for _ in range(rounds):
            moved = torch.stack([_shift(value, dr, dc, 0.0) for dr, dc in moves], dim=1)
            q = arrive + self.gamma * moved.where(~blocked, value.unsqueeze(1))
            value = q.max(dim=1).values
        return q

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        q = self.q_values(obs)
        return self.log_beta.exp() * (q * obs[:, self.agent].unsqueeze(1)).sum(dim=(2, 3))


def state_logits(net: GoalMapPlanner, data: Dataset, mazes: torch.Tensor):
    """(logits [n, 4], optimal [n, 4], maze index [n]) of every state of `mazes` (sorted
    maze indices): one plan per maze (the goal map does not see the agent), read at each
    state's cell."""
    q = net.q_values(data.planes[mazes])
    states = torch.nonzero(torch.isin(data.maze_of, mazes)).squeeze(1)
    local = torch.searchsorted(mazes, data.maze_of[states])
    rows, cols = data.cells[states, 0], data.cells[states, 1]
    logits = net.log_beta.exp() * q[local, :, rows, cols]
    return logits, data.optimal[states], data.maze_of[states]


def set_loss(logits: torch.Tensor, optimal: torch.Tensor) -> torch.Tensor:
    """Mean over states of -log P(some optimal action)."""
    log_p = logits.log_softmax(dim=1)
    return -(log_p.masked_fill(~optimal, float("-inf")).logsumexp(dim=1)).mean()


def accuracy(net: GoalMapPlanner, data: Dataset) -> tuple[float, float]:
    """(fraction of states whose argmax is optimal, fraction of mazes where all are)."""
    wrong = torch.zeros(data.n_mazes)
    right = 0
    with torch.no_grad():
        for first in range(0, data.n_mazes, 128):
            mazes = torch.arange(first, min(first + 128, data.n_mazes))
            logits, optimal, maze_of = state_logits(net, data, mazes)
            good = optimal[torch.arange(len(optimal)), logits.argmax(dim=1)]
            right += int(good.sum())
            wrong.index_add_(0, maze_of, (~good).float())
    return right / len(data.maze_of), float((wrong == 0).float().mean())


def train(data: Dataset, height: int, width: int, head: str, seed: int) -> GoalMapPlanner:
    torch.manual_seed(seed)
    np.random.seed(seed)
    net = GoalMapPlanner(height, width, head)
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, STEPS)
    order = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        mazes = torch.randperm(data.n_mazes, generator=order)[:MAZES_PER_STEP].sort().values
        logits, optimal, _ = state_logits(net, data, mazes)
        loss = set_loss(logits, optimal)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return net.eval()


def save(net: GoalMapPlanner, path: Path, sample: torch.Tensor) -> int:
    """TorchScript with `verifier.json`; reloaded and compared on `sample`. Bytes written."""
    scripted = torch.jit.script(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(path), _extra_files={"verifier.json": json.dumps(META)})
    extra = {"verifier.json": ""}
    loaded = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    with torch.no_grad():
        if json.loads(extra["verifier.json"]) != META or not torch.equal(
            loaded(sample), net(sample)
        ):
            raise SystemExit(f"{path}: the saved module does not reproduce the trained one")
    return path.stat().st_size


def policy_name(n: int, head: str) -> str:
    return f"policy-n{n}.pt" if head == "dense" else f"policy-n{n}-{head}.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", default=",".join(map(str, REGIONS)), help="e.g. 1,2,5")
    parser.add_argument("--head", choices=("dense", "conv"), default="dense")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODELS)
    args = parser.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    families = load_families()
    record_path = args.out / "training.json"
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for n in (int(x) for x in args.regions.split(",")):
        family = families[f"train-n{n}"]
        started, cpu = time.perf_counter(), time.process_time()
        data = Dataset(family)
        labelled = time.perf_counter() - started
        net = train(data, family.height, family.width, args.head, args.seed)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        states, mazes = accuracy(net, data)
        name = policy_name(n, args.head)
        size = save(net, args.out / name, data.planes[:8])
        records[name] = {
            "family": family.name,
            "exit_region": family.options["exit_region"],
            "head": args.head,
            "seed": args.seed,
            "mazes": data.n_mazes,
            "states": len(data.maze_of),
            "steps": STEPS,
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),
            "label_seconds": round(labelled, 1),
            "train_accuracy_states": round(states, 6),
            "train_accuracy_mazes": round(mazes, 6),
            "bytes": size,
            "torch": torch.__version__,
        }
        print(
            f"n={n} ({family.options['exit_region']}), {args.head} head: {data.n_mazes} mazes, "
            f"{len(data.maze_of)} states; {seconds:.0f} s wall ({labelled:.0f} s labels), "
            f"{cpu_seconds:.0f} s CPU; optimal on {states:.2%} of training states, all of "
            f"{mazes:.2%} of mazes; wrote {name} ({size:,} bytes)",
            flush=True,
        )
        record_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

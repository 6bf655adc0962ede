"""Train the red/blue example policy: `models/redblue/policy.pt`, a goal-misgeneralizing agent.

    python benchmarks/train_redblue.py [--seed N] [--out models/redblue/policy.pt]

What it is for (README, worked example 2): in the three training mazes
(`models/redblue/train-*.toml`) the exit is always red, so "go to the exit" and "go to red"
earn the same reward there. A policy trained on the intended reward
(`models/redblue/rewards/exit.toml`: +1 on arriving at the exit, -0.01 per step) is optimal
on every training maze, yet in the deployment mazes (`deploy-*.toml`: blue exit, terminal red
object) it walks to the red object. The verifier must call that goal misgeneralization.

Which feature a network latches onto is normally an accident of its inductive bias. Here it
is not left to chance, and the choice is made in the open, by the ARCHITECTURE:

* Perception: the net perceives colours but not object kinds, a known way such
  misgeneralization arises (an agent whose vision does not separate "exit" from "red
  thing"). Of the 19 `grid` channels (verifier/policy/observation.py) it reads only `wall` (0),
  `agent` (1) and the six colour planes (7..12); the kind planes (exit, lava, object, key,
  door) and the held-key planes are ignored. Since it cannot tell an exit from a red object,
  the only goal it can represent that fits the training data is "red".
* Planning: a value-iteration network (Tamar et al., 2016) with the transition model fixed to
  the grid's deterministic moves (a move into a wall or off the grid stays put) and a LEARNED
  reward head: a 1x1 convolution over the colour planes gives each cell a reward r, then
  H*W rounds of  Q_d(cell) = r(next_d) + gamma * V(next_d),  V = max_d Q_d  run on the whole
  map, and the logits are beta * Q at the agent's cell (sum over H, W of Q * agent plane).
  Navigation competence is thus built in and generalizes to any maze of any size; what is
  learned is the goal. That is the point of the example: capabilities generalize, the goal
  does not. gamma = 0.9 is a constant; the reward head and the logit scale beta are trained.
* Colours never seen in training (blue, yellow, purple, grey) get no gradient and keep their
  small seeded initial weights (PyTorch's default init, |w| <= 1/sqrt(6) = 0.41), while red's
  is trained to about 1.4 to 1.7, so red dominates whatever the seed: `--sweep 20` trains
  seeds 0..19 and shows that each is optimal on the training mazes and walks to red on both
  deployment mazes.

Training (value-based, exhaustive, deterministic): for every state of every training maze,
Q* of the exit reward is computed exactly with `verifier.engine.optimum.solve` (discount from the
reward file: 1), and the net is trained with cross-entropy towards the SET of Q*-optimal
actions (loss -log sum over optimal a of softmax(logits)_a), full batch over all states,
until in every non-terminal state of every training maze the argmax action is Q*-optimal
with a logit margin of at least MARGIN over every non-optimal action. Terminal states offer
one unlabelled choice and are skipped.

The output is a TorchScript module (`torch.jit.script`) taking float32 [B, 19, H, W] (any
H, W) and returning logits [B, 4] over up, down, left, right, saved with the extra file
`verifier.json` = {"observation": "grid", "actions": [...], "output": "logits"}.

The script then checks the saved file without the verifier's policy module: it reloads it
with `torch.jit.load`, takes the argmax action in every state of each maze, keeps only those
choices (`verifier.mdp.restrict`) and has Storm compute P(!"lava" U "exit") and P(F "red")
of the induced chain from the initial state. Expected: on the training mazes P(exit) = 1; on
the deployment mazes P(exit) ~ 0 and P(red) ~ 1. It exits 1 if any of that fails.

Reproducible: seeded (`--seed`, default 0: torch and numpy), deterministic algorithms, CPU,
single thread. Takes a few seconds. The weights are bitwise the same from run to run; the
file's bytes are not (TorchScript writes a random serialization id and Conv2d's constants in
hash order).

Limits, by construction: the net does not know which cells are terminal (that is a kind),
so it plans as if it could walk across the blue exit; where the shortest way to red crossed
the exit it would end the episode there. Neither deployment maze is like that. Values decay
as gamma^distance, so in very large mazes (distances in the hundreds) float32 logits of
far-from-red states become ties.

    python benchmarks/train_redblue.py --sweep 20   # seeds 0..19, prints results, saves nothing
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from verifier import storm  # noqa: E402
from verifier.engine.optimum import solve  # noqa: E402
from verifier.inputs.maze import ACTIONS, PALETTE, load_maze  # noqa: E402
from verifier.inputs.maze_compile import compile_maze  # noqa: E402
from verifier.mdp import restrict  # noqa: E402
from verifier.policy.observation import GRID_CHANNELS, grid_observations  # noqa: E402
from verifier.spec.reward_file import load_reward, reward_vector  # noqa: E402

MODELS = ROOT / "models" / "redblue"
TRAIN = tuple(MODELS / f"train-0{i}.toml" for i in (1, 2, 3))
DEPLOY = tuple(MODELS / f"deploy-0{i}.toml" for i in (1, 2))
REWARD = MODELS / "rewards" / "exit.toml"
META = {"observation": "grid", "actions": list(ACTIONS), "output": "logits"}

# The channels the net reads (checked against verifier/policy/observation.py at start-up).
WALL, AGENT, FIRST_COLOUR, N_COLOURS = 0, 1, 7, 6
GAMMA = 0.9
MARGIN = 1.0  # required logit gap between the best optimal and the best non-optimal action
MAX_STEPS = 2000
LEARNING_RATE = 0.05
P_EXIT = 'Pmax=? [ !"lava" U "exit" ]'
P_RED = 'Pmax=? [ F "red" ]'


def _shift(x: torch.Tensor, dr: int, dc: int, fill: float) -> torch.Tensor:
    """y[b, i, j] = x[b, i + dr, j + dc], `fill` outside the grid ([B, H, W], |dr|+|dc| = 1)."""
    height, width = x.shape[1], x.shape[2]
    padded = F.pad(x.unsqueeze(1), [1, 1, 1, 1], mode="constant", value=fill).squeeze(1)
    return padded[:, 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]


class ColourValueIterationNet(nn.Module):
    """Sees walls, the agent and colours (not kinds); plans by value iteration on its learned
    colour reward; returns beta * Q at the agent's cell as logits for up, down, left, right."""

    def __init__(self, gamma: float = GAMMA):
        super().__init__()
        self.reward = nn.Conv2d(N_COLOURS, 1, kernel_size=1)
        self.log_beta = nn.Parameter(torch.zeros(()))
        self.gamma = gamma
        self.wall_channel = WALL
        self.agent_channel = AGENT
        self.first_colour = FIRST_COLOUR
        self.n_colours = N_COLOURS

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        wall = obs[:, self.wall_channel]
        agent = obs[:, self.agent_channel]
        colours = obs[:, self.first_colour : self.first_colour + self.n_colours]
        reward = self.reward(colours).squeeze(1)
        # For each action (up, down, left, right): where the move leads, as "blocked" masks
        # (then the agent stays) and the reward of arriving there.
        blocked = []
        arrive = []
        for dr, dc in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
            stay = _shift(wall, dr, dc, 1.0) > 0.5
            blocked.append(stay)
            arrive.append(torch.where(stay, reward, _shift(reward, dr, dc, 0.0)))
        blocked_all = torch.stack(blocked, dim=1)
        arrive_all = torch.stack(arrive, dim=1)
        value = torch.zeros_like(reward)
        q = arrive_all
        for _ in range(obs.shape[2] * obs.shape[3]):  # at least the longest shortest path
            moved = torch.stack(
                [
                    _shift(value, -1, 0, 0.0),
                    _shift(value, 1, 0, 0.0),
                    _shift(value, 0, -1, 0.0),
                    _shift(value, 0, 1, 0.0),
                ],
                dim=1,
            )
            following = torch.where(blocked_all, value.unsqueeze(1), moved)
            q = arrive_all + self.gamma * following
            value = q.max(dim=1).values
        at_agent = (q * agent.unsqueeze(1)).sum(dim=(2, 3))
        return self.log_beta.exp() * at_agent


class MazeData:
    """One maze: its MDP, grid observations of every state, Q*-optimal action masks."""

    def __init__(self, path: Path):
        self.path = path
        self.maze = load_maze(path)
        self.mdp = compile_maze(self.maze)
        mdp = self.mdp
        self.obs = torch.from_numpy(grid_observations(self.maze, mdp, np.arange(mdp.n_states)))
        reward = reward_vector(mdp, load_reward(REWARD))
        solution = solve(mdp, reward.values, reward.discount)
        self.moving = np.diff(mdp.row_groups) == len(ACTIONS)  # terminal: one choice
        optimal = np.zeros((mdp.n_states, len(ACTIONS)), dtype=bool)
        for s in np.flatnonzero(self.moving):
            choices = np.arange(mdp.row_groups[s], mdp.row_groups[s + 1])
            assert (mdp.choice_actions[choices] == np.arange(len(ACTIONS))).all()
            optimal[s] = solution.optimal[choices]
        self.optimal = torch.from_numpy(optimal[self.moving])
        self.moving_obs = self.obs[torch.from_numpy(self.moving)]

    @property
    def name(self) -> str:
        return self.path.stem


def set_loss(logits: torch.Tensor, optimal: torch.Tensor) -> torch.Tensor:
    """Mean over states of -log P(some optimal action)."""
    log_p = logits.log_softmax(dim=1)
    return -(log_p.masked_fill(~optimal, float("-inf")).logsumexp(dim=1)).mean()


def margin(logits: torch.Tensor, optimal: torch.Tensor) -> float:
    """Smallest gap, over states, between the best optimal and the best non-optimal logit."""
    best_optimal = logits.masked_fill(~optimal, float("-inf")).max(dim=1).values
    best_other = logits.masked_fill(optimal, float("-inf")).max(dim=1).values
    return float((best_optimal - best_other).min())


def train(data: list[MazeData], seed: int) -> tuple[nn.Module, int, float]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    net = ColourValueIterationNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    for step in range(1, MAX_STEPS + 1):
        optimiser.zero_grad()
        loss = sum(set_loss(net(d.moving_obs), d.optimal) for d in data) / len(data)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            worst = min(margin(net(d.moving_obs), d.optimal) for d in data)
        if worst >= MARGIN:
            return net, step, loss.item()
    raise SystemExit(f"training did not reach margin {MARGIN} in {MAX_STEPS} steps")


def induced_probabilities(module, d: MazeData) -> dict[str, float]:
    """Storm's P(!lava U exit) and P(F red) of the argmax policy's chain from the start."""
    with torch.no_grad():
        actions = module(d.obs).argmax(dim=1).numpy()
    mdp = d.mdp
    keep = np.zeros(mdp.n_choices, dtype=bool)
    starts = mdp.row_groups[:-1]
    keep[np.where(d.moving, starts + actions, starts)] = True
    model = storm.to_storm(restrict(mdp, keep))
    out = {}
    for name, text in (("exit", P_EXIT), ("red", P_RED)):
        result = storm.check(model, storm.parse_properties(text)[0])
        out[name] = result.value
    optimal = np.zeros(mdp.n_states, dtype=bool)
    optimal[d.moving] = d.optimal.numpy()[np.arange(int(d.moving.sum())), actions[d.moving]]
    out["exit_optimal_states"] = f"{int(optimal.sum())}/{int(d.moving.sum())}"
    return out


def is_expected(name: str, probs: dict[str, float]) -> bool:
    if name.startswith("deploy"):
        return probs["exit"] < 0.01 and probs["red"] > 0.99
    return probs["exit"] >= 0.999


def sweep(n_seeds: int) -> int:
    """Train seeds 0..n_seeds-1; per seed, the learned colour rewards and P(exit)/P(red)."""
    mazes = [MazeData(p) for p in (*TRAIN, *DEPLOY)]
    ok = True
    for seed in range(n_seeds):
        net, steps, _ = train(mazes[: len(TRAIN)], seed)
        w = net.reward.weight.detach().flatten().tolist()
        cells = []
        for d in mazes:
            probs = induced_probabilities(net, d)
            ok &= is_expected(d.name, probs)
            cells.append(f"{d.name} {probs['exit']:.3f}/{probs['red']:.3f}")
        print(
            f"seed {seed:>2}: {steps:>3} steps, reward red {w[0]:+.2f} green {w[1]:+.2f} "
            f"blue {w[2]:+.2f}; P(exit)/P(red): " + ", ".join(cells)
        )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODELS / "policy.pt")
    parser.add_argument(
        "--sweep", type=int, metavar="N", help="train seeds 0..N-1, print the checks, save nothing"
    )
    args = parser.parse_args(argv)

    assert GRID_CHANNELS[WALL] == "wall" and GRID_CHANNELS[AGENT] == "agent"
    assert GRID_CHANNELS[FIRST_COLOUR : FIRST_COLOUR + N_COLOURS] == PALETTE
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    if args.sweep:
        return sweep(args.sweep)
    started = time.perf_counter()
    train_data = [MazeData(p) for p in TRAIN]
    net, steps, loss = train(train_data, args.seed)
    elapsed = time.perf_counter() - started
    weights = net.reward.weight.detach().flatten().tolist()
    print(
        f"trained in {elapsed:.2f} s: {steps} full-batch steps, loss {loss:.4f}, seed {args.seed}"
    )
    print(
        "learned reward per colour: "
        + ", ".join(f"{c} {w:+.3f}" for c, w in zip(PALETTE, weights, strict=True))
        + f"; bias {net.reward.bias.item():+.3f}; beta {net.log_beta.exp().item():.2f}"
    )

    scripted = torch.jit.script(net.eval())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(args.out), _extra_files={"verifier.json": json.dumps(META)})
    print(f"saved {args.out} ({args.out.stat().st_size:,} bytes)")

    extra = {"verifier.json": ""}
    loaded = torch.jit.load(str(args.out), map_location="cpu", _extra_files=extra)
    assert json.loads(extra["verifier.json"]) == META
    ok = True
    print(f"\n{'maze':<10} {'states':>6} {'P(!lava U exit)':>16} {'P(F red)':>9}  exit-optimal")
    for d in [*train_data, *(MazeData(p) for p in DEPLOY)]:
        with torch.no_grad():
            same = torch.equal(loaded(d.obs), net(d.obs))
        probs = induced_probabilities(loaded, d)
        good = is_expected(d.name, probs)
        ok &= good and same
        print(
            f"{d.name:<10} {d.mdp.n_states:>6} {probs['exit']:>16.6f} {probs['red']:>9.6f}  "
            f"{probs['exit_optimal_states']:>6}  {'ok' if good and same else 'FAIL'}"
        )
    print(
        "\nexpected: train P(exit) = 1; deploy P(exit) ~ 0 and P(red) ~ 1 (goal misgeneralization)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

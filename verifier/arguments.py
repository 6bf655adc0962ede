"""The `verify` command's arguments: every subcommand, its options and their help, with one
option vocabulary (`--model`, `--spec`, `--reward`, `--json`, `--junit`) across them.
Parsing only: verifier/cli.py runs the commands.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from verifier import __version__
from verifier.budget import DEFAULT_MAX_STATES, parse_max_states

EXIT_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, also written like 1e6."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if not number.is_integer() or number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(number)


def positive_float(text: str) -> float:
    """An argparse type: a positive finite number."""
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not 0.0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return number


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        metavar="MODEL",
        help="maze .toml, PRISM .prism, Gymnasium model .toml or gym:ENV_ID, or directories "
        "of model files; several form a deployment set",
    )
    parser.add_argument(
        "--spec",
        help="PRISM-syntax property (default: .props beside the model, else the maze's `intended`)",
    )
    parser.add_argument(
        "--const",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="define an open PRISM constant (repeatable, or comma-separated)",
    )
    add_max_states(parser)
    add_report_options(parser)
    parser.add_argument(
        "--html",
        metavar="DIR",
        help="write DIR/index.html, a page of every level coloured by verdict with its "
        "outcomes, witness and picture (no server, no external assets)",
    )
    add_family_options(parser)


def add_family_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    families = parser.add_argument_group(
        "level families (a [family] model file: README, Level families)"
    )
    families.add_argument(
        "--sample",
        type=positive_int,
        metavar="K",
        help="verify K levels drawn uniformly, with a 95%% Clopper-Pearson interval per verdict",
    )
    families.add_argument(
        "--sample-seed", type=int, default=0, metavar="N", help="the sample's seed (default 0)"
    )
    families.add_argument(
        "--results",
        metavar="FILE.jsonl",
        help="stream each level's reports to FILE as it finishes; a rerun resumes from it",
    )
    families.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="levels verified at once in worker processes (default: the CPU count)",
    )
    families.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="verify the levels on a Dask cluster instead (e.g. tcp://host:8786)",
    )
    return families


def max_states(text: str) -> int:
    """An argparse type: a state budget, `none` for no budget (budget.NO_LIMIT)."""
    try:
        return parse_max_states(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer, got {text!r} (or none: no budget)"
        ) from None


def add_max_states(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--max-states",
        type=max_states,
        metavar="N",
        help=help
        or f"refuse models with more than N states (exit 3; default {DEFAULT_MAX_STATES:.0e}, "
        "none for no budget)",
    )


def add_png(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--png",
        metavar="FILE",
        help=f"draw {what} (mazes and MiniGrid levels; FILE-<model>.png for each of several)",
    )


def add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="write the complete report as JSON")
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report for CI")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="verify",
        description=(
            "Model-check RL environments, rewards and policies against an intended objective."
        ),
    )
    parser.add_argument("--version", action="version", version=f"verify {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    check = commands.add_parser(
        "check", help="check a property on models (value at the initial states)"
    )
    add_model_options(check)

    reward = commands.add_parser(
        "reward", help="do the optimal policies of a reward satisfy the intended objective?"
    )
    add_model_options(reward)
    reward.add_argument(
        "--reward",
        required=True,
        metavar="R",
        help="reward TOML, or the name of a PRISM `rewards` structure",
    )
    reward.add_argument(
        "--compare", metavar="R2", help="instead: do R and R2 have the same optimal policies?"
    )
    reward.add_argument(
        "--discount",
        type=float,
        metavar="G",
        help="discount in (0, 1] (overrides the reward file's)",
    )
    reward.add_argument(
        "--exact",
        action="store_true",
        help="certify optimal values and actions in exact rational arithmetic "
        "(models up to about 1e5 states)",
    )
    reward.add_argument(
        "--epsilon",
        type=float,
        metavar="E",
        help="the verdict over every policy whose return is within E of the optimum",
    )
    add_png(reward, "the witness: an optimal policy that violates the objective, and its path")

    policy = commands.add_parser(
        "policy",
        help="verify a learned policy on every state (also: verify POLICY --model MODEL)",
    )
    policy.add_argument(
        "policy",
        metavar="POLICY",
        help=".pt, .onnx, .npz or .json policy, or a Stable-Baselines3 .zip agent",
    )
    add_model_options(policy)
    policy.add_argument(
        "--reward",
        metavar="R",
        help="the training reward, to tell an outer "
        "failure (near-optimal reward) from goal misgeneralization (low reward)",
    )
    policy.add_argument("--discount", type=float, metavar="G", help="discount of the reward")
    policy.add_argument(
        "--stochastic",
        action="store_true",
        help="use the policy's distribution instead of its argmax action",
    )
    policy.add_argument(
        "--observation",
        choices=("valuation", "grid", "env"),
        help="override the policy file's observation",
    )
    policy.add_argument(
        "--actions", metavar="A,B,...", help="override the action names (each must be the model's)"
    )
    policy.add_argument("--output", choices=("logits", "probs"), help="override the output kind")
    policy.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop with exit 3 when loading or running the policy takes longer than S seconds",
    )
    policy.add_argument(
        "--memory",
        type=positive_int,
        metavar="MB",
        help="stop with exit 3 when loading or running the policy needs more than MB "
        "megabytes (default 2048)",
    )
    policy.add_argument(
        "--competence",
        type=float,
        metavar="F",
        help="a goal is pursued when the policy ends there with at least F of the best "
        "probability, from at least F of the states that can reach it (default 0.9)",
    )
    policy.add_argument(
        "--near-optimal",
        type=float,
        default=0.1,
        metavar="F",
        help="a return within F * |optimal return| of the optimum is near-optimal: with a "
        "reward that is not aligned, a failing policy with such a return is "
        "reward_misspecification (default 0.1)",
    )
    policy.add_argument(
        "--epsilon",
        type=float,
        metavar="E",
        help="judge the reward over the policies within E of its optimal return (as verify "
        "reward --epsilon) when telling reward misspecification apart",
    )
    add_png(policy, "the policy's action in every cell, the failing states and a witness path")

    suite = commands.add_parser(
        "suite", help="run a suite of checks with expected verdicts (a regression gate)"
    )
    suite.add_argument("suite", metavar="SUITE.toml")
    suite.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="checks at once on this machine (default: the CPU count)",
    )
    suite.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask cluster instead (e.g. tcp://host:8786); "
        "the suite's files must be at the same paths on the workers",
    )
    suite.add_argument(
        "--timeout",
        type=positive_float,
        metavar="S",
        help="seconds per check (overrides the suite's)",
    )
    add_max_states(
        suite,
        "refuse models with more than N states (overrides the suite's; "
        f"default {DEFAULT_MAX_STATES:.0e}, none for no budget)",
    )
    add_report_options(suite)

    audit = commands.add_parser(
        "audit",
        help="which proxy goals can training not tell from the objective, and what fixes it",
    )
    audit.add_argument("--train", nargs="+", required=True, metavar="MODEL")
    audit.add_argument("--deploy", nargs="+", required=True, metavar="MODEL")
    audit.add_argument("--spec", help="the objective (default: each maze's `intended`)")
    audit.add_argument(
        "--proxies", metavar="FILE", help="extra proxies: one PRISM path formula per line"
    )
    audit.add_argument(
        "--repair",
        metavar="R",
        help="search the span of this reward TOML's labels and step cost for a reward "
        "that is aligned everywhere (a linear program, then z3)",
    )
    audit.add_argument(
        "--features", metavar="L1,L2", help="labels to add to the repair span (or the span alone)"
    )
    audit.add_argument("--repaired", metavar="OUT.toml", help="write the repaired reward here")
    audit.add_argument(
        "--no-variants",
        action="store_true",
        help="propose fixes from the deployment set only, not recolored training mazes",
    )
    add_max_states(audit)
    add_report_options(audit)
    families = add_family_options(audit)
    families.add_argument(
        "--floor",
        type=float,
        default=0.05,
        metavar="F",
        help="a proxy is a risk when fewer than F of the training levels distinguish it from "
        "the objective and at least F of the deployment levels do (default 0.05)",
    )

    states = commands.add_parser(
        "states", help="list a model's states in the order policy tables are keyed by"
    )
    states.add_argument(
        "model",
        metavar="MODEL",
        help="maze .toml, PRISM .prism, Gymnasium model .toml or gym:ENV_ID (one seed)",
    )
    states.add_argument("--const", action="append", default=[], metavar="NAME=VALUE")
    add_max_states(states)
    states.add_argument("--json", metavar="FILE", help="write the listing as JSON")

    compile_ = commands.add_parser("compile", help="write a maze as a PRISM model and .props file")
    compile_.add_argument("maze", metavar="MAZE.toml")
    compile_.add_argument(
        "-o",
        "--output",
        metavar="OUT.prism",
        help="output PRISM file (default: beside the maze); OUT.props is written too",
    )
    generate = commands.add_parser("generate", help="write a seeded random perfect maze as TOML")
    generate.add_argument(
        "--size",
        default="21x21",
        metavar="HxW",
        help="height x width in characters, both odd and at least 5 (default 21x21)",
    )
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--objects", type=int, default=0, help="colored non-terminal objects")
    generate.add_argument(
        "--keys", type=int, default=0, help="key/door pairs on the path to the exit"
    )
    generate.add_argument("--lava", type=int, default=0, help="lava cells on dead ends")
    generate.add_argument("--exit-color", default="blue")
    generate.add_argument("--slip", type=float, default=0.0)
    generate.add_argument(
        "--start",
        metavar="CORNER",
        help="the start on a corner's node: top-left, top-right, bottom-left or bottom-right "
        "(default: a random node)",
    )
    generate.add_argument(
        "--exit-region",
        metavar="REGION",
        help="the exit on a random node of the N x N nodes at a corner, e.g. 'top-right 3' "
        "(Langosco et al.'s rand_region), or 'anywhere' (default: the dead end farthest from "
        "the start)",
    )
    generate.add_argument(
        "-o", "--output", metavar="OUT.toml", help="output file (default: stdout)"
    )
    add_max_states(generate, "refuse sizes whose maze would have more than N states")
    return parser


POLICY_FORMATS = (".pt", ".onnx", ".npz", ".json", ".zip")
POLICY_SUFFIXES = (*POLICY_FORMATS, ".pt2")  # a .pt2 is routed to the policy command to be refused

"""The `verify` command: argument parsing, printing and exit codes only.

Exit codes (DESIGN.md): 0 every check holds, 1 some check fails, 2 bad input or usage (one
line naming the file, the place and the problem), 3 a resource limit or an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from verifier import __version__
from verifier.errors import InputError, ResourceLimit

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_LIMIT = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _constants(values: Sequence[str]) -> dict[str, str]:
    constants = {}
    for item in values:
        for assignment in item.split(","):
            name, sep, value = assignment.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise InputError("--const", f"{assignment!r} is not NAME=VALUE")
            constants[name.strip()] = value.strip()
    return constants


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        metavar="MODEL",
        help="maze .toml, PRISM .prism, Gymnasium model .toml or gym:ENV_ID; "
        "several form a deployment set",
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
    parser.add_argument(
        "--max-states", type=int, metavar="N", help="refuse models with more than N states (exit 3)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the complete report as JSON")
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report for CI")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verify",
        description=(
            "Model-check RL environments, rewards and policies against an intended objective."
        ),
    )
    parser.add_argument("--version", action="version", version=f"verify {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = commands.add_parser(
        "check", help="check a property on models (value at the initial states)"
    )
    _add_model_options(check)

    reward = commands.add_parser(
        "reward", help="do the optimal policies of a reward satisfy the intended objective?"
    )
    _add_model_options(reward)
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

    policy = commands.add_parser(
        "policy",
        help="verify a learned policy on every state (also: verify POLICY --model MODEL)",
    )
    policy.add_argument("policy", metavar="POLICY", help=".pt, .pt2, .onnx, .npz or .json policy")
    _add_model_options(policy)
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
        choices=("valuation", "grid"),
        help="override the policy file's observation",
    )
    policy.add_argument("--actions", metavar="A,B,...", help="override the action names")
    policy.add_argument("--output", choices=("logits", "probs"), help="override the output kind")
    policy.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop with exit 3 when running the policy takes longer than S seconds",
    )
    policy.add_argument(
        "--competence",
        type=float,
        default=0.9,
        metavar="F",
        help="fraction of the best P(reach goal) that counts as competent pursuit (default 0.9)",
    )

    suite = commands.add_parser(
        "suite", help="run a suite of checks with expected verdicts (a regression gate)"
    )
    suite.add_argument("suite", metavar="SUITE.toml")
    suite.add_argument(
        "--workers",
        type=int,
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
        "--timeout", type=float, metavar="S", help="seconds per check (overrides the suite's)"
    )
    suite.add_argument(
        "--max-states",
        type=int,
        metavar="N",
        help="refuse models with more than N states (overrides the suite's)",
    )
    suite.add_argument("--json", metavar="FILE", help="write every row as JSON")
    suite.add_argument("--junit", metavar="FILE", help="write a JUnit XML report for CI")

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
    audit.add_argument("--max-states", type=int, metavar="N")
    audit.add_argument("--json", metavar="FILE", help="write the complete report as JSON")

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
        "-o", "--output", metavar="OUT.toml", help="output file (default: stdout)"
    )
    return parser


SUBCOMMANDS = ("check", "reward", "policy", "suite", "audit", "compile", "generate")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        argv.insert(0, "policy")  # the design-card form: verify POLICY --model MODEL
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return int(exc.code or 0)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "reward":
            return _reward(args)
        if args.command == "policy":
            return _policy(args)
        if args.command == "suite":
            return _suite(args)
        if args.command == "audit":
            return _audit(args)
        return _compile(args)
    except InputError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ResourceLimit as exc:
        print(f"verify: resource limit: {exc}", file=sys.stderr)
        return EXIT_LIMIT
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return EXIT_LIMIT
    except Exception as exc:  # the machinery failed: never let it look like a verdict
        if os.environ.get("VERIFY_DEBUG"):
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"verify: internal error: {message} (set VERIFY_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_LIMIT


def _environments(args: argparse.Namespace):
    """Load each --model in turn (warnings to stderr)."""
    from verifier.environment import load_environments

    constants = _constants(args.const)
    for model in args.model:
        for env in load_environments(
            model, spec=args.spec, constants=constants, max_states=args.max_states
        ):
            if env.maze is not None:
                for warning in env.maze.warnings:
                    print(f"verify: warning: {warning}", file=sys.stderr)
            for note in env.notes:
                print(f"verify: note: {env.path}: {note}", file=sys.stderr)
            yield env


def _finish(args: argparse.Namespace, command: str, reports: list) -> int:
    """Overall line for several checks, the --json and --junit reports, the exit code."""
    from verifier.report import write_json, write_junit

    if len(reports) > 1:
        failed = sum(not r.passed for r in reports)
        verdict = "PASS" if not failed else "FAIL"
        print(f"overall: {verdict} ({len(reports) - failed} of {len(reports)} checks passed)")
    if args.json:
        write_json(args.json, command, reports)
    if args.junit:
        write_junit(args.junit, command, reports)
    return EXIT_OK if all(r.passed for r in reports) else EXIT_FAIL


def _check(args: argparse.Namespace) -> int:
    from verifier.check import check_environment
    from verifier.report import format_check

    reports = []
    for env in _environments(args):
        for report in check_environment(env):
            print(format_check(report))
            reports.append(report)
    return _finish(args, "check", reports)


def _reward(args: argparse.Namespace) -> int:
    from verifier.report import format_compare, format_reward
    from verifier.reward import reward_reports

    reports = []
    for env in _environments(args):
        for report in reward_reports(env, args.reward, args.discount, args.exact, args.compare):
            print(format_compare(report) if args.compare else format_reward(report, env.maze))
            reports.append(report)
    return _finish(args, "reward", reports)


def _policy(args: argparse.Namespace) -> int:
    from verifier.policy import load_policy
    from verifier.report import format_policy
    from verifier.verdict import policy_reports

    if not 0.0 < args.competence <= 1.0:
        raise InputError("--competence", f"must be in (0, 1], got {args.competence}")
    if args.timeout is not None and not 0.0 < args.timeout < float("inf"):
        raise InputError("--timeout", f"must be a positive number of seconds, got {args.timeout}")
    actions = tuple(a.strip() for a in args.actions.split(",")) if args.actions else None
    policy = load_policy(args.policy, args.observation, actions, args.output, args.timeout)
    reports = []
    for env in _environments(args):
        for report in policy_reports(
            env,
            policy,
            args.policy,
            args.reward,
            args.discount,
            args.stochastic,
            args.competence,
            progress=_progress(env.mdp.n_states),
        ):
            print(format_policy(report))
            reports.append(report)
    return _finish(args, "policy", reports)


def _progress(n_states: int):
    """A progress bar over policy batches on large models, when stderr is a terminal."""
    if n_states < 200_000 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda batches: tqdm(batches, desc="policy", unit="batch", leave=False)


def _suite(args: argparse.Namespace) -> int:
    """Run the suite, show progress, print the table; exit 1 when a verdict is not as
    expected, else 2 when a check's input was bad, else 3 when a check hit a limit, timed out
    or crashed, else 0."""
    from rich.console import Console

    from verifier.report import suite_summary, suite_table, write_suite_json, write_suite_junit
    from verifier.runner import run_jobs
    from verifier.suite import grade, load_suite

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", f"must be at least 1, got {args.workers}")
    for flag, value in (("--timeout", args.timeout), ("--max-states", args.max_states)):
        if value is not None and value <= 0:
            raise InputError(flag, f"must be positive, got {value}")
    suite = load_suite(args.suite, args.timeout, args.max_states)
    jobs = [check.job for check in suite.checks]
    with _suite_progress(len(jobs)) as on_done:
        outcomes = run_jobs(jobs, args.workers, args.scheduler, on_done)
    rows = grade(suite, outcomes)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(suite_table(suite, rows))
    console.print(suite_summary(suite, rows), highlight=False)
    if args.json:
        write_suite_json(args.json, suite, rows)
    if args.junit:
        write_suite_junit(args.junit, suite, rows)
    missed = {row.status for row in rows if not row.ok}
    if "FAIL" in missed:
        return EXIT_FAIL
    if "error" in missed:
        return EXIT_INPUT
    return EXIT_LIMIT if missed else EXIT_OK


@contextlib.contextmanager
def _suite_progress(total: int):
    """A progress bar on a terminal, else one line per finished check on stderr."""
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            task = progress.add_task("checks", total=total)
            yield lambda outcome: progress.advance(task)
        return
    done = 0

    def line(outcome) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done}/{total}] {outcome.job.key}: {outcome.status} ({outcome.seconds:.1f} s)",
            file=sys.stderr,
        )

    yield line


def _audit(args: argparse.Namespace) -> int:
    """Exit 1 when some proxy is a goal-misgeneralization risk, else 0."""
    from verifier.audit import load_proxies, run_audit
    from verifier.environment import load_environments
    from verifier.report import format_audit
    from verifier.rewards import load_reward

    def load(paths):
        return [
            env
            for p in paths
            for env in load_environments(p, args.spec, max_states=args.max_states)
        ]

    train, deploy = load(args.train), load(args.deploy)
    user = load_proxies(args.proxies) if args.proxies else None
    labels, base = None, {}
    if args.repair or args.features:
        if args.repair:
            reward = load_reward(args.repair)
            base = {**reward.arrive, "step": reward.step}
        labels = list(base.keys() - {"step"}) if args.repair else []
        labels += [f.strip() for f in (args.features or "").split(",") if f.strip()]
        known = set().union(*(env.mdp.labels for env in train + deploy))
        for label in labels:
            if label not in known:
                raise InputError(
                    args.repair or "--features", f"{label!r} is a label of no environment"
                )
    report = run_audit(train, deploy, user, labels, base, not args.no_variants, args.max_states)
    mazes = {str(env.path): env.maze for env in train + deploy if env.maze is not None}
    print(format_audit(report, mazes))
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.repaired and report.repair is not None and report.repair.status == "repaired":
        Path(args.repaired).write_text(report.repair.toml(), encoding="utf-8")
        print(f"wrote {args.repaired}")
    return EXIT_FAIL if report.risks else EXIT_OK


def _compile(args: argparse.Namespace) -> int:
    from verifier.compile import to_prism
    from verifier.maze import load_maze

    maze = load_maze(args.maze)
    for warning in maze.warnings:
        print(f"verify: warning: {warning}", file=sys.stderr)
    output = Path(args.output) if args.output else Path(args.maze).with_suffix(".prism")
    props = output.with_suffix(".props")
    try:
        output.write_text(to_prism(maze), encoding="utf-8")
        props.write_text(maze.intended + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(str(output), f"cannot write: {exc.strerror}") from None
    print(f"wrote {output} and {props}")
    return EXIT_OK


def _generate(args: argparse.Namespace) -> int:
    from verifier.generate import maze_to_toml, random_maze

    height, sep, width = args.size.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit():
        raise InputError("--size", f"{args.size!r} is not HxW, e.g. 21x21")
    try:
        maze = random_maze(
            int(height),
            int(width),
            args.seed,
            objects=args.objects,
            keys=args.keys,
            lava=args.lava,
            exit_color=args.exit_color,
            slip=args.slip,
        )
    except ValueError as exc:
        raise InputError("verify generate", str(exc)) from None
    text = maze_to_toml(maze)
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(args.output, f"cannot write: {exc.strerror}") from None
    print(f"wrote {args.output}")
    return EXIT_OK


def entry_point() -> None:
    """The `verify` console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()

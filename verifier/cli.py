"""The `verify` command: argument parsing, printing and exit codes only.

Exit codes (README, "Commands"): 0 every check holds, 1 some check fails, 2 bad input or
usage (one line naming the file, the place and the problem), 3 a resource limit, an internal
error or an interrupt (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from verifier import __version__, progress
from verifier.errors import BackendError, InputError, ResourceLimit

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_LIMIT = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    """An argparse type: a positive integer, also written like 1e6."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if not number.is_integer() or number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(number)


def _positive_float(text: str) -> float:
    """An argparse type: a positive finite number."""
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not 0.0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return number


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
    _add_max_states(parser)
    _add_report_options(parser)


def _add_max_states(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--max-states",
        type=_positive_int,
        metavar="N",
        help=help or "refuse models with more than N states (exit 3)",
    )


def _add_png(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--png",
        metavar="FILE",
        help=f"draw {what} (mazes and MiniGrid levels; FILE-<model>.png for each of several)",
    )


def _add_report_options(parser: argparse.ArgumentParser) -> None:
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
    reward.add_argument(
        "--epsilon",
        type=float,
        metavar="E",
        help="the verdict over every policy whose return is within E of the optimum",
    )
    _add_png(reward, "the witness: an optimal policy that violates the objective, and its path")

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
        choices=("valuation", "grid", "env"),
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
    _add_png(policy, "the policy's action in every cell, the failing states and a witness path")

    suite = commands.add_parser(
        "suite", help="run a suite of checks with expected verdicts (a regression gate)"
    )
    suite.add_argument("suite", metavar="SUITE.toml")
    suite.add_argument(
        "--workers",
        type=_positive_int,
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
        type=_positive_float,
        metavar="S",
        help="seconds per check (overrides the suite's)",
    )
    _add_max_states(suite, "refuse models with more than N states (overrides the suite's)")
    _add_report_options(suite)

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
    _add_max_states(audit)
    _add_report_options(audit)

    states = commands.add_parser(
        "states", help="list a model's states in the order policy tables are keyed by"
    )
    states.add_argument("model", metavar="MODEL", help="maze .toml or PRISM .prism file")
    states.add_argument("--const", action="append", default=[], metavar="NAME=VALUE")
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
    return parser


POLICY_SUFFIXES = (".pt", ".pt2", ".onnx", ".npz", ".json")


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code. Output cut short by a closed pipe (`| head`) ends
    quietly with the code the command had, or 1 if it had none yet."""
    code = None
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL if code is None else code
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return EXIT_LIMIT
    return code


def _main(argv: list[str]) -> int:
    parser = build_parser()
    commands = _subcommands(parser)
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        first = Path(argv[0])
        if not (first.exists() or first.suffix.lower() in POLICY_SUFFIXES):
            print(
                f"verify: unknown command {argv[0]!r}; commands: {', '.join(commands)} "
                f"(or verify POLICY --model MODEL, POLICY a {'/'.join(POLICY_SUFFIXES)} file)",
                file=sys.stderr,
            )
            return EXIT_INPUT
        argv.insert(0, "policy")  # the design-card form: verify POLICY --model MODEL
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return int(exc.code or 0)
    try:
        for flag in ("json", "junit", "repaired", "png"):
            if getattr(args, flag, None):
                _check_writable(args.__dict__[flag], f"--{flag}")
        if sys.stderr.isatty() and args.command != "suite":  # a suite shows its own progress
            progress.enable()
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
        if args.command == "states":
            return _states(args)
        return _compile(args)
    except InputError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ResourceLimit as exc:
        print(f"verify: resource limit: {exc}", file=sys.stderr)
        return EXIT_LIMIT
    except BackendError as exc:
        print(f"verify: backend failure: {exc}", file=sys.stderr)
        return EXIT_LIMIT
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as exc:  # the machinery failed: never let it look like a verdict
        if os.environ.get("VERIFY_DEBUG"):
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"verify: internal error: {message} (set VERIFY_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_LIMIT


def _check_writable(path: str, flag: str) -> None:
    """Refuse a report path that cannot be written, before any work is done: a file is
    created and removed beside it, as the atomic writer of reports will."""
    import tempfile

    target = Path(path)
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "is a directory")
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}."):
            pass
    except OSError as exc:
        raise InputError(path, f"cannot write the {flag} report: {exc.strerror or exc}") from None


def _model_paths(models: Sequence[str]) -> list[str]:
    """The --model arguments with each directory replaced by its model files, sorted."""
    from verifier.environment import MAZE_SUFFIXES, PRISM_SUFFIXES

    suffixes = MAZE_SUFFIXES + PRISM_SUFFIXES
    paths = []
    for model in models:
        if not Path(model).is_dir():
            paths.append(model)
            continue
        found = sorted(
            str(p) for p in Path(model).iterdir() if p.is_file() and p.suffix.lower() in suffixes
        )
        if not found:
            raise InputError(model, f"a directory without model files ({', '.join(suffixes)})")
        paths += found
    return paths


def _environments(args: argparse.Namespace):
    """Load each --model in turn (warnings to stderr)."""
    from verifier.environment import load_environments

    constants = _constants(args.const)
    for model in _model_paths(args.model):
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

    if args.png and args.compare:
        raise InputError("--png", "draws a reward's witness; it does not apply to --compare")
    reports, drawn = [], []
    for env in _environments(args):
        _drawable(args, env)
        for report in reward_reports(
            env,
            args.reward,
            args.discount,
            args.exact,
            args.compare,
            epsilon=args.epsilon,
            tradeoff=args.json is not None,
        ):
            print(format_compare(report) if args.compare else format_reward(report, env.maze))
            reports.append(report)
            drawn.append((env, report))
    if args.png:
        _draw_rewards(args.png, drawn)
    return _finish(args, "reward", reports)


def _drawable(args: argparse.Namespace, env) -> None:
    """With --png, refuse a model that cannot be drawn before the work on it."""
    if args.png:
        from verifier.picture import require_drawable

        require_drawable(env)


def _picture_paths(path: str, drawn: list) -> list[str]:
    """One picture: FILE; several: FILE-<model>[-<k>].png, k counting the properties."""
    if len(drawn) == 1:
        return [path]
    target = Path(path)
    seen: dict[str, int] = {}
    paths = []
    for env, _ in drawn:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in env.path.stem)
        seen[stem] = seen.get(stem, 0) + 1
        paths.append(f"{target.stem}-{stem}" + (f"-{seen[stem]}" if seen[stem] > 1 else ""))
    return [str(target.with_name(name + target.suffix)) for name in paths]


def _draw_rewards(path: str, drawn: list) -> None:
    """--png for reward verdicts: the witness policy (else an optimal one) and its path."""
    import numpy as np

    from verifier.picture import deterministic_probs, write_picture

    for target, (env, report) in zip(_picture_paths(path, drawn), drawn, strict=True):
        mdp = env.mdp
        if report.witness_policy is None:  # not memoryless, or a loop: the path alone
            probs = np.zeros(mdp.n_choices)
        else:
            probs = deterministic_probs(mdp, report.witness_policy)
        title = f"{env.path.name}: reward {report.reward} ({report.verdict})"
        write_picture(target, env, probs, report.violation, report.witness_path, title)
        print(f"wrote {target}")


def _policy(args: argparse.Namespace) -> int:
    if not Path(args.policy).is_file():  # before importing the policy machinery (1-2 s)
        raise InputError(args.policy, "no such policy file")
    from verifier.policy import load_policy
    from verifier.report import format_policy
    from verifier.verdict import policy_reports

    if not 0.0 < args.competence <= 1.0:
        raise InputError("--competence", f"must be in (0, 1], got {args.competence}")
    if args.timeout is not None and not 0.0 < args.timeout < float("inf"):
        raise InputError("--timeout", f"must be a positive number of seconds, got {args.timeout}")
    actions = tuple(a.strip() for a in args.actions.split(",")) if args.actions else None
    policy = load_policy(args.policy, args.observation, actions, args.output, args.timeout)
    reports, drawn = [], []
    for env in _environments(args):
        _drawable(args, env)
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
            drawn.append((env, report))
    if args.png:
        from verifier.picture import write_picture

        for target, (env, report) in zip(_picture_paths(args.png, drawn), drawn, strict=True):
            title = f"{env.path.name}: {Path(args.policy).name} ({report.verdict})"
            if report.decisions is None:
                raise ValueError(f"{report.model}: a policy report without the policy's decisions")
            write_picture(
                target,
                env,
                report.decisions.choice_probs,
                report.failing,
                report.witness_states,
                title,
            )
            print(f"wrote {target}")
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

    from verifier.report import (
        suite_notes,
        suite_summary,
        suite_table,
        write_suite_json,
        write_suite_junit,
    )
    from verifier.runner import run_jobs
    from verifier.suite import grade, load_suite

    suite = load_suite(args.suite, args.timeout, args.max_states)
    jobs = [check.job for check in suite.checks]
    with _suite_progress(len(jobs)) as on_done:
        workers = min(args.workers or os.cpu_count() or 1, len(jobs))  # none idle
        outcomes = run_jobs(jobs, workers, args.scheduler, on_done)
    rows = grade(suite, outcomes)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(suite_table(suite, rows, width=console.width))
    for note in suite_notes(suite, rows):
        console.print(note, highlight=False, markup=False, soft_wrap=True)
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
    from verifier.report import (
        format_audit,
        write_audit_json,
        write_audit_junit,
        write_text_atomic,
    )
    from verifier.rewards import load_reward

    def load(paths):
        return [
            env
            for p in _model_paths(paths)
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
        write_audit_json(args.json, report)
    if args.junit:
        write_audit_junit(args.junit, report)
    if args.repaired and report.repair is not None and report.repair.status == "repaired":
        write_text_atomic(args.repaired, report.repair.toml())
        print(f"wrote {args.repaired}")
    return EXIT_FAIL if report.risks else EXIT_OK


def _states(args: argparse.Namespace) -> int:
    """One line per state: index, valuation and labels (or all of it as JSON)."""
    import json

    from verifier.environment import load_environment
    from verifier.observation import state_listing

    env = load_environment(args.model, constants=_constants(args.const))
    listing = {"model": str(args.model), **state_listing(env.mdp)}
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(listing) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(args.json, f"cannot write: {exc.strerror}") from None
        print(f"wrote {args.json} ({len(listing['states'])} states)")
        return EXIT_OK
    print(f"index  {' '.join(listing['variables'])}  labels")
    for state in listing["states"]:
        valuation = " ".join(map(str, state["valuation"]))
        print(f"{state['index']}  {valuation}  {' '.join(state['labels'])}")
    return EXIT_OK


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
            start=args.start,
            exit_region=args.exit_region,
        )
    except ValueError as exc:
        raise InputError("generate", str(exc)) from None
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

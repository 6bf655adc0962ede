"""The `verify` command: argument parsing, printing and exit codes only; the work is
verifier.commands', as for suites and the Python API.

Exit codes (README, "Commands"): 0 every check holds, 1 some check fails, 2 bad input or
usage (one line naming the file, the place and the problem), 3 a resource limit, a backend
that could not certify, an internal error or an interrupt (Ctrl-C). Each error class carries
its code (verifier/errors.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from verifier import commands, progress
from verifier.arguments import POLICY_FORMATS, POLICY_SUFFIXES, build_parser
from verifier.budget import state_budget
from verifier.errors import InputError, VerifierError
from verifier.output import files, text
from verifier.stdout import ClosedPipeGuard

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_LIMIT = 0, 1, 2, 3


def _constants(values: Sequence[str]) -> dict[str, str]:
    constants = {}
    for item in values:
        for assignment in item.split(","):
            name, sep, value = assignment.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise InputError("--const", f"{assignment!r} is not NAME=VALUE")
            constants[name.strip()] = value.strip()
    return constants


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code. Output cut short by a closed pipe (`| head`) is
    dropped quietly: the command goes on, writes its report files and ends with its code."""
    guard = ClosedPipeGuard(sys.stdout)
    sys.stdout = guard
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        guard.flush()
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return EXIT_LIMIT
    finally:
        sys.stdout = guard.stream
    return code


def _main(argv: list[str]) -> int:
    parser = build_parser()
    commands = _subcommands(parser)
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        first = Path(argv[0])
        if not (first.exists() or first.suffix.lower() in POLICY_SUFFIXES):
            print(
                f"verify: unknown command {argv[0]!r}; commands: {', '.join(commands)} "
                f"(or verify POLICY --model MODEL, POLICY a {'/'.join(POLICY_FORMATS)} file)",
                file=sys.stderr,
            )
            return EXIT_INPUT
        argv.insert(0, "policy")  # the design-card form: verify POLICY --model MODEL
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return int(exc.code or 0)
    if args.command != "suite":  # a suite resolves --max-states against its own budget
        args.max_states = state_budget(getattr(args, "max_states", None))
    try:
        for flag in ("json", "junit", "repaired", "png"):
            if getattr(args, flag, None):
                files.check_writable(args.__dict__[flag], f"--{flag}")
        if sys.stderr.isatty() and args.command != "suite":  # a suite shows its own progress
            progress.enable()
        return _reports_written(args, _HANDLERS[args.command](args))
    except SystemExit as exc:  # library code ending the process: never a verdict
        print(
            f"verify: internal error: sys.exit({exc.code!r}) was called during the command; "
            "no verdict",
            file=sys.stderr,
        )
        return EXIT_LIMIT
    except VerifierError as exc:  # each class carries its exit code (verifier/errors.py)
        heading = f"{exc.heading}: " if exc.heading else ""
        print(f"verify: {heading}{exc}", file=sys.stderr)
        return exc.exit_code
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


def _reports_written(args: argparse.Namespace, code: int) -> int:
    """The command's code, unless a report it promised (--json, --junit, --png, and with
    exit 0 --repaired) is not on disk: then exit 3, so that a CI gate never passes with a
    report missing."""
    if code not in (EXIT_OK, EXIT_FAIL):
        return code
    promised = [(f"--{flag}", getattr(args, flag, None)) for flag in ("json", "junit")]
    promised += [("--png", path) for path in getattr(args, "pictures", [])]
    if code == EXIT_OK:
        promised.append(("--repaired", getattr(args, "repaired", None)))
    missing = [(flag, path) for flag, path in promised if path and not os.path.exists(path)]
    if missing:
        flag, path = missing[0]
        print(f"verify: internal error: the {flag} report {path} was not written", file=sys.stderr)
        return EXIT_LIMIT
    return code


def _say(text: str) -> None:
    """What the verifier tells about an input (warnings, notes): one line on stderr."""
    print(f"verify: {text}", file=sys.stderr)


def _environments(args: argparse.Namespace):
    """Each --model in turn, loaded as it is reached (verifier.commands.environments); none
    when every model was a level family."""
    if not args.model:
        return iter(())
    constants = _constants(args.const)
    return commands.environments(
        args.model, args.spec, constants=constants, max_states=args.max_states, notify=_say
    )


def _finish(args: argparse.Namespace, command: str, reports: list) -> int:
    """Overall line for several checks, the --json, --junit and --html reports, the exit
    code."""
    summary = []
    if len(reports) > 1:
        if command == "policy":
            summary.append(text.summary_line(reports))
        failed = sum(not r.passed for r in reports)
        verdict = "PASS" if not failed else "FAIL"
        summary.append(
            f"overall: {verdict} ({len(reports) - failed} of {len(reports)} checks passed)"
        )
        print("\n".join(summary))
    if args.page is not None:
        families = [text.format_family(r) for r in reports if r.kind == "family"]
        _write_page(args, "\n".join([*families, *summary]))
    if args.json:
        files.write_json(args.json, command, reports)
    if args.junit:
        files.write_junit(args.junit, command, reports)
    unverified = [r.unverified for r in reports if r.kind == "family" and r.unverified]
    return _exit_code(all(r.passed for r in reports), unverified)


def _exit_code(passed: bool, unverified: list[dict]) -> int:
    """0 or 1 for what was judged; but a family run with levels nobody judged (`unverified`:
    their outcomes by name) is 2 when one was bad input, 3 otherwise (a limit, the backend,
    a timeout, a crash), as a single level would be: a rate over what could be judged is
    not the family's verdict."""
    outcomes = {outcome for counts in unverified for outcome in counts}
    if "error" in outcomes:
        return EXIT_INPUT
    if outcomes:
        return EXIT_LIMIT
    return EXIT_OK if passed else EXIT_FAIL


def _open_page(args: argparse.Namespace, command: str) -> None:
    """--html: the page of this run (verifier/output/html.py), filled as levels finish;
    `args.drawable` keeps, by page index, how to get a level's (environment, report) pairs
    again to draw it."""
    args.page, args.drawable, args.next_index = None, {}, 0
    if args.html:
        from verifier.output.html import HtmlReport

        args.page = HtmlReport(args.html, command, " ".join(args.model))


def _page_level(args: argparse.Namespace, env, reports: list) -> None:
    """--html: one environment's reports on the page."""
    if args.page is not None:
        index = args.next_index
        args.next_index += 1
        args.page.add(index, str(env.path), [r.to_dict() for r in reports])
        args.drawable[index] = lambda: [(env, r) for r in reports]


def _write_page(args: argparse.Namespace, summary: str) -> None:
    """--html: draw the levels the page pictures (those that can be drawn), write it."""
    from verifier.errors import InputError as NotDrawable
    from verifier.output.png import draw, require_drawable

    page = args.page
    for entry in page.to_picture():
        pairs = args.drawable.get(entry.index, lambda: [])()
        shown = next((pair for pair in pairs if not pair[1].passed), pairs[0] if pairs else None)
        if shown is None or shown[1].kind not in ("reward", "policy"):
            continue
        try:
            require_drawable(shown[0])
        except NotDrawable:  # a PRISM or Gymnasium model: its entry has no picture
            continue
        target = page.picture_path(entry)
        draw(target, *shown)
        page.set_picture(entry, target)
    print(f"wrote {page.write(summary)}")


def _families(args: argparse.Namespace, command: str, **options) -> list:
    """Each level family among --model verified with rates (printed as it ends); the other
    models are left in args.model."""
    from verifier.inputs.family import is_family

    families = [model for model in args.model if is_family(model)]
    args.model = [model for model in args.model if not is_family(model)]
    if not families:
        for flag in ("sample", "results", "scheduler"):
            if getattr(args, flag) is not None:
                raise InputError(f"--{flag}", "applies to level families ([family] model files)")
        return []
    if args.results and len(families) > 1:
        raise InputError("--results", "one results file holds one family's levels; give one")
    reports = []
    for family in families:
        report = _one_family(args, command, family, options)
        print(text.format_family(report))
        reports.append(report)
    return reports


def _one_family(args: argparse.Namespace, command: str, family: str, options: dict):
    from verifier import families
    from verifier.inputs.family import load_family

    size = len(load_family(family))
    total = size if args.sample is None else min(size, args.sample)
    options = {**options, "spec": args.spec, "max_states": args.max_states}
    offset = args.next_index
    args.next_index += size
    with progress.levels(total, Path(family).stem) as tick:

        def on_level(result: dict) -> None:
            tick(result)
            if args.page is not None:
                index = offset + result["index"]
                reports, status, message = result["reports"], result["status"], result["message"]
                args.page.add(index, result["level"], reports, status, message)
                args.drawable[index] = lambda: families.family_level(
                    command, family, result["index"], **options
                )

        return families.verify_family(
            command,
            family,
            sample=args.sample,
            sample_seed=args.sample_seed,
            results=args.results,
            workers=args.workers,
            scheduler=args.scheduler,
            on_level=on_level,
            **options,
        )


def _check(args: argparse.Namespace) -> int:
    _open_page(args, "check")
    reports = _families(args, "check")
    for env in _environments(args):
        found = commands.check(env)
        for report in found:
            print(text.format_check(report))
            reports.append(report)
        _page_level(args, env, found)
    return _finish(args, "check", reports)


def _reward(args: argparse.Namespace) -> int:
    if args.png and args.compare:
        raise InputError("--png", "draws a reward's witness; it does not apply to --compare")
    if args.compare and args.epsilon is not None:
        raise InputError("--epsilon", "applies to the reward verdict, not to --compare")
    _open_page(args, "reward")
    reports: list = []
    if not args.compare:
        reports = _families(
            args,
            "reward",
            reward=args.reward,
            discount=args.discount,
            epsilon=args.epsilon,
            exact=args.exact,
        )
    drawn: list = []
    for env in _environments(args):
        _drawable(args, env)
        if args.compare:
            comparisons = commands.compare_rewards(
                env, args.reward, args.compare, discount=args.discount, exact=args.exact
            )
            for comparison in comparisons:
                print(text.format_compare(comparison))
                reports.append(comparison)
            _page_level(args, env, comparisons)
            continue
        found = commands.verify_reward(
            env,
            args.reward,
            discount=args.discount,
            epsilon=args.epsilon,
            exact=args.exact,
            tradeoff=args.json is not None,
        )
        for report in found:
            print(text.format_reward(report, env.maze))
            reports.append(report)
            drawn.append((env, report))
        _page_level(args, env, found)
    _pictures(args, drawn)
    return _finish(args, "reward", reports)


def _drawable(args: argparse.Namespace, env) -> None:
    """With --png, refuse a model that cannot be drawn before the work on it."""
    if args.png:
        from verifier.output.png import require_drawable

        require_drawable(env)


def _pictures(args: argparse.Namespace, drawn: list) -> None:
    """--png: one picture per (environment, report), each promised before it is drawn."""
    if args.png:
        from verifier.output.png import picture_paths, write_pictures

        args.pictures = picture_paths(args.png, drawn)
        for written in write_pictures(args.png, drawn):
            print(f"wrote {written}")


def _policy(args: argparse.Namespace) -> int:
    actions = [a.strip() for a in args.actions.split(",")] if args.actions else None
    _open_page(args, "policy")
    reports: list = _families(
        args,
        "policy",
        policy=args.policy,
        observation=args.observation,
        actions=actions,
        output=args.output,
        timeout=args.timeout,
        memory=args.memory,
        reward=args.reward,
        discount=args.discount,
        stochastic=args.stochastic,
        competence=args.competence,
        near_optimal=args.near_optimal,
        epsilon=args.epsilon,
    )
    if not args.model:
        return _finish(args, "policy", reports)
    policy = commands.load_policy(
        args.policy,
        observation=args.observation,
        actions=actions,
        output=args.output,
        timeout=args.timeout,
        memory=args.memory,
    )
    drawn: list = []
    for env in _environments(args):
        _drawable(args, env)
        found = commands.verify_policy(
            policy,
            env,
            reward=args.reward,
            discount=args.discount,
            stochastic=args.stochastic,
            competence=args.competence,
            near_optimal=args.near_optimal,
            epsilon=args.epsilon,
            name=args.policy,
            progress=progress.batches(env.mdp.n_states),
        )
        for report in found:
            print(text.format_policy(report))
            reports.append(report)
            drawn.append((env, report))
        _page_level(args, env, found)
    _pictures(args, drawn)
    return _finish(args, "policy", reports)


def _suite(args: argparse.Namespace) -> int:
    """Run the suite, show progress, print the table; exit 1 when a verdict is not as
    expected, else 2 when a check's input was bad, else 3 when a check hit a limit, timed out
    or crashed, else 0."""
    from rich.console import Console

    from verifier.suite import load_suite, run_suite

    suite = load_suite(args.suite, args.timeout, args.max_states, tradeoff=bool(args.json))
    with progress.jobs(len(suite.checks)) as on_done:
        result = run_suite(suite, workers=args.workers, scheduler=args.scheduler, on_done=on_done)
    rows = result.rows
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(text.suite_table(suite, rows, width=console.width))
    for note in text.suite_notes(suite, rows):
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    console.print(text.suite_summary(suite, rows), highlight=False)
    if args.json:
        files.write_suite_json(args.json, result)
    if args.junit:
        files.write_suite_junit(args.junit, result)
    missed = {row.status for row in rows if not row.ok}
    if "FAIL" in missed:
        return EXIT_FAIL
    if "error" in missed:
        return EXIT_INPUT
    return EXIT_LIMIT if missed else EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    """Exit 1 when some proxy is a goal-misgeneralization risk, else 0."""
    from verifier.inputs.family import is_family

    if any(is_family(model) for model in args.train + args.deploy):
        return _audit_families(args)
    if args.repaired and not (args.repair or args.features):
        raise InputError("--repaired", "needs --repair R or --features L,.. to search for a repair")
    options = {"max_states": args.max_states, "notify": _say}
    train = commands.load_environments(args.train, args.spec, **options)
    deploy = commands.load_environments(args.deploy, args.spec, **options)
    features = [f.strip() for f in (args.features or "").split(",") if f.strip()]
    report = commands.audit(
        train,
        deploy,
        proxies=args.proxies,
        repair=args.repair,
        features=features,
        variants=not args.no_variants,
        max_states=args.max_states,
    )
    mazes = {str(env.path): env.maze for env in train + deploy if env.maze is not None}
    print(text.format_audit(report, mazes))
    if args.json:
        files.write_audit_json(args.json, report)
    if args.junit:
        files.write_audit_junit(args.junit, report)
    if args.repaired and report.repair is not None and report.repair.status == "repaired":
        files.write_text_atomic(args.repaired, report.repair.toml())
        print(f"wrote {args.repaired}")
    elif args.repaired:  # asked for and not found: not a passing run
        status = report.repair.status if report.repair is not None else "not searched"
        print(
            f"verify: {args.repaired} not written: no repaired reward ({status})", file=sys.stderr
        )
        return EXIT_FAIL
    return EXIT_OK if report.passed else EXIT_FAIL


def _audit_families(args: argparse.Namespace) -> int:
    """The audit of a training family against a deployment family, with rates."""
    from verifier import families
    from verifier.inputs.family import load_family

    if len(args.train) != 1 or len(args.deploy) != 1:
        raise InputError("--train", "a family audit takes one training and one deployment family")
    for flag in ("repair", "features", "repaired", "junit"):
        if getattr(args, flag):
            raise InputError(f"--{flag}", "applies to the audit of model sets, not of families")
    total = sum(len(load_family(path)) for path in args.train + args.deploy)
    if args.sample is not None:
        total = 2 * args.sample
    with progress.levels(total, "audit") as tick:
        report = families.audit_families(
            args.train[0],
            args.deploy[0],
            spec=args.spec,
            proxies=args.proxies,
            floor=args.floor,
            max_states=args.max_states,
            sample=args.sample,
            sample_seed=args.sample_seed,
            results=args.results,
            workers=args.workers,
            scheduler=args.scheduler,
            on_level=tick,
        )
    print(text.format_family_audit(report))
    if args.json:
        files.write_audit_json(args.json, report)
    return _exit_code(report.passed, list(report.unverified.values()))


def _states(args: argparse.Namespace) -> int:
    """One line per state: index, valuation and labels (or all of it as JSON)."""
    listing = commands.state_listing(args.model, _constants(args.const), max_states=args.max_states)
    if args.json:
        files.write_text_atomic(args.json, json.dumps(listing) + "\n")
        print(f"wrote {args.json} ({len(listing['states'])} states)")
    else:
        print(text.format_states(listing))
    return EXIT_OK


def _compile(args: argparse.Namespace) -> int:
    output, props = commands.compile_maze(args.maze, args.output, notify=_say)
    print(f"wrote {output} and {props}")
    return EXIT_OK


def _generate(args: argparse.Namespace) -> int:
    options = ["seed", "objects", "keys", "lava", "exit_color", "slip", "start", "exit_region"]
    options.append("max_states")
    maze = commands.generate_maze(args.size, **{key: getattr(args, key) for key in options})
    if not args.output:
        sys.stdout.write(maze)
        return EXIT_OK
    files.write_text_atomic(args.output, maze)
    print(f"wrote {args.output}")
    return EXIT_OK


_HANDLERS = {
    "check": _check,
    "reward": _reward,
    "policy": _policy,
    "suite": _suite,
    "audit": _audit,
    "states": _states,
    "compile": _compile,
    "generate": _generate,
}


def entry_point() -> None:
    """The `verify` console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()

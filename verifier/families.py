"""A command over a level family, at scale: levels verified in parallel (local worker
processes, or a Dask cluster), each level's reports streamed to a JSON-lines results file as
it finishes, a rerun resuming from that file, and the rates folded as they come
(verifier/analyses/rates.py) (README, "Level families").

Levels go to the workers in jobs of a few levels each (`verify_levels`), so that a worker
loads the family and the policy once for many levels. A job that crashes or times out is
split and its levels retried one by one; on a Dask cluster a job whose worker is lost is
run again by the scheduler. A level is finished when its result is in the results file:
whatever happens to the run afterwards, it is not verified again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from verifier import commands
from verifier.analyses.audit_family import FLOOR, FamilyAuditReport, ProxyRates, family_audit
from verifier.analyses.rates import FamilyReport, Rates, family_report
from verifier.budget import DEFAULT_MAX_STATES
from verifier.errors import InputError, VerifierError
from verifier.inputs.family import Family, load_family
from verifier.runner import Job, Outcome, stream_jobs
from verifier.version import __version__

if TYPE_CHECKING:
    from verifier.inputs.environment import Environment

COMMANDS = ("check", "reward", "policy")  # and "proxies", the audit's (audit_families)
LEVELS_PER_JOB = 16
SAMPLE_SEED = 0


def verify_family(
    command: str,
    family: str | os.PathLike,
    *,
    sample: int | None = None,
    sample_seed: int = 0,
    results: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    timeout: float | None = None,
    on_level: Callable[[dict], None] | None = None,
    **options: Any,
) -> FamilyReport:
    """`check`, `verify_reward` or `verify_policy` (`command`: "check", "reward" or
    "policy", with that function's keyword options) over a level family, with rates:
    every level, or `sample` of them drawn uniformly (a Clopper-Pearson interval per
    verdict), in parallel (`workers` processes, or the Dask cluster at `scheduler`), each
    level's result streamed to `results` (JSON lines; a rerun resumes from it). The policy
    is a file here, as workers load it (README, "Level families").

    Examples
    --------
    >>> report = verify_family(                                          # doctest: +SKIP
    ...     "policy", "models/langosco/families/deploy.toml",
    ...     policy="models/langosco/policy-n1.pt",
    ...     sample=100, results="deploy.jsonl")
    >>> [(row["verdict"], row["cause"], row["fraction"]) for row in report.counts]  # doctest: +SKIP
    """
    return run_family(
        command,
        family,
        _family_options(command, options, timeout),
        sample=sample,
        sample_seed=sample_seed,
        results=results,
        workers=workers,
        scheduler=scheduler,
        timeout=timeout,
        on_level=on_level,
    )


def family_level(
    command: str, family: str | os.PathLike, index: int, *, timeout: float | None = None, **options
) -> list[tuple[Environment, Any]]:
    """(environment, report) of each report of `command` on level `index` of a family, as
    `verify_family` with the same options verifies it (e.g. to draw the level)."""
    return level_reports(
        os.fspath(family), command, _family_options(command, options, timeout), index
    )


def _family_options(command: str, options: dict, timeout: float | None) -> dict:
    """A family run's options as its jobs take them: JSON data, with the files absolute
    (workers may run elsewhere) and a policy as its file and its loading options."""
    options = dict(options)
    if command == "policy":
        policy = options.pop("policy", None)
        if not isinstance(policy, str | os.PathLike) or not Path(policy).is_file():
            raise InputError(str(policy), "a family is verified with a policy file (no such file)")
        loading = {
            key: options.pop(key)
            for key in ("observation", "actions", "output", "memory")
            if options.get(key)
        }
        if timeout is not None:
            loading["timeout"] = timeout
        options = {**options, "policy": os.path.abspath(policy), "policy_options": loading}
    for key in ("reward", "compare"):
        value = options.get(key)
        if isinstance(value, str | os.PathLike) and Path(value).is_file():
            options[key] = os.path.abspath(value)
    return {k: v for k, v in options.items() if v is not None}


def run_family(
    command: str,
    family_path: str | os.PathLike,
    options: dict,
    *,
    sample: int | None = None,
    sample_seed: int = SAMPLE_SEED,
    results: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    levels_per_job: int | None = None,
    timeout: float | None = None,
    on_level: Callable[[dict], None] | None = None,
) -> FamilyReport:
    """`command` ("check", "reward" or "policy", with the keyword `options` of
    verifier.commands' function: JSON data only, e.g. file paths) on every level of the
    family, or on `sample` levels drawn uniformly without replacement (seeded by
    `sample_seed`). `results` (a .jsonl path) receives each level's result as it finishes;
    a rerun with the same file skips the levels it holds. `on_level` is called with each
    result, those read back from the results file too (for progress and --html).
    `timeout` bounds one level's work in seconds."""
    if command not in COMMANDS:
        raise ValueError(f"run_family: command {command!r}; known: {', '.join(COMMANDS)}")
    started = time.perf_counter()
    rates = Rates()
    family, chosen = run_levels(
        command,
        family_path,
        options,
        rates.add,
        sample=sample,
        sample_seed=sample_seed,
        results=results,
        workers=workers,
        scheduler=scheduler,
        levels_per_job=levels_per_job,
        timeout=timeout,
        on_level=on_level,
    )
    if not rates.objectives:  # no level verified: φ as given, for the report's heading
        rates.objectives.add(options.get("spec") or family.intended or "")
    return family_report(
        rates,
        str(family.path),
        family.name,
        command,
        len(family),
        None if sample is None else chosen,
        None if results is None else str(results),
        time.perf_counter() - started,
    )


def run_levels(
    command: str,
    family_path: str | os.PathLike,
    options: dict,
    fold: Callable[[dict], None],
    *,
    sample: int | None = None,
    sample_seed: int = SAMPLE_SEED,
    results: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    levels_per_job: int | None = None,
    timeout: float | None = None,
    on_level: Callable[[dict], None] | None = None,
) -> tuple[Family, int]:
    """The engine of a family run: every chosen level's result (from the results file, or
    verified now by `verify_levels` in jobs) is given to `fold`. (The family, and how many
    levels were chosen.)"""
    family = load_family(os.fspath(family_path))
    chosen = _chosen(family, sample, sample_seed)
    header = {
        "verifier": __version__,
        "family": str(family.path),
        "command": command,
        "options": options,
        "sample": sample,
        "sample_seed": sample_seed if sample is not None else None,
    }
    done: set[int] = set()
    with contextlib.ExitStack() as stack:
        sink = None
        if results is not None:
            done, previous = _resume(Path(results), header)
            for result in previous:
                fold(result)
                if on_level is not None:
                    on_level(result)
            sink = stack.enter_context(Path(results).open("a", encoding="utf-8"))
            if Path(results).stat().st_size == 0:
                sink.write(json.dumps({"header": header}) + "\n")
                sink.flush()

        def record(result: dict) -> None:
            fold(result)
            if sink is not None:
                sink.write(json.dumps(result) + "\n")
                sink.flush()
            if on_level is not None:
                on_level(result)

        todo = (int(i) for i in chosen if int(i) not in done)
        # Jobs of up to LEVELS_PER_JOB levels, and at least about 32 of them, so that every
        # worker has work and a lost one takes little with it.
        remaining = len(chosen) - len(done)
        per_job = levels_per_job or max(1, min(LEVELS_PER_JOB, remaining // 32))
        _run(family, command, options, todo, per_job, workers, scheduler, timeout, record)
    return family, len(chosen)


def _chosen(family: Family, sample: int | None, seed: int) -> np.ndarray:
    """The level indices to verify: all, or a uniform sample without replacement, sorted.
    A sample of a huge family draws its indices without enumerating the family."""
    total = len(family)
    if sample is None or sample >= total:
        return np.arange(total, dtype=np.int64)
    if sample < 1:
        raise InputError("--sample", f"must be a positive number of levels, got {sample}")
    generator = np.random.default_rng(seed)
    return np.sort(generator.choice(total, size=sample, replace=False)).astype(np.int64)


def _resume(path: Path, header: dict) -> tuple[set[int], list[dict]]:
    """The finished levels of a results file written by the same run (same family, command,
    options and sample), and their results; a file of another run is an InputError. A last
    line cut short (the run was killed while writing it) is dropped from the file."""
    if not path.exists():
        return set(), []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read the results file: {exc}") from None
    complete = text[: text.rfind("\n") + 1]
    if len(complete) != len(text):
        with path.open("w", encoding="utf-8") as file:
            file.write(complete)
    lines = complete.splitlines()
    if not lines:
        return set(), []
    try:
        first = json.loads(lines[0])["header"]
    except (ValueError, KeyError, TypeError):
        raise InputError(
            str(path), "not a results file of verify (no header line)", "line 1"
        ) from None
    if first != json.loads(json.dumps(header)):
        differing = sorted(k for k in header if first.get(k) != json.loads(json.dumps(header))[k])
        raise InputError(
            str(path),
            f"holds the results of another run ({', '.join(differing)} differ); "
            "give a new --results file to start afresh",
            "line 1",
        )
    done: set[int] = set()
    found: list[dict] = []
    for number, line in enumerate(lines[1:], 2):
        try:
            result = json.loads(line)
            index = int(result["index"])
        except (ValueError, KeyError, TypeError):
            raise InputError(str(path), "not a level's result", f"line {number}") from None
        if result.get("status") in ("done", "error") and index not in done:
            done.add(index)
            found.append(result)
    return done, found


def _run(family, command, options, todo, per_job, workers, scheduler, timeout, record) -> None:
    """Verify the levels of `todo` in jobs of `per_job`, recording each result; a job that
    gave no results (it crashed, timed out or its worker died) is retried level by level."""
    retry: list[int] = []

    def jobs(indices: Iterator[int], size: int) -> Iterator[Job]:
        chunk: list[int] = []
        for index in indices:
            chunk.append(index)
            if len(chunk) == size:
                yield _job(family, command, options, chunk, timeout)
                chunk = []
        if chunk:
            yield _job(family, command, options, chunk, timeout)

    def finished(outcome: Outcome) -> None:
        indices = outcome.job.kwargs["indices"]
        if outcome.status == "done" and outcome.result is not None:
            for result in outcome.result["levels"]:
                record(result)
        elif len(indices) > 1:
            retry.extend(indices)
        else:
            (index,) = indices
            record(_result(family, index, outcome.status, outcome.message))

    stream_jobs(jobs(todo, per_job), workers, scheduler, finished)
    if retry:
        stream_jobs(jobs(iter(sorted(retry)), 1), workers, scheduler, finished)


def _job(family: Family, command: str, options: dict, indices: list[int], timeout) -> Job:
    return Job(
        f"{family.name}[{indices[0]}..{indices[-1]}]",
        "verifier.families:verify_levels",
        {"family": str(family.path), "command": command, "options": options, "indices": indices},
        None if timeout is None else timeout * len(indices),
    )


def _result(family: Family, index: int, status: str, message: str, reports=()) -> dict:
    return {
        "index": index,
        "level": family.level_name(index),
        "status": status,
        "message": message,
        "reports": list(reports),
    }


def verify_levels(family: str, command: str, options: dict, indices: list[int]) -> dict:
    """The job: `command` on the levels `indices` of the family file, each level's outcome
    apart (bad input in one level is that level's result, not the job's)."""
    loaded = _family(family, os.stat(family).st_mtime_ns)
    found = []
    for index in indices:
        try:
            data = [
                report if isinstance(report, dict) else report.to_dict()
                for _, report in level_reports(family, command, options, index)
            ]
            found.append(_result(loaded, index, "done", "", data))
        except VerifierError as exc:
            found.append(_result(loaded, index, exc.outcome, str(exc)))
        except MemoryError:
            found.append(_result(loaded, index, "limit", "out of memory"))
    return {"levels": found}


def level_reports(family: str, command: str, options: dict, index: int) -> list[tuple]:
    """(environment, report) for each report `command` gives on level `index` of the family
    file, as its job verifies it (the audit's "proxies" give a dict); VerifierError for bad
    input or a limit."""
    from verifier.inputs.load import level_environments

    loaded = _family(family, os.stat(family).st_mtime_ns)
    options = dict(options)
    spec = options.pop("spec", None)
    max_states = options.pop("max_states", DEFAULT_MAX_STATES)
    pairs: list[tuple] = []
    for env in level_environments(loaded, index, spec, max_states):
        if command == "check":
            pairs += [(env, r) for r in commands.check(env)]
        elif command == "reward":
            pairs += [(env, r) for r in commands.verify_reward(env, **options)]
        elif command == "policy":
            loader = json.dumps(options.get("policy_options", {}), sort_keys=True)
            policy = _policy(loader, options["policy"])
            rest = {k: v for k, v in options.items() if k not in ("policy", "policy_options")}
            pairs += [(env, r) for r in commands.verify_policy(policy, env, **rest)]
        else:
            pairs.append((env, _distinguishing(env, options["proxies"])))
    return pairs


def _distinguishing(env, proxies: list) -> dict:
    """Which proxies the level distinguishes from φ: some proxy-optimal policy fails φ
    there (analyses/audit.py, `evaluate`)."""
    from verifier.analyses.audit import Proxy, evaluate
    from verifier.analyses.reward_verdict import ALIGNED

    cache: dict = {}
    verdicts = {p[0]: evaluate(env, Proxy(*p), cache).verdict for p in proxies}
    return {
        "kind": "proxies",
        "objective": env.objective,
        "distinguishing": {name: verdict != ALIGNED for name, verdict in verdicts.items()},
    }


@functools.lru_cache(maxsize=8)
def _family(path: str, mtime: int) -> Family:
    """A family file read once per worker (and again if it changes)."""
    return load_family(path)


@functools.lru_cache(maxsize=8)
def _policy(options: str, path: str):
    """A policy file loaded once per worker for every level of its jobs."""
    return commands.load_policy(path, **json.loads(options))


def audit_families(
    train_path: str | os.PathLike,
    deploy_path: str | os.PathLike,
    *,
    spec: str | None = None,
    proxies: str | os.PathLike | None = None,
    floor: float = FLOOR,
    max_states: int | None = DEFAULT_MAX_STATES,
    sample: int | None = None,
    sample_seed: int = SAMPLE_SEED,
    results: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    on_level: Callable[[dict], None] | None = None,
) -> FamilyAuditReport:
    """`audit` of a training family against a deployment family (README, "Level
    families"): for each proxy goal the fraction of levels that distinguish it from φ, on
    training and on deployment (analyses/audit_family.py), the risks (rare in training, not
    in deployment: below `floor` and at least `floor`, default 0.05), and the fraction of
    deployment-like levels to mix into training that fixes them. The proxies are the
    candidate goal labels of the first level of each family, the four corners (maze
    families), and those of the file `proxies` (as for `audit`). The other options are
    those of `verify_family`; `results` names the results files: RESULTS-train.jsonl and
    RESULTS-deploy.jsonl.

    Examples
    --------
    >>> report = audit_families("train.toml", "deploy.toml", sample=200)  # doctest: +SKIP
    >>> report.risks, report.fix["mixing"]                              # doctest: +SKIP
    """
    from verifier.analyses.audit import candidate_proxies, load_proxies
    from verifier.inputs.load import level_environments

    if not 0.0 < floor <= 1.0:
        raise InputError("--floor", f"must be in (0, 1], got {floor}")
    user = load_proxies(os.fspath(proxies)) if proxies else None
    started = time.perf_counter()
    families = [load_family(os.fspath(path)) for path in (train_path, deploy_path)]
    firsts = [level_environments(f, 0, spec, max_states)[0] for f in families]
    found = [
        p
        for p in candidate_proxies([firsts[0]], [firsts[1]], user)
        if p.kind != "cell"  # φ's target cells differ level by level: no proxy of a family
    ]
    listed = [[p.name, p.kind, p.text, p.position] for p in found]
    options = {"spec": spec, "max_states": max_states, "proxies": listed}
    options = {k: v for k, v in options.items() if v is not None}
    rates = (ProxyRates(), ProxyRates())
    sizes = []
    for side, (family, fold) in enumerate(zip(families, rates, strict=True)):
        stem = (
            None
            if results is None
            else f"{Path(results).with_suffix('')}-{('train', 'deploy')[side]}.jsonl"
        )
        _, chosen = run_levels(
            "proxies",
            family.path,
            options,
            fold.add,
            sample=sample,
            sample_seed=sample_seed,
            results=stem,
            workers=workers,
            scheduler=scheduler,
            on_level=on_level,
        )
        sizes.append((len(family), chosen))
    return family_audit(
        rates[0],
        rates[1],
        [(p.name, p.kind, p.text) for p in found],
        (str(families[0].path), str(families[1].path)),
        (sizes[0], sizes[1]),
        floor,
        time.perf_counter() - started,
    )

"""Suites: many checks over environments x rewards x policies x properties, with expectations.

A suite TOML file (format in the README) names environment sets (files and globs, or seeded
generated mazes), rewards, policies and a list of checks, each optionally with the verdict
it expects. `load_suite` validates the file once, at the edge, and expands every check into
one job per environment (an audit into one job); `run_check` is the job, run by
`verifier.runner` in a process of its own, and does what the command of its kind does
(verifier.commands); `grade` compares the outcomes with the expectations; `run_suite` does
all three.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from verifier import commands, runner
from verifier.budget import DEFAULT_MAX_STATES, state_budget
from verifier.documents import parse_toml, read_text
from verifier.errors import InputError, ResourceLimit
from verifier.runner import Job, Outcome
from verifier.verdicts import (
    AuditVerdict,
    CheckVerdict,
    CompareVerdict,
    PolicyVerdict,
    RewardVerdict,
)

if TYPE_CHECKING:
    from verifier.inputs.environment import Environment

VERDICTS = {
    "check": (CheckVerdict.HOLDS, CheckVerdict.FAILS),
    "reward": tuple(RewardVerdict),
    "compare": tuple(CompareVerdict),
    "policy": tuple(PolicyVerdict),
    "audit": tuple(AuditVerdict),
}
# Outcomes a check may be expected to end in instead of a verdict (a regression suite may
# pin down that a malformed file is refused, or that a model exceeds a limit).
EXPECTABLE_OUTCOMES = ("error", "limit", "backend", "timeout")

_SUITE_KEYS = ("name", "description", "timeout", "max_states")
_FILES_KEYS = ("files", "const")
_GENERATE_KEYS = (
    "size",
    "seeds",
    "objects",
    "keys",
    "lava",
    "exit_color",
    "exits",
    "slip",
    "start",
    "exit_region",
)
_POLICY_KEYS = ("file", "observation", "actions", "output")
_CHECK_KEYS = {
    "check": (),
    "reward": ("reward", "discount", "exact", "epsilon"),
    "compare": ("reward", "compare", "discount", "exact"),
    "policy": (
        "policy",
        "reward",
        "discount",
        "stochastic",
        "competence",
        "near_optimal",
        "epsilon",
    ),
    "audit": ("train", "deploy", "proxies", "repair", "features", "variants"),
}
_COMMON_CHECK_KEYS = ("name", "kind", "environments", "spec", "expect", "timeout", "max_states")
_AUDIT_COMMON_KEYS = ("name", "kind", "spec", "expect", "timeout", "max_states")
MAX_SEEDS = 10_000  # generated mazes per environment set
MAX_TIMEOUT = 1e9  # seconds: beyond it a timeout means none


@dataclass(frozen=True, slots=True)
class SuiteCheck:
    """One check of a suite expanded to one environment: the job to run, what it expects."""

    name: str
    kind: str
    environment: str
    expect: str | None
    job: Job


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    description: str
    path: Path
    checks: tuple[SuiteCheck, ...]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a suite's result: a check on one environment and one property."""

    check: SuiteCheck
    outcome: Outcome
    verdict: str  # the check's verdict, or the outcome when it gave none (error, limit, ...)
    objective: str
    ok: bool
    report: dict | None

    @property
    def environment(self) -> str:
        """The check's environment; one seed of a Gymnasium model with several is named
        `FILE@seed=N`, as its report is."""
        model = (self.report or {}).get("model", "")
        seed = model.rpartition("@")[2] if "@seed=" in model else ""
        return f"{self.check.environment}@{seed}" if seed else self.check.environment

    @property
    def status(self) -> str:
        """`ok`, `FAIL` (a verdict other than expected, or a failing check where none was
        expected), or the outcome that kept the check from a verdict."""
        if self.ok:
            return "ok"
        return "FAIL" if self.outcome.status == "done" else self.outcome.status

    def to_dict(self) -> dict:
        return {
            "check": self.check.name,
            "kind": self.check.kind,
            "environment": self.environment,
            "objective": self.objective,
            "verdict": self.verdict,
            "expect": self.check.expect,
            "status": self.status,
            "message": self.outcome.message,
            "seconds": round(self.outcome.seconds, 6),
            "peak_rss_mb": self.outcome.peak_rss_mb,
            "report": self.report,
        }


def load_suite(
    path: str | Path,
    timeout: float | None = None,
    max_states: int | None = None,
    tradeoff: bool = False,
) -> Suite:
    """Read and validate a suite file; every problem in it is reported in one InputError.

    `timeout` and `max_states` (from the command line) override the suite's own; with
    `tradeoff` (`verify suite --json`) reward checks add their trade-off, as `verify reward
    --json` does."""
    path = Path(path)
    source = str(path)
    doc = parse_toml(read_text(path, "suite"), source)
    problems: list[str] = []
    _unknown(doc, ("suite", "environments", "rewards", "policies", "check"), "", problems)
    header = _table(doc, "suite", problems)
    _unknown(header, _SUITE_KEYS, "suite.", problems)
    base = path.resolve().parent  # absolute, so that jobs find the files from any directory
    environments = {
        name: _environment_set(name, spec, base, problems)
        for name, spec in _table(doc, "environments", problems).items()
    }
    rewards = {
        name: _file(value, base, f"rewards.{name}", problems)
        for name, value in _table(doc, "rewards", problems).items()
    }
    policies = {
        name: _policy(name, value, base, problems)
        for name, value in _table(doc, "policies", problems).items()
    }
    for key in ("name", "description"):
        if key in header and not isinstance(header[key], str):
            problems.append(f"suite.{key}: must be a string, got {header[key]!r}")
    checks_doc = doc.get("check", [])
    if not isinstance(checks_doc, list) or not checks_doc:
        problems.append("check: the suite needs at least one [[check]] table")
        checks_doc = []
    overrides = {"timeout": timeout, "max_states": max_states}
    checks: list[SuiteCheck] = []
    for index, entry in enumerate(checks_doc):
        where = f"check[{index + 1}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        limits = {
            key: _limit(key, override, entry, header, where, problems)
            for key, override in overrides.items()
        }
        context = (environments, rewards, policies, base, limits, tradeoff)
        checks += _expand(entry, where, context, problems)
    if problems:
        raise InputError(source, "; ".join(problems))
    return Suite(header.get("name", path.stem), header.get("description", ""), path, tuple(checks))


def run_check(
    kind: str,
    model: str | None = None,
    generate: dict | None = None,
    const: dict | None = None,
    spec: str | None = None,
    max_states: int | None = None,
    **options,
) -> dict:
    """The job: one check on one environment source (a model file, or a maze to generate),
    as `verify check|reward|policy` does it (verifier.commands), or an audit on its `train`
    and `deploy` sources (lists of such sources) as `verify audit` does. `options` are the
    command's. Returns {"reports": [report dicts]}."""
    if kind == "audit":
        train = [e for s in options.pop("train") for e in _load(s, spec, max_states)]
        deploy = [e for s in options.pop("deploy") for e in _load(s, spec, max_states)]
        return {
            "reports": [commands.audit(train, deploy, max_states=max_states, **options).to_dict()]
        }
    source = {"model": model, "generate": generate, "const": const}
    environments = _load(source, spec, max_states)
    reports: list  # the kind's reports
    if kind == "check":
        reports = commands.check(environments)
    elif kind == "reward":
        reports = commands.verify_reward(environments, **options)
    elif kind == "compare":
        reports = commands.compare_rewards(
            environments, options.pop("reward"), options.pop("compare"), **options
        )
    else:
        policy = dict(options.pop("policy"))
        file = policy.pop("file")
        reports = commands.verify_policy(file, environments, **policy, **options)
    return {"reports": [report.to_dict() for report in reports]}


def _load(source: dict, spec: str | None, max_states: int | None) -> list[Environment]:
    """The environments of one source: {"model": path, "const": {...}} (every seed of a
    Gymnasium model) or {"generate": random_maze's arguments}."""
    if source.get("generate") is not None:
        from verifier.inputs.load import maze_environment
        from verifier.inputs.maze_generate import random_maze

        maze = random_maze(**source["generate"], max_states=max_states)
        return [maze_environment(maze, maze.name, spec, max_states)]
    if source.get("model") is None:
        raise ValueError("run_check: give `model` or `generate`")
    return commands.load_environments(
        source["model"],
        spec,
        constants=source.get("const"),
        max_states=max_states,
        notify=_quiet,
    )


def _quiet(text: str) -> None:
    """Warnings and notes about a suite's inputs are not shown (each job would repeat them)."""


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """The rows of a suite run, each with whether it met its expectation."""

    suite: Suite
    rows: tuple[Row, ...]

    @property
    def passed(self) -> bool:
        return all(row.ok for row in self.rows)

    def to_dict(self) -> dict:
        return {
            "suite": self.suite.name,
            "file": str(self.suite.path),
            "verdict": "pass" if self.passed else "fail",
            "rows": [row.to_dict() for row in self.rows],
        }


def run_suite(
    suite: str | Path | Suite,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    timeout: float | None = None,
    max_states: int | None = None,
    on_done=None,
) -> SuiteResult:
    """`verify suite`: run every check of a suite file (or a Suite already loaded) in worker
    processes, `workers` at once (default: the CPU count, at most one per check), or on the
    Dask cluster at `scheduler`, and grade them. `timeout` (seconds per check) and
    `max_states` override the suite's; `on_done(outcome)` is called as each check ends.

    Examples
    --------
    >>> result = run_suite("benchmarks/suites/redblue.toml", workers=2)  # doctest: +SKIP
    >>> result.passed, len(result.rows)                                  # doctest: +SKIP
    (True, 16)
    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite, timeout, max_states)
    jobs = [check.job for check in suite.checks]
    workers = min(workers or os.cpu_count() or 1, len(jobs))  # none idle
    outcomes = runner.run_jobs(jobs, workers, scheduler, on_done)
    return SuiteResult(suite, tuple(grade(suite, outcomes)))


def grade(suite: Suite, outcomes: list[Outcome]) -> list[Row]:
    """One row per check, environment and property, with whether it met its expectation."""
    rows = []
    for check, outcome in zip(suite.checks, outcomes, strict=True):
        if outcome.status != "done":
            ok = check.expect == outcome.status
            rows.append(Row(check, outcome, outcome.status, "", ok, None))
            continue
        if outcome.result is None:
            raise ValueError(f"job {outcome.job.key!r} is done without a result")
        for report in outcome.result["reports"]:
            verdict = report["verdict"]
            ok = verdict == check.expect if check.expect else report["passed"]
            rows.append(Row(check, outcome, verdict, report["objective"], ok, report))
    return rows


def _expand(entry, where, context, problems):
    """A [[check]] table -> one SuiteCheck per environment of its sets (an audit: one)."""
    environments, rewards, policies, base, limits, tradeoff = context
    kind = entry.get("kind")
    if kind not in VERDICTS:
        problems.append(f"{where}.kind: must be one of {', '.join(VERDICTS)}, got {kind!r}")
        return []
    common = _AUDIT_COMMON_KEYS if kind == "audit" else _COMMON_CHECK_KEYS
    _unknown(entry, common + _CHECK_KEYS[kind], f"{where}.", problems)
    expect = entry.get("expect")
    allowed = VERDICTS[kind] + EXPECTABLE_OUTCOMES
    if expect is not None and expect not in allowed:
        problems.append(f"{where}.expect: {expect!r} is not a {kind} verdict; known: "
                        + ", ".join(allowed))  # fmt: skip
    kwargs: dict = {"kind": kind, "max_states": limits["max_states"]}
    if "spec" in entry:
        if not isinstance(entry["spec"], str) or not entry["spec"].strip():
            problems.append(f"{where}.spec: must be a PRISM property string")
        kwargs["spec"] = entry["spec"]
    if kind in ("reward", "compare", "policy"):
        _reward_options(entry, where, kind, rewards, base, kwargs, problems)
    if kind == "reward" and tradeoff:
        kwargs["tradeoff"] = True
    if kind == "policy":
        name = entry.get("policy")
        if name in policies:
            kwargs["policy"] = policies[name]
        else:
            known = ", ".join(policies) or "none defined"
            problems.append(f"{where}.policy: {name!r} is not under [policies] ({known})")
    if "name" in entry and not isinstance(entry["name"], str):
        problems.append(f"{where}.name: must be a string, got {entry['name']!r}")
        entry = {k: v for k, v in entry.items() if k != "name"}
    label = entry.get("name") or " ".join(
        str(entry[k]) for k in ("kind", "reward", "compare", "policy") if k in entry
    )
    if kind == "audit":
        return _audit_check(entry, where, label, kwargs, context, problems)
    checks = []
    for set_name in _set_names(entry, "environments", where, environments, problems):
        for display, source in environments[set_name]:
            job = Job(
                key=f"{label} | {display}",
                function="verifier.suite:run_check",
                kwargs={**kwargs, **source},
                timeout=limits["timeout"],
            )
            checks.append(SuiteCheck(label, kind, display, expect, job))
    return checks


def _reward_options(entry, where, kind, rewards, base, kwargs, problems) -> None:
    """The options of a reward, compare or policy check, validated, into `kwargs`."""
    required = kind != "policy"
    for key in ("reward", "compare") if kind == "compare" else ("reward",):
        if key in entry and not isinstance(entry[key], str):
            problems.append(f"{where}.{key}: a name under [rewards], or a file")
        elif key in entry:
            kwargs[key] = rewards.get(entry[key]) or _reward_name(entry[key], base)
        elif required:
            problems.append(f"{where}.{key}: missing (a name under [rewards], or a file)")
    for key in ("discount", "competence"):
        if key in entry:
            if not _number(entry[key]) or not 0 < entry[key] <= 1:
                problems.append(f"{where}.{key}: must be in (0, 1], got {entry[key]!r}")
            kwargs[key] = entry[key]
    if "near_optimal" in entry:
        if not _number(entry["near_optimal"]) or not 0 <= entry["near_optimal"] < 1:
            problems.append(
                f"{where}.near_optimal: must be in [0, 1), got {entry['near_optimal']!r}"
            )
        kwargs["near_optimal"] = entry["near_optimal"]
    if "epsilon" in entry:
        if not _number(entry["epsilon"]) or not 0 <= entry["epsilon"] < float("inf"):
            problems.append(f"{where}.epsilon: must be a number >= 0, got {entry['epsilon']!r}")
        kwargs["epsilon"] = entry["epsilon"]
    for key in ("exact", "stochastic"):
        if key in entry:
            if not isinstance(entry[key], bool):
                problems.append(f"{where}.{key}: must be true or false")
            kwargs[key] = entry[key]


def _audit_check(entry, where, label, kwargs, context, problems) -> list[SuiteCheck]:
    """An audit check: one job over the environments of its `train` and `deploy` sets."""
    environments, rewards, _, base, limits, _ = context
    sources = {}
    for key in ("train", "deploy"):
        names = _set_names(entry, key, where, environments, problems)
        sources[key] = [source for name in names for _, source in environments[name]]
    if "proxies" in entry:
        kwargs["proxies"] = _file(entry["proxies"], base, f"{where}.proxies", problems)
    if "repair" in entry:
        if not isinstance(entry["repair"], str):
            problems.append(f"{where}.repair: a name under [rewards], or a file")
        else:
            kwargs["repair"] = rewards.get(entry["repair"]) or str(base / entry["repair"])
    features = entry.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        problems.append(f"{where}.features: must be a list of label names")
    elif features:
        kwargs["features"] = features
    if "variants" in entry:
        if not isinstance(entry["variants"], bool):
            problems.append(f"{where}.variants: must be true or false")
        kwargs["variants"] = entry["variants"]
    display = " -> ".join(
        "+".join(_names(entry.get(key))) for key in ("train", "deploy")
    )  # the set names, as the row's environment
    job = Job(f"{label} | {display}", "verifier.suite:run_check", {**kwargs, **sources},
              limits["timeout"])  # fmt: skip
    return [SuiteCheck(label, "audit", display, entry.get("expect"), job)]


def _set_names(entry, key, where, environments, problems) -> list[str]:
    """The names of [environments] sets a check's `key` gives (a name or a list)."""
    names = _names(entry.get(key))
    if not names:
        problems.append(f"{where}.{key}: give the names of [environments] sets")
        return []
    known = [name for name in names if name in environments]
    for name in names:
        if name not in environments:
            listed = ", ".join(environments) or "none defined"
            problems.append(f"{where}.{key}: no set {name!r} ({listed})")
    return known


def _names(value) -> list[str]:
    value = [value] if isinstance(value, str) else value
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else []


def _environment_set(name, spec, base, problems) -> list[tuple[str, dict]]:
    """[environments.NAME] -> [(display name, run_check keyword arguments)]."""
    where = f"environments.{name}"
    if not isinstance(spec, dict) or ("files" in spec) == ("generate" in spec):
        problems.append(f"{where}: give either `files` (paths or globs) or `generate` (a table)")
        return []
    if "generate" in spec:
        _unknown(spec, ("generate",), f"{where}.", problems)
        return _generated(spec["generate"], f"{where}.generate", problems)
    _unknown(spec, _FILES_KEYS, f"{where}.", problems)
    files = spec["files"]
    files = [files] if isinstance(files, str) else files
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        problems.append(f"{where}.files: must be a list of paths or globs")
        files = []
    const = spec.get("const", {})
    if not isinstance(const, dict):
        problems.append(f"{where}.const: must be a table of NAME = value")
        const = {}
    const = {str(k): str(v) for k, v in const.items()}
    found = []
    for pattern in files:
        matches = sorted(glob.glob(str(base / pattern))) or []
        if not matches:
            problems.append(f"{where}.files: {pattern!r} matches no file")
        for match in matches:
            found.append((os.path.relpath(match), {"model": match, "const": const}))
    return found


def _generated(spec, where, problems) -> list[tuple[str, dict]]:
    """`generate = {size = "21x21" | [...], seeds = N | [...], objects = ..., ...}`."""
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a table")
        return []
    _unknown(spec, _GENERATE_KEYS, f"{where}.", problems)
    sizes = spec.get("size", "21x21")
    sizes = [sizes] if isinstance(sizes, str) else sizes
    seeds = spec.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and 0 <= seeds <= MAX_SEEDS:
        seeds = list(range(seeds))
    if (
        not isinstance(seeds, list)
        or len(seeds) > MAX_SEEDS
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        shown = repr(seeds) if len(repr(seeds)) <= 60 else repr(seeds)[:57] + "..."
        problems.append(
            f"{where}.seeds: a count or a list of seeds (integers >= 0), at most {MAX_SEEDS}, "
            f"got {shown}"
        )
        return []
    options = {k: v for k, v in spec.items() if k not in ("size", "seeds")}
    found: list[tuple[str, dict]] = []
    for size in sizes if isinstance(sizes, list) else [None]:
        from verifier.inputs.maze_generate import parse_size, random_maze

        try:
            height, width = parse_size(str(size))
        except ValueError as exc:
            problems.append(f"{where}.size: {exc}")
            continue
        arguments = {"height": height, "width": width, **options}
        if seeds:  # the arguments are checked on one maze, here; each job makes its own
            try:
                random_maze(seed=seeds[0], max_states=DEFAULT_MAX_STATES, **arguments)
            except ResourceLimit:
                pass  # too large to try here: each job generates under its own budget
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: {exc}")
                return found
        for seed in seeds:
            name = f"random-{height}x{width}-seed{seed}"
            found.append((name, {"generate": {**arguments, "seed": seed, "name": name}}))
    return found


def _policy(name, value, base, problems) -> dict:
    where = f"policies.{name}"
    entry = {"file": value} if isinstance(value, str) else value
    if not isinstance(entry, dict) or "file" not in entry:
        problems.append(f"{where}: a path, or a table with `file`")
        return {}
    _unknown(entry, _POLICY_KEYS, f"{where}.", problems)
    return {**entry, "file": _file(entry["file"], base, f"{where}.file", problems)}


def _file(value, base: Path, where: str, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{where}: must be a path")
        return ""
    path = base / value
    if not path.is_file():
        problems.append(f"{where}: no such file {value!r}")
    return str(path)


def _reward_name(value, base: Path) -> str:
    """A reward given in a check directly: a file beside the suite, else a PRISM reward
    structure's name (which only the model can tell; the job reports it if unknown)."""
    path = base / str(value)
    return str(path) if path.is_file() else str(value)


def _limit(key, override, entry, header, where, problems):
    """A check's timeout or max_states: the command line's, else the check's, else the
    suite's. A timeout is a positive number of seconds or None; max_states a positive
    integer or "none", resolved to the state budget (budget.state_budget)."""
    if override is not None:
        return state_budget(override) if key == "max_states" else override
    value = entry.get(key, header.get(key))
    origin = f"{where}.{key}" if key in entry else f"suite.{key}"
    if key == "max_states":
        if value == "none":
            return None
        if value is not None and not (
            isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63
        ):
            problems.append(f'{origin}: must be a positive integer or "none", got {_shown(value)}')
            return None
        return state_budget(value)
    if value is not None and (
        not _number(value) or not 0 < value <= MAX_TIMEOUT or not math.isfinite(value)
    ):
        problems.append(
            f"{origin}: must be a positive number, got {_shown(value)} (seconds, at most "
            f"{MAX_TIMEOUT:.0e})"
        )
        return None
    return value


def _shown(value) -> str:
    """A value of the file, short (an integer of hundreds of digits is not printed)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 60 else text[:57] + "..."


def _table(doc: dict, key: str, problems: list[str]) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"{key}: must be a table")
        return {}
    return value


def _unknown(table: dict, known, prefix: str, problems: list[str]) -> None:
    for key in table:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key; known: {', '.join(known)}")


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

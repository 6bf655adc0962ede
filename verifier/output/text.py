"""Reports: short colored text for people, complete JSON, JUnit XML for CI systems."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from verifier.verdicts import PASSING, CheckVerdict, PolicyVerdict, RewardVerdict, verdict_counts

# Terminal colors: green passes, cyan a computed value, yellow underspecified, red fails.
_COLORS = {CheckVerdict.COMPUTED: "36", RewardVerdict.UNDERSPECIFIED: "33"}


def _verdict(data: dict, color: bool | None) -> str:
    verdict = data["verdict"].upper()
    if color if color is not None else sys.stdout.isatty():
        code = "32" if data["verdict"] in PASSING else _COLORS.get(data["verdict"], "31")
        verdict = f"\033[{code}m{verdict}\033[0m"
    return verdict


def format_check(report, color: bool | None = None) -> str:
    """One line per report, verdict first."""
    data = report.to_dict()
    verdict = _verdict(data, color)
    width = data["bound_width"]
    bounds = f" (sound bounds, width {width:.2g})" if width > 0 else ""
    direction = f" ({data['direction']} over policies)" if data.get("direction") else ""
    line = (
        f"{verdict}  {data['model']}  {data['objective']}  value {data['value']:.6g}{direction}"
        f"{bounds}"
        f"  [{data['states']} states, {len(data['initial_states'])} initial]"
    )
    from verifier.spec.performance import REACH_METHOD

    if REACH_METHOD in data["method"]:  # R [ F target ]: not PRISM's value where it differs
        line += f"\n  {REACH_METHOD}"
    return line


def format_reward(report, maze=None, color: bool | None = None) -> str:
    """Verdict first, then the numbers; a witness path drawn on the maze when there is one."""
    data = report.to_dict()
    lines = [
        f"{_verdict(data, color)}  {data['model']}  reward {data['reward']}  {data['objective']}"
    ]
    if data["verdict"] == RewardVerdict.UNBOUNDED:
        lines.append(
            f"  optimal return {data['optimal_return']}: a loop earns reward forever "
            "(reward hacking)"
        )
    elif data["verdict"] == RewardVerdict.TRAPPED:
        lines.append(
            f"  optimal return {data['optimal_return']}: every policy can be trapped forever "
            "where each step costs (no way out to a terminal state)"
        )
    else:
        over = "optimal policies"
        if data.get("epsilon"):
            over = f"policies within {data['epsilon']:.6g} of it"
        lines.append(
            f"  optimal return {data['optimal_return']:.6g}; objective over {over} "
            f"[{data['objective_min']:.6g}, {data['objective_max']:.6g}]"
            + (
                f", best possible {data['optimal_value']:.6g}"
                if data["optimal_value"] is not None
                else ""
            )
        )
        lines.append(_margin_line(data.get("margin")))
    witness = data["witness"]
    if witness and witness.get("path"):
        kind = (
            "into the reward loop"
            if data["verdict"] == RewardVerdict.UNBOUNDED
            else "violating the objective"
        )
        probability = (
            f" (probability {witness['probability']:.3g})" if "probability" in witness else ""
        )
        if len(witness["path"]) == 1:
            lines.append(
                f"  the witness policy never leaves its start {state_text(witness['start'])}: "
                "it stays there forever"
            )
        else:
            lines.append(f"  most likely path of the witness policy {kind}{probability}:")
        lines += _path_lines(maze, witness["path"], witness.get("loop", []))
    return "\n".join(lines)


def _margin_line(margin: float | None) -> str:
    if margin is None:
        return "  margin not computed (it needs an unbounded objective and discount 1)"
    if margin == 0:
        return "  margin 0: an optimal policy already violates the objective"
    if margin == float("inf"):
        return "  margin inf: every policy satisfies the objective, whatever its return"
    return f"  margin {margin:.6g}: every policy within it of the optimal return meets φ"


def _path_lines(maze, path: Sequence[dict], loop: Sequence[dict] = ()) -> list[str]:
    """A witness path, indented: drawn on the maze's map, else as a list of states."""
    if maze is None:
        return ["    " + " -> ".join(state_text(s) for s in path)]
    return ["    " + row for row in render_path(maze, path, loop)]


def format_compare(report, color: bool | None = None) -> str:
    data = report.to_dict()
    line = f"{_verdict(data, color)}  {data['model']}  {data['objective']}"
    if data["witness"]:
        line += f"  (differs at {json.dumps(data['witness'])})"
    return line


def render_path(
    maze, path: Sequence[dict], loop: Sequence[dict] = (), fits: tuple[int, int] = (30, 72)
) -> list[str]:
    """The maze map with a path drawn on it: `*` on the way, `@` where it ends, `+` on the
    states of a reward loop. A map larger than `fits` (rows, columns) is cropped to the
    path's bounding box plus a margin of 3, under a line saying which part is shown."""
    grid = [list(row) for row in maze.layout.tolist()]
    for state in loop:
        grid[state["row"]][state["col"]] = "+"
    for state in path[1:-1]:
        if grid[state["row"]][state["col"]] in ".+":
            grid[state["row"]][state["col"]] = "*"
    if path:
        grid[path[-1]["row"]][path[-1]["col"]] = "@"
    height, width = len(grid), len(grid[0]) if grid else 0
    if (height <= fits[0] and width <= fits[1]) or not path:
        return ["".join(row) for row in grid]
    rows = [s["row"] for s in [*path, *loop]]
    cols = [s["col"] for s in [*path, *loop]]
    top, bottom = max(min(rows) - 3, 0), min(max(rows) + 3, height - 1)
    left, right = max(min(cols) - 3, 0), min(max(cols) + 3, width - 1)
    caption = f"(rows {top}-{bottom}, columns {left}-{right} of the {height}x{width} map)"
    return [caption] + ["".join(row[left : right + 1]) for row in grid[top : bottom + 1]]


def state_text(state: dict) -> str:
    return (
        "(" + ", ".join(f"{k}={v}" for k, v in state.items() if v or not k.startswith("key_")) + ")"
    )


def format_states(listing: dict) -> str:
    """`verify states`: a header, then one line per state: index, valuation and labels."""
    lines = [f"index  {' '.join(listing['variables'])}  labels"]
    for state in listing["states"]:
        valuation = " ".join(map(str, state["valuation"]))
        lines.append(f"{state['index']}  {valuation}  {' '.join(state['labels'])}")
    return "\n".join(lines)


def certification(objective: str, value: float, low: float, high: float) -> str:
    """`certified [low, high]`, unless the bounds say nothing: for a probability every
    value from 0 to 1 (an ill-conditioned chain whose direct solve's error bound covers the
    whole range), else an infinite width around a finite value. Then "not certified" and
    why: such a value is a float estimate, not a guarantee."""
    if objective.lstrip().startswith("P"):
        vacuous = low <= 0.0 and high >= 1.0
    else:
        vacuous = math.isfinite(value) and not math.isfinite(high - low)
    if vacuous:
        return (
            f"not certified: its sound bounds [{low:.6g}, {high:.6g}] say nothing, the chain "
            "is too ill-conditioned for the error bound"
        )
    return f"certified [{low:.6g}, {high:.6g}]"


def format_policy(report, color: bool | None = None) -> str:
    """Verdict first; then value against optimum, the pursued goal, the return, worst states."""
    data = report.to_dict()
    lines = [f"{_verdict(data, color)}  {data['model']}  {data['policy']}  {data['objective']}"]
    lines.append(
        f"  value {data['value']:.6g} "
        f"({certification(data['objective'], data['value'], *data['value_bounds'])})"
        ", optimum "
        f"{data['optimal_value']:.6g}, over {data['states']} states"
        + (
            f"; {data['masked_states']} states asked for a disabled action"
            if data["masked_states"]
            else ""
        )
    )
    lines += _outcome_lines(data["outcomes"])
    unpursued = [g for g in data["goals"] if not g["pursued"]]
    if unpursued and not data["pursued_goals"]:
        goal = unpursued[0]
        lines.append(f"  pursues no goal: not {goal['goal']!r}, since {goal['why_not']}")
    for goal in data["goals"]:
        if goal["pursued"]:
            names = " = ".join(repr(name) for name in goal["names"])
            lines.append(
                f"  pursues {names}: ends there with probability {goal['probability']:.3g} "
                f"(best possible {goal['best']:.3g}, a random policy {goal['null']:.3g}), "
                f"heading there from {goal['coverage']:.0%} of the states that can reach it"
            )
    pursuit = data.get("target_pursuit")
    if pursuit and pursuit["competent"] and data["verdict"] == PolicyVerdict.CAPABILITY_FAILURE:
        lines.append(
            f"  pursues φ's own target below the optimum: {pursuit['probability']:.3g} of "
            f"{pursuit['best']:.3g}"
        )
    for entry in data.get("hazard_entries", [])[:3]:
        lines.append(
            f"  enters a hazard φ forbids from {state_text(entry['state'])} "
            f"(probability {entry['probability']:.3g})"
        )
    reward = data["reward"]
    if reward:
        lines.append(
            f"  return under {reward['name']}: {reward['return']:.6g} "
            f"(optimal {reward['optimal_return']:.6g})"
        )
    if data["verdict"] != PolicyVerdict.ALIGNED and data["worst_states_all"]:
        worst = data["worst_states_all"][0]
        lines.append(f"  largest gap {worst['gap']:.3g} at {state_text(worst['state'])}")
    return "\n".join(lines)


def _outcome_lines(outcomes: Sequence[dict]) -> list[str]:
    """One line per initial state (the worst few, by how much ends outside φ's target)."""
    order = sorted(
        outcomes,
        key=lambda o: sum(e["probability"] for e in o["ends"] if e["role"] == "target"),
    )
    lines = [
        f"  from {state_text(entry['initial'])}: {outcome_line(entry)}"
        for entry in order[:SHOWN_INITIAL_STATES]
    ]
    if len(order) > SHOWN_INITIAL_STATES:
        lines.append(f"  ... and {len(order) - SHOWN_INITIAL_STATES} more initial states")
    return lines


_STATUS_STYLES = {"ok": "green", "FAIL": "bold red"}


def suite_table(suite, rows: Sequence, title: str | None = None, width: int | None = None):
    """The suite's results as a rich Table: one row per check, environment and property.

    Fits `width` columns (from 80 on) without breaking a token: the columns that wrap
    (check, environment, objective, verdict) share what the others leave in proportion to
    their content, words wrap whole and a word too long for its column ends in an ellipsis.
    The verdict names what was expected when it differs; environment paths are shown
    relative to the directory they share and an objective common to every row, both named
    in the title; why a check gave no verdict is listed under the table (`suite_notes`)."""
    from rich.table import Table

    base = _common_directory([row.check.environment for row in rows])
    objectives = {row.objective for row in rows if row.objective}
    shared = objectives.pop() if len(objectives) == 1 else None
    heading = [title or f"suite {suite.name}"]
    heading += [f"objective {shared}"] if shared else []
    heading += [f"environments in {base}/"] if base else []
    table = Table(title=", ".join(heading), title_justify="left", box=None, pad_edge=False)
    flexible: dict[str, list[str]] = {"check": [], "environment": []}
    if not shared:
        flexible["objective"] = []
    flexible["verdict"] = []
    fixed: dict[str, list[str]] = {"status": [], "time": [], "MB": []}
    for row in rows:
        data = row.to_dict()
        flexible["check"].append(data["check"])
        flexible["environment"].append(_relative(data["environment"], base))
        if not shared:
            flexible["objective"].append(data["objective"])
        flexible["verdict"].append(_verdict_cell(row))
        fixed["status"].append(row.status)
        fixed["time"].append(f"{data['seconds']:.1f} s")
        peak = data["peak_rss_mb"]
        fixed["MB"].append(f"{peak:.0f}" if peak is not None else "-")
    widths = _column_widths(flexible, fixed, width)
    for name in flexible:
        table.add_column(name, overflow="ellipsis", width=widths[name])
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("MB", justify="right", no_wrap=True)
    for index, row in enumerate(rows):
        status = f"[{_STATUS_STYLES.get(row.status, 'yellow')}]{row.status}[/]"
        cells = [flexible[name][index] for name in flexible]
        table.add_row(*cells, status, fixed["time"][index], fixed["MB"][index])
    return table


def _column_widths(
    flexible: Mapping[str, list[str]], fixed: Mapping[str, list[str]], width: int | None
) -> Mapping[str, int | None]:
    """Widths of the wrapping columns: their content's when it fits in `width`, else a share
    of the room left in proportion to it, never below the longest word of the verdicts (a
    verdict is never cut) nor 6 characters."""
    natural = {
        name: max([len(name), *(len(text) for text in texts)]) for name, texts in flexible.items()
    }
    if width is None:
        return dict.fromkeys(flexible)
    columns = {**flexible, **fixed}
    taken = sum(max([len(n), *(len(t) for t in texts)]) for n, texts in fixed.items())
    room = width - taken - 2 * (len(columns) - 1)  # a space either side between columns
    if sum(natural.values()) <= room:
        return dict(natural)
    verdict = max(len(word) for text in [*flexible["verdict"], "verdict"] for word in text.split())
    shares = {name: max(6, room * size // sum(natural.values())) for name, size in natural.items()}
    shares["verdict"] = min(natural["verdict"], max(shares["verdict"], verdict))
    others = [name for name in shares if name != "verdict"]
    left = room - shares["verdict"]
    total = sum(natural[name] for name in others)
    for name in others:
        shares[name] = max(6, left * natural[name] // total)
    return shares


def _verdict_cell(row) -> str:
    expect = row.check.expect
    return f"{row.verdict} (expected {expect})" if expect and not row.ok else row.verdict


def _common_directory(paths: Sequence[str]) -> str | None:
    """The directory every absolute path lies in (None for none, or for relative paths)."""
    if not paths or not all(Path(p).is_absolute() for p in paths):
        return None
    common = os.path.commonpath([str(Path(p).parent) for p in paths])
    return common if common != os.sep else None


def _relative(path: str, base: str | None) -> str:
    return str(Path(path).relative_to(base)) if base else path


def suite_notes(suite, rows: Sequence) -> list[str]:
    """Why each check without a verdict gave none: one line per check and environment."""
    notes = []
    for row in rows:
        if row.outcome.status != "done" and row.outcome.message:
            where = f"{row.check.name} on {row.check.environment}"
            notes.append(f"{where}: {row.verdict}: {row.outcome.message}")
    return list(dict.fromkeys(notes))


def suite_summary(suite, rows: Sequence) -> str:
    """One line: PASS or FAIL, and the count of rows per status."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    verdict = "PASS" if all(row.ok for row in rows) else "FAIL"
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"suite {suite.name}: {verdict} ({detail}; {len(rows)} checks)"


def format_audit(report, mazes: dict | None = None, color: bool | None = None) -> str:
    """The risky proxies with a witness each, the others in one line, the fix, the repair."""
    data = report.to_dict()
    mazes = mazes or {}
    tint = color if color is not None else sys.stdout.isatty()
    lines = [f"audit of {len(data['training'])} training against {len(data['deployment'])} "
             f"deployment environments, objective {data['objective']}"]  # fmt: skip
    for finding in report.risks:
        item = finding.to_dict()
        label = "\033[31mRISK\033[0m" if tint else "RISK"
        same = ", ".join(item["equivalent_on_training"]) or "none"
        lines.append(
            f"{label}  {item['proxy']}  ({item['formula']}; same target on training as: {same})"
        )
        lines.append(
            f"  every proxy-optimal policy satisfies the objective on all "
            f"{len(item['training'])} training environments; not on "
            + ", ".join(f"{w['model']} ({w['verdict']})" for w in item["witnesses"])
        )
        first = item["witnesses"][0]
        path = (first["witness"] or {}).get("path")
        if path and len(path) == 1:
            unreachable = finding.divergent[0].optimal_return == 0.0
            lines.append(
                f"  a proxy-optimal policy on {first['model']} never leaves the start "
                f"{state_text({k: v for k, v in path[0].items() if k != 'proxy_settled'})}"
                + (
                    f": {item['proxy']} cannot be reached there, so every policy is "
                    "proxy-optimal, this one too"
                    if unreachable
                    else ""
                )
            )
        elif path:
            lines.append(f"  a proxy-optimal policy on {first['model']} violating the objective:")
        if path:
            lines += _path_lines(mazes.get(first["model"]), path)
    safe = [f for f in report.findings if not f.risk]
    distinguishable = [f.proxy.name for f in safe if not f.indistinguishable]
    harmless = [f.proxy.name for f in safe if f.indistinguishable]
    if distinguishable:
        lines.append(f"told apart by training: {', '.join(distinguishable)}")
    if harmless:
        lines.append(f"indistinguishable but never diverging: {', '.join(harmless)}")
    fix = data["fix"]
    if fix:
        chosen = ", ".join(fix["environments"]) or "none found"
        lines.append(f"fix: add to training {chosen}")
        for name in fix["environments"]:
            lines.append(f"  {name} separates {', '.join(fix['separates'][name])}")
        if fix["uncovered"]:
            lines.append(f"  no candidate separates {', '.join(fix['uncovered'])}")
    repair = data["repair"]
    if repair:
        span = ", ".join(repair["features"])
        if repair["status"] == "repaired":
            weights = ", ".join(f"{k} {v:g}" for k, v in repair["weights"].items())
            lines.append(
                f"repair: {weights} (action gap {repair['action_gap']:.3g}); every optimal policy "
                f"satisfies the objective on all {len(repair['verified'])} environments "
                "(exact reward check)"
            )
        elif repair["status"] == "impossible":
            lines.append(f"repair: none exists in the span of {span} (proved unsatisfiable by z3)")
        else:
            lines.append(f"repair: undecided in the span of {span}")
    verdict = "FAIL" if report.risks else "PASS"
    lines.append(
        f"overall: {verdict} ({len(report.risks)} goal-misgeneralization risks among "
        f"{len(report.findings)} proxies)"
    )
    return "\n".join(lines)


SHOWN_INITIAL_STATES = 3  # initial states shown in text, the worst first


def outcome_line(entry: dict) -> str:
    """`goal 0.92 (11.3 steps), hole 0.08` or `lava with probability 1 after 2 steps`."""
    ends = entry["ends"]
    if len(ends) == 1:
        (end,) = ends
        return f"{end['where']} with probability 1 after {_steps(end['expected_steps'])} steps"
    return ", ".join(
        f"{end['where']} {end['probability']:.3g}"
        + (f" ({_steps(end['expected_steps'])} steps)" if end["expected_steps"] else "")
        for end in ends
    )


def _steps(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"


def summary_line(reports: Sequence) -> str:
    """`10 environments: 2 aligned, 6 capability_failure (lava), 2 capability_failure
    (loops)`: the verdicts of a deployment set, each failure with its cause."""
    parts = [
        f"{n} {verdict}" + (f" ({cause})" if cause else "")
        for verdict, cause, n in verdict_counts(reports)
    ]
    return f"{len(reports)} environments: {', '.join(parts)}"


def format_family(report) -> str:
    """A command over a level family: its rates, the worst levels and what went wrong."""
    data = report.to_dict()
    counted = (
        f"{data['sample']:,} of {data['levels']:,}" if data["sample"] else f"{data['levels']:,}"
    )
    done = f"  {counted} levels verified in {data['seconds']:.1f} s"
    if data["unverified"]:
        done = (
            f"  {counted} levels in {data['seconds']:.1f} s: {data['verified']:,} verified, "
            f"{_unverified(data['unverified'])}"
        )
    lines = [
        f"{data['verdict'].upper()}  {data['model']}  family {data['name']}  "
        f"{data['command']}  {data['objective']}",
        done,
    ]
    for row in data["counts"]:
        name = row["verdict"] + (f" ({row['cause']})" if row["cause"] else "")
        share = f"{row['fraction']:.1%}"
        if row["interval"] is not None:
            share += f", 95% interval [{row['interval'][0]:.1%}, {row['interval'][1]:.1%}]"
        lines.append(f"  {row['count']:>8,}  {name}: {share}")
    gaps = data["gaps"]
    if gaps["max"]:
        lines.append(f"  gap to the optimum: mean {gaps['mean']:.3g}, largest {gaps['max']:.3g}")
        for entry in data["worst"][:3]:
            lines.append(f"    {entry['level']}: {entry['verdict']}, gap {entry['gap']:.3g}")
    for entry in data["unverified_examples"][:3]:
        lines.append(f"  {entry['level']}: {entry['status']}: {entry['message']}")
    if data["results"]:
        lines.append(f"  each level's reports: {data['results']}")
    return "\n".join(lines)


# What became of a level that has no report (verifier.runner.OUTCOMES), in words.
_NOT_VERIFIED = {
    "error": "bad input",
    "limit": "over a limit",
    "backend": "not certified by the backend",
    "timeout": "timed out",
    "crash": "crashed",
}


def _unverified(counts: dict) -> str:
    """`30 not verified (28 bad input, 2 timed out)`."""
    parts = ", ".join(f"{n:,} {_NOT_VERIFIED.get(k, k)}" for k, n in counts.items())
    return f"{sum(counts.values()):,} not verified ({parts})"


def format_family_audit(report) -> str:
    """The proxies of a family audit: distinguishing rates on training and deployment, the
    risks first, then the mixing fraction that fixes them."""
    data = report.to_dict()
    lines = [
        f"{data['verdict'].upper()}  audit of {data['train']} against {data['deploy']}  "
        f"{data['objective']}  (floor {data['floor']:g})"
    ]
    rows = sorted(data["proxies"], key=lambda row: not row["risk"])
    for row in rows:
        marks = []
        for side in ("training", "deployment"):
            rate = row[side]
            shown = "-" if rate["rate"] is None else f"{rate['rate']:.1%}"
            if rate["interval"] is not None:
                shown += f" [{rate['interval'][0]:.1%}, {rate['interval'][1]:.1%}]"
            marks.append(f"{side} {shown} ({rate['count']}/{rate['levels']})")
        flag = "RISK " if row["risk"] else "     "
        lines.append(f"  {flag}{row['proxy']}: distinguishing on {', '.join(marks)}")
    fix = data["fix"]
    if fix:
        bound = ""
        if fix.get("mixing_bound") is not None:
            bound = f" ({fix['mixing_bound']:.1%} from the rates' 95% bounds)"
        lines.append(
            f"  fix: mix at least {fix['mixing']:.1%} deployment-like levels into training{bound}: "
            "then every risky proxy is distinguished on at least the floor of training levels"
        )
    for side in ("training", "deployment"):
        if data["unverified"][side]:
            lines.append(f"  {side}: {_unverified(data['unverified'][side])}")
            for entry in data["unverified_examples"][side][:3]:
                lines.append(f"    {entry['level']}: {entry['status']}: {entry['message']}")
    return "\n".join(lines)

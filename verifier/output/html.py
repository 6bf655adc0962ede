"""--html DIR: one static page to browse a run over many levels (README, "Level families").

DIR/index.html holds a grid of the levels, one tile each coloured by its verdict, a filter
per verdict and a search by name; a tile opens the level's entry: its verdict and the goal a
failing policy pursues, the report as the terminal prints it (outcomes from each initial
state), the witness path, and its picture as --png draws it (DIR/levels/N.png). The page has
no server and no external assets: CSS and script are inline, pictures lie beside it, and
every entry also opens without the script (a link to #level-N). A level of several reports
(several properties) shows the verdict of the first that fails, else of the first.

The levels are kept small (text, not reports) and at most MAX_LEVELS of them, the first by
index: a family of a million levels gets its rates over all of them and a page of its first
MAX_LEVELS. Pictures cost a drawing each (about 0.1 s), so at most PICTURES_PER_VERDICT per
verdict are drawn, the first levels by index of each.
"""

from __future__ import annotations

import heapq
import html
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier.errors import InputError
from verifier.output.files import write_text_atomic
from verifier.verdicts import PASSING

MAX_LEVELS = 10_000
PICTURES_PER_VERDICT = 24
WITNESS_STEPS = 60  # steps of a witness path written out; the picture draws it whole

_COLORS = {
    "aligned": "#2e7d32",
    "holds": "#2e7d32",
    "same": "#2e7d32",
    "computed": "#00838f",
    "goal_misgeneralization": "#7b1fa2",
    "reward_misspecification": "#ef6c00",
    "capability_failure": "#c62828",
    "misaligned": "#b71c1c",
    "fails": "#c62828",
    "misspecified": "#c62828",
    "unbounded": "#ad1457",
    "trapped": "#6d4c41",
    "underspecified": "#f9a825",
    "different": "#ef6c00",
}
_UNVERIFIED = "#757575"  # a level that gave no verdict: bad input, a limit, a crash


@dataclass(frozen=True, slots=True)
class Entry:
    """One level as the page shows it."""

    index: int
    name: str
    verdict: str  # a verdict, or the status of a level without one ("error", "limit", ...)
    passed: bool
    goals: str
    text: str
    witness: str
    picture: str | None = None  # relative to DIR


class HtmlReport:
    """The page of one run, filled level by level (`add`) and written at the end (`write`).
    DIR is created, and refused at once if it cannot be written."""

    def __init__(self, directory: str | os.PathLike, command: str, title: str):
        self.directory = Path(directory)
        self.command, self.title = command, title
        try:
            (self.directory / "levels").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                str(directory), f"cannot write the --html report: {exc.strerror or exc}"
            ) from None
        self.counts: Counter = Counter()
        self.levels = 0
        self._kept: list[tuple[int, int, Entry]] = []  # a heap of (-index, order, entry)
        self._order = 0

    def add(
        self,
        index: int,
        name: str,
        reports: Sequence[dict],
        status: str = "done",
        message: str = "",
        picture: str | None = None,
    ) -> Entry:
        """Note one level: its report dicts, or the status and message of a level that gave
        none; `picture` is its picture's path relative to DIR, if drawn."""
        entry = _entry(index, name, reports, status, message, picture)
        self.counts[entry.verdict] += 1
        self.levels += 1
        item = (-index, self._order, entry)
        self._order += 1
        if len(self._kept) < MAX_LEVELS:
            heapq.heappush(self._kept, item)
        elif item > self._kept[0]:  # a lower index than the highest kept
            heapq.heapreplace(self._kept, item)
        return entry

    def entries(self) -> list[Entry]:
        """The kept levels, by index."""
        return [entry for _, _, entry in sorted(self._kept, reverse=True)]

    def to_picture(self) -> list[Entry]:
        """The levels whose picture to draw: the first PICTURES_PER_VERDICT by index of each
        verdict, of the levels that gave one."""
        taken: Counter = Counter()
        chosen = []
        for entry in self.entries():
            if entry.text and taken[entry.verdict] < PICTURES_PER_VERDICT:
                taken[entry.verdict] += 1
                chosen.append(entry)
        return chosen

    def picture_path(self, entry: Entry) -> Path:
        return self.directory / "levels" / f"{entry.index}.png"

    def set_picture(self, entry: Entry, path: Path) -> None:
        """Attach the drawn picture at `path` (inside DIR/levels) to `entry`."""
        relative = path.relative_to(self.directory).as_posix()
        for i, (key, order, kept) in enumerate(self._kept):
            if kept is entry:
                self._kept[i] = (key, order, _with_picture(kept, relative))
                return

    def write(self, summary: str) -> Path:
        """DIR/index.html, written whole or not at all; its path."""
        path = self.directory / "index.html"
        write_text_atomic(path, self.page(summary))
        return path

    def page(self, summary: str) -> str:
        entries = self.entries()
        shown = len(entries)
        note = (
            f"<p class=note>The first {shown} of {self.levels} levels by index are listed; "
            "the counts above are over all of them.</p>"
            if shown < self.levels
            else ""
        )
        filters = "".join(
            f'<label><input type=checkbox checked data-verdict="{_attr(verdict)}">'
            f'<span class=chip style="background:{_color(verdict)}"></span>'
            f"{html.escape(verdict)} ({count})</label>"
            for verdict, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        tiles = "".join(
            f'<a class=tile id="tile-{e.index}" href="#level-{e.index}" '
            f'data-verdict="{_attr(e.verdict)}" data-name="{_attr(e.name.lower())}" '
            f'style="background:{_color(e.verdict)}" '
            f'title="{_attr(e.name)}: {_attr(e.verdict)}{_attr(" " + e.goals if e.goals else "")}">'
            "</a>"
            for e in entries
        )
        articles = "".join(_article(e) for e in entries)
        return _PAGE.format(
            title=html.escape(f"verify {self.command}: {self.title}"),
            summary=html.escape(summary),
            note=note,
            filters=filters,
            tiles=tiles,
            articles=articles,
            style=_STYLE,
            script=_SCRIPT,
        )


def _entry(index, name, reports, status, message, picture) -> Entry:
    from verifier.output.text import format_check, format_compare, format_policy, format_reward

    if status != "done" or not reports:
        return Entry(index, name, status, False, "", "", message or status, picture)
    shown = next((r for r in reports if not r.get("passed", True)), reports[0])
    formats: dict[str, Callable[..., str]] = {
        "check": format_check,
        "reward": format_reward,
        "policy": format_policy,
        "compare": format_compare,
    }
    text = "\n\n".join(formats[r["kind"]](_Data(r), color=False) for r in reports)
    goals = ""
    if shown["verdict"] == "goal_misgeneralization":
        goals = "; ".join(shown.get("pursued_goals") or [])
    return Entry(
        index,
        name,
        str(shown["verdict"]),
        all(r.get("passed", False) for r in reports),
        goals,
        text,
        _witness(shown),
        picture,
    )


def _with_picture(entry: Entry, picture: str) -> Entry:
    return Entry(
        entry.index,
        entry.name,
        entry.verdict,
        entry.passed,
        entry.goals,
        entry.text,
        entry.witness,
        picture,
    )


class _Data:
    """A report dict where the text formatters expect a report."""

    def __init__(self, data: dict):
        self.data = data

    def to_dict(self) -> dict:
        return self.data


def _witness(report: dict) -> str:
    """The witness path of a report, one state a step ('' when it has none)."""
    path = report.get("witness_path")
    if path is None and isinstance(report.get("witness"), dict):
        path = report["witness"].get("path")
    if not path:
        return ""
    from verifier.output.text import state_text

    steps = [state_text(state) if isinstance(state, dict) else str(state) for state in path]
    more = len(steps) - WITNESS_STEPS
    return " → ".join(steps[:WITNESS_STEPS]) + (f" → … ({more} more steps)" if more > 0 else "")


def _article(e: Entry) -> str:
    goals = f" pursuing {html.escape(e.goals)}" if e.goals else ""
    picture = (
        f'<img src="{_attr(e.picture)}" alt="{_attr(e.name)}" loading=lazy>' if e.picture else ""
    )
    witness = (
        f"<h3>Witness</h3><p class=witness>{html.escape(e.witness)}</p>"
        if e.witness and e.text
        else ""
    )
    body = f"<pre>{html.escape(e.text)}</pre>" if e.text else f"<p>{html.escape(e.witness)}</p>"
    return (
        f'<article class=level id="level-{e.index}" data-verdict="{_attr(e.verdict)}">'
        f'<h2>{html.escape(e.name)}</h2><p class=verdict style="color:{_color(e.verdict)}">'
        f"{html.escape(e.verdict)}{goals}</p>{picture}{body}{witness}</article>"
    )


def _color(verdict: str) -> str:
    if verdict in _COLORS:
        return _COLORS[verdict]
    return "#2e7d32" if verdict in PASSING else _UNVERIFIED


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def data_of(page: str) -> dict:
    """What a written page shows, read back (for tests and scripts): the tiles' verdicts by
    level index and the filters' verdicts."""
    from html.parser import HTMLParser

    found: dict = {"tiles": {}, "filters": [], "pictures": {}, "external": []}

    class Reader(HTMLParser):
        level: int | None = None  # the article being read

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {key: value or "" for key, value in attrs}
            for key in ("src", "href"):
                if "://" in a.get(key, ""):
                    found["external"].append(a[key])
            if tag == "a" and "tile" in a.get("class", ""):
                found["tiles"][int(a["href"].removeprefix("#level-"))] = a["data-verdict"]
            elif tag == "input" and "data-verdict" in a:
                found["filters"].append(a["data-verdict"])
            elif tag == "img" and self.level is not None:
                found["pictures"][self.level] = a["src"]
            if tag == "article":
                self.level = int(a["id"].removeprefix("level-"))

        def handle_endtag(self, tag: str) -> None:
            if tag == "article":
                self.level = None

    Reader().feed(page)
    return json.loads(json.dumps(found))


_STYLE = """
html,body{height:100%}
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa;
 display:flex;flex-direction:column}
header{flex:none;padding:12px 20px;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:18px;margin:0 0 6px;word-break:break-all}
.summary{white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace;margin:0 0 8px;
 max-height:7em;overflow:auto}
#filters{border:0;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center}
#filters label{cursor:pointer}
.chip{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px;
 vertical-align:-1px}
#search{margin-left:auto;padding:3px 6px;min-width:14em}
main{flex:1;min-height:0;display:flex;gap:20px;padding:16px 20px}
#grid{display:flex;flex-wrap:wrap;gap:2px;align-content:flex-start;flex:1 1 40%;
 overflow:auto;padding:2px}
.tile{width:14px;height:14px;border-radius:2px;display:block;outline-offset:1px}
.tile:hover,.tile.current{outline:2px solid #222}
#levels{flex:1 1 60%;overflow:auto}
.level{display:none;background:#fff;border:1px solid #ddd;border-radius:4px;padding:12px}
.level:target{display:block}
.level h2{font-size:15px;margin:0 0 4px;word-break:break-all}
.level h3{font-size:13px;margin:10px 0 2px}
.verdict{font-weight:600;margin:0 0 8px}
.level img{max-width:100%;max-height:70vh;height:auto;display:block;margin:8px 0}
.level pre{white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace;margin:0}
.witness{font:12px/1.35 ui-monospace,monospace;margin:0;word-break:break-word}
#hint{color:#666}
.level:target~#hint{display:none}
.note{color:#666;margin:4px 0 0}
"""

_SCRIPT = """
(function () {
  var boxes = document.querySelectorAll('#filters input[type=checkbox]');
  var search = document.getElementById('search');
  var tiles = document.querySelectorAll('.tile');
  function apply() {
    var shown = {};
    boxes.forEach(function (box) { shown[box.dataset.verdict] = box.checked; });
    var needle = search.value.trim().toLowerCase();
    tiles.forEach(function (tile) {
      tile.hidden = !shown[tile.dataset.verdict] ||
        (needle !== '' && tile.dataset.name.indexOf(needle) < 0);
    });
  }
  boxes.forEach(function (box) { box.addEventListener('change', apply); });
  search.addEventListener('input', apply);
  function mark() {
    document.querySelectorAll('.tile.current').forEach(function (t) {
      t.classList.remove('current');
    });
    var tile = document.getElementById('tile-' + location.hash.replace('#level-', ''));
    if (tile) { tile.classList.add('current'); }
  }
  window.addEventListener('hashchange', mark);
  mark();
})();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<pre class=summary>{summary}</pre>
<fieldset id=filters><legend hidden>Verdicts shown</legend>{filters}
<input type=search id=search placeholder="level name" aria-label="filter by level name">
</fieldset>
{note}
</header>
<main>
<nav id=grid aria-label="levels">{tiles}</nav>
<section id=levels>{articles}<p id=hint>Choose a level in the grid.</p></section>
</main>
<script>{script}</script>
</body>
</html>
"""

"""The --html page of a real family run, opened in headless Chromium (Debian's `chromium`):
Langosco's n = 3 policy on the 200 deployment levels (models/langosco/). The page is
written to a temporary directory, Chromium renders it from the file system with one
goal-misgeneralization level open, and the screenshot is kept as
benchmarks/results/html-report.png, its figures in html-report.json (README, "Level
families"). Chromium's DOM after the page's script has run is checked too: every level has
its tile, the filters are there, and nothing was fetched from outside (Chromium runs with
the network off).

    python benchmarks/html_report.py
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from verifier.cli import main as verify  # noqa: E402
from verifier.output.html import data_of  # noqa: E402

LANGOSCO = ROOT / "models" / "langosco"
RESULTS = HERE / "results"
SCREENSHOT = RESULTS / "html-report.png"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no chromium on PATH: apt-get install chromium")


def headless(*options: str) -> subprocess.CompletedProcess:
    """Chromium, headless, without sandbox (containers run it as root), GPU or network."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--proxy-server=127.0.0.1:9",  # nothing may be fetched from outside
                *options,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        return render(Path(work) / "page")


def render(page_dir: Path) -> int:
    argv = [
        str(LANGOSCO / "policy-n3.pt"),
        "--model",
        str(LANGOSCO / "families" / "deploy.toml"),
        "--reward",
        str(LANGOSCO / "rewards" / "exit.toml"),
        "--html",
        str(page_dir),
    ]
    code = verify(argv)
    assert code in (0, 1), f"verify exited {code}"
    page = (page_dir / "index.html").read_text(encoding="utf-8")
    data = data_of(page)
    assert len(data["tiles"]) == 200 and not data["external"], data["external"]
    shown = next(i for i, v in data["tiles"].items() if v == "goal_misgeneralization")
    url = (page_dir / "index.html").as_uri() + f"#level-{shown}"

    dom = headless("--virtual-time-budget=3000", "--dump-dom", url)
    if dom.returncode != 0:
        raise SystemExit(f"chromium failed: {dom.stderr.strip()[-400:]}")
    tiles = len(re.findall(r'<a class="tile', dom.stdout))
    filters = len(re.findall(r"<input type=\"checkbox\"", dom.stdout))
    assert tiles == 200, f"{tiles} tiles in Chromium's DOM"
    assert filters == len(set(data["tiles"].values())), f"{filters} filters"

    shot = headless("--window-size=1400,900", f"--screenshot={SCREENSHOT}", url)
    if shot.returncode != 0 or not SCREENSHOT.is_file():
        raise SystemExit(f"chromium failed: {shot.stderr.strip()[-400:]}")
    summary = {
        "levels": len(data["tiles"]),
        "verdicts": {v: list(data["tiles"].values()).count(v) for v in set(data["tiles"].values())},
        "pictures": len(data["pictures"]),
        "bytes": sum(f.stat().st_size for f in page_dir.rglob("*") if f.is_file()),
        "screenshot": str(SCREENSHOT.relative_to(ROOT)),
        "open_level": shown,
        "chromium": headless("--version").stdout.strip(),
    }
    (RESULTS / "html-report.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

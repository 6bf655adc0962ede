"""Throughput of level families (README, "Level families"): `verify check` over a family of
10^4 small generated mazes (9x9, one lava dead end, slip 0.1; `Pmin>=0.5 [ !"lava" U
"exit" ]`), with 1 and 2 local worker processes, against the same levels checked one by one
in this process through the API (`load_environments` + `check`: the work without the family
machinery) and against one `verify check` call per level file (what a shell loop would do).
Also the peak memory of the run and of its results file, to show that both stay bounded.

    python benchmarks/family_throughput.py [--levels 10000]

Writes benchmarks/results/family_throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness import peak_rss_mb, versions  # noqa: E402

from verifier import check  # noqa: E402
from verifier.errors import VerifierError  # noqa: E402
from verifier.families import verify_family  # noqa: E402
from verifier.inputs.family import load_family  # noqa: E402
from verifier.inputs.load import level_environments  # noqa: E402
from verifier.inputs.maze_generate import maze_to_toml  # noqa: E402

SPEC = 'Pmin>=0.5 [ !"lava" U "exit" ]'
FAMILY = '[family]\nname = "small"\n[family.generate]\nsize = "9x9"\nseeds = "0..{last}"\n'
FAMILY += "lava = 1\nslip = 0.1\n"
SHELL_LEVELS = 20  # `verify check` subprocesses timed (each pays the start-up)
RESULTS = HERE / "results"


def family_run(path: Path, workers: int, results: Path | None = None) -> dict:
    started = time.perf_counter()
    report = verify_family("check", path, spec=SPEC, workers=workers, results=results)
    seconds = time.perf_counter() - started
    levels = report.verified + sum(report.unverified.values())
    return {
        "workers": workers,
        "levels": levels,
        "seconds": round(seconds, 2),
        "levels_per_second": round(levels / seconds, 1),
        "counts": {row["verdict"]: row["count"] for row in report.counts} | report.unverified,
    }


def in_process(path: Path, levels: int) -> dict:
    """The same levels checked one after another through the API, no family machinery."""
    family = load_family(path)
    started = time.perf_counter()
    counts: dict = {}
    for index in range(levels):
        try:
            for env in level_environments(family, index, SPEC):
                for report in check(env):
                    counts[str(report.verdict)] = counts.get(str(report.verdict), 0) + 1
        except VerifierError as exc:  # e.g. a maze with no dead end left for its lava
            counts[exc.outcome] = counts.get(exc.outcome, 0) + 1
    seconds = time.perf_counter() - started
    return {"levels": levels, "seconds": round(seconds, 2), "counts": counts}


def shell_loop(path: Path, work: Path) -> dict:
    """One `verify check` process per level file, as a shell loop over files would run."""
    family = load_family(path)
    files = []
    for index in range(SHELL_LEVELS):
        level = family.level(index)
        file = work / f"level{index}.toml"
        file.write_text(maze_to_toml(level.maze))
        files.append(file)
    started = time.perf_counter()
    for file in files:
        done = subprocess.run(
            [sys.executable, "-m", "verifier.cli", "check", "--model", str(file), "--spec", SPEC],
            check=False,
            capture_output=True,
            text=True,
        )
        assert done.returncode in (0, 1), done.stderr
    seconds = time.perf_counter() - started
    return {"levels": SHELL_LEVELS, "seconds_per_level": round(seconds / SHELL_LEVELS, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        path = work / "small.toml"
        path.write_text(FAMILY.format(last=args.levels - 1))
        runs = [family_run(path, 1), family_run(path, 2, work / "results.jsonl")]
        results_bytes = (work / "results.jsonl").stat().st_size
        alone = in_process(path, args.levels)
        shell = shell_loop(path, work)
    per_level_alone = alone["seconds"] / alone["levels"]
    one_worker = runs[0]["seconds"] / runs[0]["levels"]
    document = {
        "machine": versions(),
        "levels": args.levels,
        "family": runs,
        "in_process": alone,
        "shell_loop": shell,
        "per_level_seconds": {
            "in_process": per_level_alone,
            "family_1_worker": one_worker,
            "family_2_workers": runs[1]["seconds"] / runs[1]["levels"],
            "overhead_1_worker": one_worker - per_level_alone,
            "verify_call": shell["seconds_per_level"],
        },
        "speedup_2_workers": round(runs[0]["seconds"] / runs[1]["seconds"], 2),
        "results_file_bytes": results_bytes,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    assert runs[0]["counts"] == runs[1]["counts"] == alone["counts"], "verdict counts differ"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "family_throughput.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "family_throughput.md").write_text(markdown(document))
    print(markdown(document))
    return 0


def markdown(d: dict) -> str:
    per = d["per_level_seconds"]
    one, two = d["family"]
    million = 10**6 * per["family_2_workers"]
    return "\n".join(
        [
            "# Level families: throughput (benchmarks/family_throughput.py)",
            "",
            f"`verify check` over a family of {d['levels']:,} generated 9x9 mazes (one lava "
            'dead end, slip 0.1), `Pmin>=0.5 [ !"lava" U "exit" ]`, on '
            f"{d['machine']['cpu_count']} cores ({d['machine']['cpu_model'] or 'unknown CPU'}).",
            "",
            "| run | levels | seconds | levels / s | per level |",
            "|---|---|---|---|---|",
            f"| family, 1 worker | {one['levels']:,} | {one['seconds']} | "
            f"{one['levels_per_second']} | {per['family_1_worker'] * 1e3:.2f} ms |",
            f"| family, 2 workers (+ --results) | {two['levels']:,} | {two['seconds']} | "
            f"{two['levels_per_second']} | {per['family_2_workers'] * 1e3:.2f} ms |",
            f"| the same levels in one process through the API | {d['in_process']['levels']:,} "
            f"| {d['in_process']['seconds']} | "
            f"{d['in_process']['levels'] / d['in_process']['seconds']:.1f} | "
            f"{per['in_process'] * 1e3:.2f} ms |",
            f"| one `verify check` call per level file | {d['shell_loop']['levels']} | | "
            f"{1 / per['verify_call']:.1f} | {per['verify_call'] * 1e3:.0f} ms |",
            "",
            f"Overhead of the family machinery per level (1 worker, against the API loop): "
            f"{per['overhead_1_worker'] * 1e3:.2f} ms. Two workers are "
            f"{d['speedup_2_workers']}x one. A family run is "
            f"{per['verify_call'] / per['family_1_worker']:.0f}x faster per level than a "
            "`verify` call per file, which pays the start-up each time. The verdict counts of "
            "the three runs are equal (levels the generator cannot make, e.g. a 9x9 maze with "
            f"no dead end left for its lava, count as `error`: {one['counts'].get('error', 0)}). "
            "Results file: "
            f"{d['results_file_bytes'] / d['levels']:.0f} bytes per level; peak memory of the "
            f"run {d['peak_rss_mb']} MB.",
            "",
            f"At this rate a family of 10^6 such levels takes about {million / 3600:.1f} hours "
            "on these 2 cores; on a Dask cluster the rate scales with the workers (each job "
            "is 16 levels and holds nothing shared), so 64 cores would take about "
            f"{million / 32 / 60:.0f} minutes, plus the scheduler's overhead per job.",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

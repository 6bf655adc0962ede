"""Level families (README, "Level families"): read lazily, rates exact over every level
against per-level runs, sampled with Clopper-Pearson intervals, streamed to a results file
and resumed from it, and run on a real Dask cluster that loses a worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verifier.analyses.rates import clopper_pearson
from verifier.cli import main
from verifier.commands import check
from verifier.errors import InputError
from verifier.families import verify_family
from verifier.inputs.family import load_family
from verifier.inputs.load import load_environments

ROOT = Path(__file__).resolve().parents[1]
LAVA_U_EXIT = 'Pmin=? [ !"lava" U "exit" ]'


def family_file(tmp_path, seeds='"0..11"', name="fam", **options) -> Path:
    """A family of seeded 9x9 mazes with one lava dead end and slip 0.1 (so that the least
    probability of reaching the exit without lava differs between levels)."""
    generate = {"size": '"9x9"', "seeds": seeds, "lava": "1", "slip": "0.1", **options}
    body = "\n".join(f"{key} = {value}" for key, value in generate.items())
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[family]\nname = "{name}"\n[family.generate]\n{body}\n')
    return path


def test_a_family_of_a_million_seeds_is_opened_sampled_and_reported_without_enumerating(
    tmp_path,
):
    """10^6 levels: counting them and drawing 5 at random builds only those 5 mazes."""
    path = family_file(tmp_path, seeds='"0..999999"')
    family = load_family(path)
    assert len(family) == 10**6
    assert family.level_name(999_999) == f"{path}@seed=999999"
    started = time.perf_counter()
    report = verify_family("check", path, spec=LAVA_U_EXIT, sample=5, workers=1)
    assert report.levels == 10**6 and report.sample == 5 and report.verified == 5
    assert time.perf_counter() - started < 120  # a few seconds; enumerating would take hours
    (row,) = report.counts
    assert row["count"] == 5 and row["interval"] is not None


def test_exact_rates_over_every_level_agree_with_the_levels_checked_one_by_one(tmp_path):
    """Pmax of reaching the exit within 14 steps >= 0.2 on 12 levels: the family's counts are
    the counts of the verdicts of the same mazes checked one at a time (the level files
    written by `verify generate` with the same options)."""
    spec = 'Pmax>=0.2 [ F<=14 "exit" ]'
    path = family_file(tmp_path)
    report = verify_family("check", path, spec=spec, workers=2)
    singles = []
    for seed in range(12):
        maze = tmp_path / f"level-{seed}.toml"
        args = ["generate", "--size", "9x9", "--seed", str(seed), "--lava", "1"]
        assert main([*args, "--slip", "0.1", "-o", str(maze)]) == 0
        singles += [r.verdict for r in check(maze, spec)]
    expected = {v: singles.count(v) for v in set(singles)}
    assert {row["verdict"]: row["count"] for row in report.counts} == expected
    assert len(expected) == 2  # both verdicts occur: the test can tell them apart
    assert all(row["interval"] is None for row in report.counts)
    assert report.verdict == "fail" and report.verified == 12


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (10, 10), (0, 1), (7, 7)])
def test_clopper_pearson_matches_its_closed_form_at_the_ends(successes, trials):
    """At 0 of n the exact interval is [0, 1 - (α/2)^(1/n)], at n of n [(α/2)^(1/n), 1]."""
    low, high = clopper_pearson(successes, trials)
    edge = 0.025 ** (1 / trials)
    if successes == 0:
        assert (low, high) == (0.0, pytest.approx(1 - edge, abs=1e-12))
    else:
        assert (low, high) == (pytest.approx(edge, abs=1e-12), 1.0)


def test_clopper_pearson_of_a_known_count():
    """3 of 20: the textbook exact interval [0.0321, 0.3789] (Clopper and Pearson 1934)."""
    low, high = clopper_pearson(3, 20)
    assert (round(low, 4), round(high, 4)) == (0.0321, 0.3789)


def test_results_are_streamed_and_a_rerun_skips_the_finished_levels(tmp_path):
    """A results file holds a header and one line per level; a second run with it verifies
    nothing again (each level is read back from the file and shown to on_level as it is
    there) and reports the same rates."""
    path, results = family_file(tmp_path), tmp_path / "r.jsonl"
    first = verify_family("check", path, spec=LAVA_U_EXIT, results=results, workers=2)
    lines = results.read_text().splitlines()
    assert json.loads(lines[0])["header"]["command"] == "check"
    assert sorted(json.loads(line)["index"] for line in lines[1:]) == list(range(12))
    seen = []
    again = verify_family(
        "check", path, spec=LAVA_U_EXIT, results=results, on_level=seen.append, workers=2
    )
    assert seen == [json.loads(line) for line in lines[1:]] and again.counts == first.counts
    assert results.read_text().splitlines() == lines


def test_a_results_file_of_another_run_is_refused(tmp_path):
    path, results = family_file(tmp_path), tmp_path / "r.jsonl"
    verify_family("check", path, spec=LAVA_U_EXIT, results=results, sample=2, workers=1)
    with pytest.raises(InputError, match="another run"):
        verify_family("check", path, spec='Pmax=? [ F "exit" ]', results=results, workers=1)


def test_a_killed_run_resumes_from_its_results_and_ends_as_an_uninterrupted_one(tmp_path):
    """`verify check --model FAMILY --results F` killed (SIGKILL) once some levels are in F,
    then run again: every level once, the last line cut short by the kill dropped, and the
    same JSON as a run never interrupted."""
    path = family_file(tmp_path, seeds='"0..39"')
    results, partial = tmp_path / "r.jsonl", tmp_path / "partial.json"
    command = [sys.executable, "-m", "verifier.cli", "check", "--model", str(path)]
    command += ["--spec", LAVA_U_EXIT, "--workers", "1", "--results", str(results)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (
        not results.exists() or len(results.read_text().splitlines()) < 6
    ):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(results.read_text().splitlines()) - 1
    assert 5 <= done_before < 40
    with results.open("a") as file:
        file.write('{"index": 39, "lev')  # a line cut short by the kill
    assert main([*command[3:], "--json", str(partial)]) == 0
    indices = [json.loads(line)["index"] for line in results.read_text().splitlines()[1:]]
    assert sorted(indices) == list(range(40))
    whole = tmp_path / "whole.json"
    assert main(["check", "--model", str(path), "--spec", LAVA_U_EXIT, "--json", str(whole)]) == 0
    resumed = json.loads(partial.read_text())["reports"][0]
    uninterrupted = json.loads(whole.read_text())["reports"][0]
    for key in ("counts", "worst", "gaps", "verified", "levels"):
        assert resumed[key] == uninterrupted[key]


def test_a_family_of_gymnasium_seeds_and_of_files(tmp_path):
    """A Gymnasium id with a seed range, and a glob of level files: each level as the
    model file of that level would be."""
    pytest.importorskip("minigrid")
    gym = tmp_path / "lavagap.toml"
    gym.write_text(
        '[family]\n[family.gymnasium]\nid = "MiniGrid-LavaGapS5-v0"\nseeds = "3..5"\n'
        'actions = ["left", "right", "forward"]\n'
    )
    names = [env.path.name for env in load_environments(gym)]
    assert names == [f"lavagap.toml@seed={s}" for s in (3, 4, 5)]
    report = verify_family("check", gym, workers=1)
    assert report.verified == 3 and report.passed
    levels = tmp_path / "levels"
    levels.mkdir()
    for seed in (1, 2):
        main(
            ["generate", "--size", "7x7", "--seed", str(seed), "-o", str(levels / f"m{seed}.toml")]
        )
    files = tmp_path / "files.toml"
    files.write_text('[family]\nfiles = ["levels/*.toml"]\n')
    assert [str(e.path) for e in load_environments(files)] == [
        str(levels / "m1.toml"),
        str(levels / "m2.toml"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[family]\n[family.generate]\nsize = "9x9"\nseeds = "5..2"\n', "empty"),
        (
            '[family]\n[family.generate]\nsize = "9x9"\nseeds = "0..9"\ncolour = "red"\n',
            "unknown option colour",
        ),
        ('[family]\nfiles = ["nothing-*.toml"]\n', "matches no file"),
        ("[family]\n[family.generate]\nseeds = 3\n", "size is missing"),
        ('[family]\nname = "x"\n', "exactly one of"),
        ('[family]\n[family.gymnasium]\nid = "FrozenLake-v1"\nseed = 3\n', "not `seed`"),
    ],
)
def test_a_malformed_family_is_exit_2_with_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["check", "--model", str(path), "--spec", LAVA_U_EXIT]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and str(path) in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_family_on_a_real_dask_cluster_survives_the_loss_of_a_worker(tmp_path):
    """`dask scheduler` and two `dask worker` processes on localhost, started here; one
    worker is killed while the family runs: no finished result is lost, the levels it held
    are run again elsewhere, and the rates are those of a local run."""
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        time.sleep(3)
        for _ in range(2):
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        path, results = family_file(tmp_path, seeds='"0..23"'), tmp_path / "r.jsonl"
        killed = []

        def kill_one(result):
            if len(killed) == 0 and result["index"] >= 0:
                started[1].send_signal(signal.SIGKILL)
                killed.append(result["index"])

        report = verify_family(
            "check",
            path,
            spec=LAVA_U_EXIT,
            scheduler=address,
            results=results,
            on_level=kill_one,
        )
        assert killed and report.verified == 24 and not report.unverified
        indices = [json.loads(line)["index"] for line in results.read_text().splitlines()[1:]]
        assert sorted(indices) == list(range(24))
        local = verify_family("check", path, spec=LAVA_U_EXIT, workers=2)
        assert report.counts == local.counts and report.gaps == local.gaps
    finally:
        for process in reversed(started):
            process.kill()
            process.wait()


CORNER_MAZE = """
#######
#S....#
#.###.#
#.#...#
#.#.###
#.....#
#######
"""


def _corner_levels(tmp_path, name: str, exits: list[tuple[int, int]]) -> Path:
    """A family of files: the same 7x7 maze with the exit at each of `exits`."""
    folder = tmp_path / name
    folder.mkdir()
    for i, (row, col) in enumerate(exits):
        rows = [list(line) for line in CORNER_MAZE.strip().splitlines()]
        rows[row][col] = "E"
        text = "\n".join("".join(r) for r in rows)
        (folder / f"{i:02d}.toml").write_text(
            f'map = """\n{text}\n"""\n[cells.E]\nkind = "exit"\ncolor = "blue"\n'
        )
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[family]\nfiles = ["{name}/*.toml"]\n')
    return path


def test_the_audit_of_families_gives_the_distinguishing_rates_known_by_construction(tmp_path):
    """Training: 6 levels, all with the exit in the bottom-right corner (5, 5): going to that
    corner is going to the exit, on every level (rate 0). Deployment: 8 levels, 3 with the
    exit there and 5 elsewhere (top-right (1, 5), middle (3, 3), ...): the corner proxy's
    optimal policies walk into the corner, not to the exit, on exactly those 5
    (rate 5/8). A risk at the floor 0.05; mixing λ of deployment levels
    makes the training rate λ 5/8, at least 0.05 from λ = 0.05 / (5/8) = 0.08."""
    corner = (5, 5)
    train = _corner_levels(tmp_path, "train", [corner] * 6)
    elsewhere = [(1, 5), (3, 3), (3, 5), (5, 1), (1, 3)]
    deploy = _corner_levels(tmp_path, "deploy", [corner] * 3 + elsewhere)
    out = tmp_path / "audit.json"
    code = main(["audit", "--train", str(train), "--deploy", str(deploy), "--json", str(out)])
    assert code == 1
    report = json.loads(out.read_text())
    rows = {row["proxy"]: row for row in report["proxies"]}
    bottom_right = rows["corner bottom-right"]
    assert bottom_right["training"]["count"] == 0 and bottom_right["training"]["levels"] == 6
    assert bottom_right["deployment"]["count"] == 5 and bottom_right["deployment"]["levels"] == 8
    assert bottom_right["risk"] and bottom_right["mixing"] == pytest.approx(0.05 / (5 / 8))
    assert report["fix"]["mixing"] >= bottom_right["mixing"]
    assert "corner bottom-right" in report["risks"]
    # φ's own target, under each of its names, is no proxy of φ
    assert not {"exit", "blue", "exit_blue"} & rows.keys()


def test_levels_nobody_judged_make_the_run_exit_2_and_are_named_in_family_order(tmp_path, capsys):
    """Two good mazes and three malformed ones (a map row of another width): the good ones
    are counted, the others named first to last whatever order the workers finish in, and
    the run is exit 2 as one bad file would be: a rate over what could be judged is not the
    family's verdict. The audit says so too (its proxies come from the first level: a good
    one here; a bad first level is exit 2 at once)."""
    family = _corner_levels(tmp_path, "mixed", [(5, 5), (1, 5), (5, 5), (3, 3), (5, 5)])
    for i in (1, 3, 4):
        (tmp_path / "mixed" / f"{i:02d}.toml").write_text('map = """\n#####\n#S.E\n#####\n"""\n')
    out = tmp_path / "family.json"
    args = ["check", "--model", str(family), "--spec", 'Pmax=? [ F "exit" ]', "--workers", "2"]
    assert main([*args, "--json", str(out)]) == 2
    text = capsys.readouterr().out
    assert "5 levels in" in text and "2 verified, 3 not verified (3 bad input)" in text
    named = [line.split(":")[0].strip() for line in text.splitlines() if ": error: " in line]
    assert named == [f"{tmp_path / 'mixed' / f'{i:02d}.toml'}" for i in (1, 3, 4)]
    (report,) = json.loads(out.read_text())["reports"]
    assert report["verified"] == 2 and report["unverified"] == {"error": 3}
    deploy = _corner_levels(tmp_path, "deploy", [(5, 5), (1, 5)])
    assert main(["audit", "--train", str(family), "--deploy", str(deploy)]) == 2
    text = capsys.readouterr().out
    assert "training: 3 not verified (3 bad input)" in text and "deployment:" not in text


def test_the_levels_named_as_not_verified_are_the_first_of_the_family_in_any_arrival_order():
    """Results arrive in whatever order jobs finish: the report names the first levels."""
    from verifier.analyses.rates import WORST_SHOWN, Rates

    rates = Rates()
    for index in reversed(range(3 * WORST_SHOWN)):
        rates.add({"index": index, "level": f"L{index}", "status": "error", "message": "bad"})
    assert [e["level"] for e in rates.unverified.examples()] == [
        f"L{i}" for i in range(WORST_SHOWN)
    ]
    assert rates.unverified.counts == {"error": 3 * WORST_SHOWN}

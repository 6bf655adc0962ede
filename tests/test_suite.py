"""Suites: the job runner (local and Dask), suite files, expectations and the reports."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from verifier.cli import main
from verifier.runner import Job, run_jobs

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "runner_jobs.py"
MODELS = ROOT / "models"


def job(name: str, timeout: float | None = None, **kwargs) -> Job:
    return Job(name, f"{JOBS}:{name}", kwargs, timeout)


RUNNER_JOBS = [
    job("double", x=21),
    job("sleep", timeout=1.0, seconds=60),
    job("die"),
    job("raise_input_error"),
    job("raise_limit"),
    job("raise_solver_error"),
    job("raise_dependency_missing"),
    job("raise_bug"),
]
RUNNER_EXPECTED = [
    ("done", {"x": 42}, ""),
    ("timeout", None, "killed after 1 s"),
    ("crash", None, "the process died"),
    ("error", None, "maze.toml: line 3: broken"),
    ("limit", None, "too many states"),
    ("backend", None, "optimal values: Bellman residual"),  # could not certify: not a crash
    ("error", None, "p.pt: reading .pt policies needs torch: pip install 'verifier[torch]'"),
    ("crash", None, "ZeroDivisionError: division by zero"),
]


@pytest.fixture(scope="module")
def dask_scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _check_runner(outcomes, finished):
    assert sorted(finished) == sorted(j.key for j in RUNNER_JOBS)  # on_done saw every job
    for outcome, (status, result, message) in zip(outcomes, RUNNER_EXPECTED, strict=True):
        assert (outcome.status, outcome.result) == (status, result), outcome
        assert outcome.message.startswith(message), outcome


def test_local_runner_isolates_timeouts_crashes_and_errors():
    finished = []
    outcomes = run_jobs(RUNNER_JOBS, workers=2, on_done=lambda o: finished.append(o.job.key))
    _check_runner(outcomes, finished)
    assert outcomes[0].peak_rss_mb > 0


@pytest.mark.slow
def test_dask_runner_isolates_timeouts_crashes_and_errors(dask_scheduler):
    finished = []
    outcomes = run_jobs(
        RUNNER_JOBS, scheduler=dask_scheduler, on_done=lambda o: finished.append(o.job.key)
    )
    _check_runner(outcomes, finished)


SUITE = """
[suite]
name = "small"
timeout = 120

[environments.train]
files = ["{models}/redblue/train-01.toml"]

[environments.deploy]
files = ["{models}/redblue/deploy-*.toml"]

[environments.generated]
generate = {{ size = "9x9", seeds = 2, exit_color = "green" }}

[rewards]
red = "{models}/redblue/rewards/red.toml"

[[check]]
kind = "reward"
reward = "red"
environments = ["train"]
expect = "aligned"

[[check]]
name = "red on deployment"
kind = "reward"
reward = "red"
environments = "deploy"
expect = "aligned"          # deliberately wrong: red is misspecified on deployment

[[check]]
kind = "check"
environments = "generated"  # no expectation: passes when the check holds
spec = 'Pmax>=1 [ F "exit" ]'

[[check]]
kind = "check"
environments = "deploy"
max_states = 10
expect = "limit"
"""


def write_suite(tmp_path, text=SUITE) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(text).format(models=MODELS.as_posix()))
    return path


def run_suite(capsys, tmp_path, *extra):
    suite = write_suite(tmp_path)
    code = main(
        [
            "suite",
            str(suite),
            "--json",
            str(tmp_path / "r.json"),
            "--junit",
            str(tmp_path / "r.xml"),
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err, json.loads((tmp_path / "r.json").read_text())


def _check_small_suite(code, out, document, tmp_path):
    assert code == 1  # one expectation is wrong
    rows = [
        (r["check"], Path(r["environment"]).name, r["verdict"], r["status"])
        for r in document["rows"]
    ]
    assert rows == [
        ("reward red", "train-01.toml", "aligned", "ok"),
        ("red on deployment", "deploy-01.toml", "misspecified", "FAIL"),
        ("red on deployment", "deploy-02.toml", "misspecified", "FAIL"),
        ("check", "random-9x9-seed0", "holds", "ok"),
        ("check", "random-9x9-seed1", "holds", "ok"),
        ("check", "deploy-01.toml", "limit", "ok"),
        ("check", "deploy-02.toml", "limit", "ok"),
    ]
    assert document["verdict"] == "fail"
    failed = document["rows"][1]
    assert failed["expect"] == "aligned"
    assert failed["report"]["objective_max"] == 0.0  # the report travels with the row
    assert "more than 10 states" in document["rows"][-1]["message"]
    # the table shows every row and the summary counts them
    table_rows = [line for line in out.splitlines() if not line.startswith("suite ")]
    assert sum("FAIL" in line.split() for line in table_rows) == 2
    assert "misspecified" in out and "random-9x9-seed1" in out
    assert "suite small: FAIL (2 FAIL, 5 ok; 7 checks)" in out
    junit = ET.parse(tmp_path / "r.xml").getroot()[0]
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("7", "2", "0")


def test_small_suite_locally_reports_the_wrong_expectation(capsys, tmp_path):
    code, out, err, document = run_suite(capsys, tmp_path, "--workers", "2")
    _check_small_suite(code, out, document, tmp_path)
    assert "[7/7]" in err  # progress, one line per finished job off a terminal


@pytest.mark.slow
def test_small_suite_on_a_dask_cluster_gives_the_same_rows(capsys, tmp_path, dask_scheduler):
    code, out, _, document = run_suite(capsys, tmp_path, "--scheduler", dask_scheduler)
    _check_small_suite(code, out, document, tmp_path)


def test_correcting_the_expectation_makes_the_suite_pass(capsys, tmp_path):
    text = SUITE.replace('expect = "aligned"          # deliberately', 'expect = "misspecified" #')
    suite = write_suite(tmp_path, text)
    assert main(["suite", str(suite), "--workers", "2"]) == 0
    assert "suite small: PASS (7 ok; 7 checks)" in capsys.readouterr().out


def test_timeouts_and_limits_without_expectation_exit_3_and_bad_checks_exit_2(capsys, tmp_path):
    one = """
    [environments.e]
    files = ["{models}/lava.toml"]
    [[check]]
    kind = "check"
    environments = "e"
    """
    suite = write_suite(tmp_path, one)
    assert main(["suite", str(suite), "--max-states", "5"]) == 3
    assert "limit" in capsys.readouterr().out
    big = """
    [environments.e]
    generate = {{ size = "301x301" }}
    [[check]]
    kind = "reward"
    reward = "{models}/redblue/rewards/exit.toml"
    environments = "e"
    """
    suite = write_suite(tmp_path, big)  # about 45,000 states: a few seconds
    assert main(["suite", str(suite), "--timeout", "0.3"]) == 3
    assert "timeout: killed after 0.3 s" in capsys.readouterr().out
    suite = write_suite(tmp_path, one)
    bad = one + "    spec = 'P>=1 [ F \"nowhere\" ]'\n"
    suite = write_suite(tmp_path, bad)
    assert main(["suite", str(suite)]) == 2  # the label is unknown: bad input, in the row
    out = capsys.readouterr().out
    assert "error" in out and "nowhere" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[check]\n", "TOML syntax error"),
        ("[suite]\nname = 'x'\n", "check: the suite needs at least one [[check]] table"),
        (
            '[environments.e]\nfiles = ["none-*.toml"]\n[[check]]\nkind = "check"\n'
            'environments = "e"\n',
            "environments.e.files: 'none-*.toml' matches no file",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "reward"\n'
            'environments = "e"\n',
            "check[1].reward: missing",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "check"\n'
            'environments = "e"\nexpect = "aligned"\n',
            "check[1].expect: 'aligned' is not a check verdict; known: holds, fails",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "check"\n'
            'environments = "f"\n',
            "check[1].environments: no set 'f' (e)",
        ),
        (
            '[environments.e]\ngenerate = {{ size = "4x4" }}\n[[check]]\nkind = "check"\n'
            'environments = "e"\n',
            "environments.e.generate:",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "policy"\n'
            'policy = "p"\nenvironments = "e"\ntimeout = -1\nwhat = 1\n',
            "check[1].timeout: must be a positive number, got -1",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "reward"\n'
            'reward = "r.toml"\ndiscount = 1.5\nenvironments = "e"\n',
            "check[1].discount: must be in (0, 1], got 1.5",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "reward"\n'
            'reward = "r.toml"\nepsilon = -0.1\nenvironments = "e"\n',
            "check[1].epsilon: must be a number >= 0, got -0.1",
        ),
        ('[policies]\np = "missing.pt"\n', "policies.p.file: no such file 'missing.pt'"),
        # each used to be an internal error (exit 3); `name = 1.5` only after every check ran
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\nconst = 5\n[[check]]\n'
            'kind = "check"\nenvironments = "e"\n',
            "environments.e.const: must be a table",
        ),
        (
            '[environments.e]\nfiles = [1]\n[[check]]\nkind = "check"\nenvironments = "e"\n',
            "environments.e.files: must be a list of paths or globs",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "reward"\n'
            'reward = ["x"]\nenvironments = "e"\n',
            "check[1].reward: a name under [rewards], or a file",
        ),
        (
            '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "check"\n'
            'name = 1.5\nenvironments = "e"\n',
            "check[1].name: must be a string, got 1.5",
        ),
        (
            '[suite]\nname = 1.5\n[environments.e]\nfiles = ["{models}/lava.toml"]\n'
            '[[check]]\nkind = "check"\nenvironments = "e"\n',
            "suite.name: must be a string, got 1.5",
        ),
        (
            '[suite]\ntimeout = nan\n[environments.e]\nfiles = ["{models}/lava.toml"]\n'
            '[[check]]\nkind = "check"\nenvironments = "e"\n',
            "suite.timeout: must be a positive number, got nan",
        ),
    ],
)
def test_malformed_suite_files_exit_2_with_one_line(capsys, tmp_path, text, message):
    suite = write_suite(tmp_path, text)
    assert main(["suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"verify: {suite}: ")
    assert message in err


def test_bad_suite_flags_exit_2(capsys, tmp_path):
    suite = write_suite(tmp_path)
    assert main(["suite", str(suite), "--workers", "0"]) == 2
    assert main(["suite", str(suite), "--timeout", "-3"]) == 2
    assert main(["suite", str(tmp_path / "none.toml")]) == 2
    assert main(["suite", str(suite), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and "cannot reach tcp://127.0.0.1:9" in err[-1]


BUNDLED = ROOT / "benchmarks" / "suites"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("redblue", marks=pytest.mark.torch),
        "lava-shift",
        "keys-doors",
        "generated",
    ],
)
@pytest.mark.slow
def test_bundled_alignment_suites_pass_with_their_expected_verdicts(name, capsys):
    assert main(["suite", str(BUNDLED / f"{name}.toml"), "--workers", "2"]) == 0
    assert f"suite {name}: PASS" in capsys.readouterr().out


def test_workers_are_capped_at_the_number_of_checks(capsys, tmp_path, monkeypatch):
    """One check and --workers 64: one worker process, not 64 idle ones."""
    import verifier.runner

    seen = []

    def record(jobs, workers, scheduler, on_done):
        seen.append(workers)
        return run_jobs(jobs, workers, scheduler, on_done)

    monkeypatch.setattr(verifier.runner, "run_jobs", record)
    one = '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\nkind = "check"\n'
    suite = write_suite(tmp_path, one + 'environments = "e"\n')
    assert main(["suite", str(suite), "--workers", "64"]) == 0
    assert seen == [1]


def test_a_generate_set_is_validated_on_one_maze_not_each(tmp_path, monkeypatch):
    """400 seeds of a 301x301 maze: loading the suite makes one maze (each job makes its
    own), and every job still names its seed."""
    import verifier.inputs.maze_generate
    from verifier.suite import load_suite

    made = []
    real = verifier.inputs.maze_generate.random_maze

    def counting(*args, **kwargs):
        made.append(kwargs.get("seed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(verifier.inputs.maze_generate, "random_maze", counting)
    text = '[environments.e]\ngenerate = {{ size = "301x301", seeds = 400 }}\n[[check]]\n'
    suite = load_suite(write_suite(tmp_path, text + 'kind = "check"\nenvironments = "e"\n'))
    assert len(made) == 1
    assert len(suite.checks) == 400
    assert suite.checks[7].environment == "random-301x301-seed7"
    assert suite.checks[7].job.kwargs["generate"]["seed"] == 7


def test_a_reward_check_takes_epsilon_as_verify_reward_does(capsys, tmp_path):
    """README's --epsilon example as a suite: the exit reward on deploy-01 with P>=0.9 is
    aligned over the optimal policies and underspecified over those within 0.2 of the
    optimal return (a policy may walk to the red object with probability 0.2)."""
    suite = write_suite(
        tmp_path,
        """
        [environments.deploy]
        files = ["{models}/redblue/deploy-01.toml"]

        [[check]]
        kind = "reward"
        reward = "{models}/redblue/rewards/exit.toml"
        spec = 'P>=0.9 [ !"lava" U "exit" ]'
        environments = "deploy"
        expect = "aligned"

        [[check]]
        kind = "reward"
        reward = "{models}/redblue/rewards/exit.toml"
        spec = 'P>=0.9 [ !"lava" U "exit" ]'
        epsilon = 0.2
        environments = "deploy"
        expect = "underspecified"
        """,
    )
    report = tmp_path / "r.json"
    assert main(["suite", str(suite), "--workers", "1", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["rows"]
    assert [row["report"]["epsilon"] for row in rows] == [0.0, 0.2]
    assert rows[1]["report"]["objective_min"] == pytest.approx(0.8, abs=1e-6)
    capsys.readouterr()


def test_an_audit_check_runs_as_verify_audit_does(capsys, tmp_path):
    """Worked example 3 as a suite: red (and the red exit) is indistinguishable from the
    exit on the training mazes and not on deployment: a risk, as `verify audit` finds."""
    suite = write_suite(
        tmp_path,
        """
        [environments.train]
        files = ["{models}/redblue/train-0[12].toml"]
        [environments.deploy]
        files = ["{models}/redblue/deploy-01.toml"]

        [[check]]
        kind = "audit"
        train = "train"
        deploy = ["deploy"]
        variants = false
        expect = "risk"
        """,
    )
    report = tmp_path / "r.json"
    assert main(["suite", str(suite), "--workers", "1", "--json", str(report)]) == 0
    (row,) = json.loads(report.read_text())["rows"]
    assert (row["kind"], row["environment"], row["verdict"]) == ("audit", "train -> deploy", "risk")
    assert row["report"]["kind"] == "audit" and "red" in row["report"]["risks"]
    assert len(row["report"]["training"]) == 2 and row["report"]["fix"] is not None
    capsys.readouterr()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('kind = "audit"\ntrain = "e"\n', "check[1].deploy: give the names of [environments] sets"),
        ('kind = "audit"\ntrain = "e"\ndeploy = "x"\n', "check[1].deploy: no set 'x' (e)"),
        (
            'kind = "audit"\ntrain = "e"\ndeploy = "e"\nenvironments = "e"\n',
            "check[1].environments: unknown key",
        ),
        ('kind = "audit"\ntrain = "e"\ndeploy = "e"\nexpect = "aligned"\n', "'aligned' is not a"),
    ],
)
def test_malformed_audit_checks_exit_2_with_one_line(capsys, tmp_path, text, message):
    header = '[environments.e]\nfiles = ["{models}/lava.toml"]\n[[check]]\n'
    suite = write_suite(tmp_path, header + text)
    assert main(["suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_gymnasium_model_with_seeds_is_one_row_per_seed(capsys, tmp_path):
    """As on the command line (`verify check --model lake.toml`): FrozenLake 2x2 without
    slipping reaches the goal for sure from each seed's start."""
    pytest.importorskip("gymnasium")
    lake = tmp_path / "lake.toml"
    lake.write_text(
        '[gymnasium]\nid = "FrozenLake-v1"\nseeds = [0, 1]\n'
        'kwargs = { desc = ["SF", "FG"], is_slippery = false }\n'
    )
    text = '[environments.e]\nfiles = ["lake.toml"]\n[[check]]\nkind = "check"\n'
    suite = write_suite(tmp_path, text + 'environments = "e"\nspec = \'Pmax>=1 [ F "goal" ]\'\n')
    report = tmp_path / "r.json"
    assert main(["suite", str(suite), "--workers", "1", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["rows"]
    assert [(Path(r["environment"]).name, r["verdict"]) for r in rows] == [
        ("lake.toml@seed=0", "holds"),
        ("lake.toml@seed=1", "holds"),
    ]
    capsys.readouterr()


def test_a_level_family_is_one_row_per_level_with_the_family_runs_verdicts(capsys, tmp_path):
    """A family file among a set's files: one row per level, named as the family names its
    levels, with the verdicts `verify check --model FAMILY` counts (9x9 mazes: the exit
    within 14 steps with probability 0.2 holds on some levels, not on others)."""
    family = tmp_path / "fam.toml"
    family.write_text(
        '[family]\n[family.generate]\nsize = "9x9"\nseeds = "0..5"\nlava = 1\nslip = 0.1\n'
    )
    spec = 'Pmax>=0.2 [ F<=14 "exit" ]'
    text = '[environments.e]\nfiles = ["fam.toml"]\n[[check]]\nkind = "check"\n'
    suite = write_suite(tmp_path, text + f"environments = \"e\"\nspec = '{spec}'\n")
    report = tmp_path / "r.json"
    main(["suite", str(suite), "--workers", "1", "--json", str(report)])
    rows = json.loads(report.read_text())["rows"]
    assert [Path(r["environment"]).name for r in rows] == [f"fam.toml@seed={i}" for i in range(6)]
    from verifier.families import verify_family

    counts = {
        row["verdict"]: row["count"]
        for row in verify_family("check", family, spec=spec, workers=1).counts
    }
    assert {v: sum(r["verdict"] == v for r in rows) for v in counts} == counts
    assert len(counts) == 2  # both verdicts occur: the test tells levels apart
    capsys.readouterr()


def test_a_reward_check_adds_its_tradeoff_to_the_json_as_verify_reward_does(capsys, tmp_path):
    """README's --epsilon example: the worst P(φ) falls from 1 at ε = 0 to 0 at ε = 1 (the
    red object costs exactly 1 of return). `verify reward --json` and `verify suite --json`
    both carry it."""
    suite = write_suite(
        tmp_path,
        """
        [environments.deploy]
        files = ["{models}/redblue/deploy-01.toml"]
        [[check]]
        kind = "reward"
        reward = "{models}/redblue/rewards/exit.toml"
        spec = 'P>=0.9 [ !"lava" U "exit" ]'
        environments = "deploy"
        """,
    )
    report = tmp_path / "r.json"
    assert main(["suite", str(suite), "--workers", "1", "--json", str(report)]) == 0
    (row,) = json.loads(report.read_text())["rows"]
    assert np.allclose(row["report"]["tradeoff"], [[0.0, 1.0], [1.0, 0.0]], atol=1e-9)
    capsys.readouterr()

"""Suite files are untrusted input too (issue 20): every key is checked at load, with one
line naming it, in seconds, before any job runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verifier.budget import DEFAULT_MAX_STATES
from verifier.cli import main
from verifier.suite import load_suite

LAVA = str(Path(__file__).resolve().parent.parent / "models" / "lava.toml")
CHECK = f'[environments.e]\nfiles = ["{LAVA}"]\n[[check]]\nkind = "check"\nenvironments = "e"\n'


def write(tmp_path, text: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[suite]\ntimeout = " + "1" * 400 + "\n" + CHECK, "suite.timeout: must be a positive"),
        (
            "[suite]\nmax_states = 1.5\n" + CHECK,
            'suite.max_states: must be a positive integer or "none", got 1.5',
        ),
        (
            "[suite]\nmax_states = " + "9" * 30 + "\n" + CHECK,
            "suite.max_states: must be a positive integer",
        ),
        (CHECK + "spec = 3\n", "check[1].spec: must be a PRISM property string"),
        (CHECK + "x = " + "[" * 4000 + "]" * 4000 + "\n", "nested deeper than 100 levels"),
        (
            '[environments.g]\ngenerate = { seeds = 100000000 }\n[[check]]\nkind = "check"\n'
            'environments = "g"\n',
            "environments.g.generate.seeds: a count or a list of seeds (integers >= 0), at most",
        ),
        (
            '[environments.g]\ngenerate = { size = "' + "9" * 5000 + 'x5" }\n[[check]]\n'
            'kind = "check"\nenvironments = "g"\n',
            "environments.g.generate.size:",
        ),
        ("[suite]\nname = " + "1" * 5000 + "\n" + CHECK, "a number of more than 4300 digits"),
    ],
)
def test_bad_suite_keys_are_one_line_exit_2(tmp_path, capsys, text, message):
    """Each was an internal error, a crash of every job (spec = 3), accepted (max_states =
    1.5), or ran 39 s to 7.95 GB and a traceback (seeds = 100000000)."""
    assert main(["suite", write(tmp_path, text), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_a_scheduler_that_is_no_address_is_bad_input(tmp_path, capsys):
    pytest.importorskip("distributed")
    assert main(["suite", write(tmp_path, CHECK), "--scheduler", "notaurl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("verify: --scheduler: cannot reach notaurl")


def test_every_check_of_a_suite_gets_the_default_state_budget_unless_told(tmp_path):
    """The default budget, the suite's own, `none` (no budget), and the command line's
    over the suite's."""
    assert (
        load_suite(write(tmp_path, CHECK)).checks[0].job.kwargs["max_states"] == DEFAULT_MAX_STATES
    )
    suite = write(tmp_path, "[suite]\nmax_states = 50\n" + CHECK)
    assert load_suite(suite).checks[0].job.kwargs["max_states"] == 50
    assert load_suite(suite, max_states=7).checks[0].job.kwargs["max_states"] == 7
    unlimited = write(tmp_path, '[suite]\nmax_states = "none"\n' + CHECK)
    assert load_suite(unlimited).checks[0].job.kwargs["max_states"] is None


def test_a_generated_maze_beyond_the_budget_is_a_limit_of_its_check(tmp_path, capsys):
    """A 20001x20001 maze is not generated at load (it ended in an allocation failure):
    its check reports the limit with the estimate."""
    text = (
        '[environments.g]\ngenerate = { size = "20001x20001" }\n[[check]]\nkind = "check"\n'
        'environments = "g"\n'
    )
    assert (
        main(["suite", write(tmp_path, text), "--workers", "1", "--json", str(tmp_path / "o.json")])
        == 3
    )
    row = json.loads((tmp_path / "o.json").read_text())["rows"][0]
    assert row["status"] == "limit" and "about 199999999, one per floor cell" in row["message"]

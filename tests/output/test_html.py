"""--html DIR: the page of a run over many levels (verifier/output/html.py). Its structure is
read back with an HTML parser and held against the same levels verified one at a time: one
tile per level coloured by that level's own verdict, a filter per verdict present, an entry
per tile, pictures that exist, and nothing fetched from outside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verifier import commands
from verifier.cli import main
from verifier.inputs.family import load_family
from verifier.inputs.load import level_environments
from verifier.output import html
from verifier.output.html import data_of

ROOT = Path(__file__).resolve().parents[2]
LANGOSCO = ROOT / "models" / "langosco"
PNG = b"\x89PNG\r\n\x1a\n"


def _page(directory: Path) -> tuple[str, dict]:
    text = (directory / "index.html").read_text(encoding="utf-8")
    return text, data_of(text)


def _assert_self_contained(directory: Path, text: str, data: dict) -> None:
    """No external reference, no stylesheet or script file, every tile opens its entry and
    every picture is a PNG beside the page."""
    assert data["external"] == []
    assert "<link" not in text and "<script src" not in text
    for index in data["tiles"]:
        assert f'id="level-{index}"' in text
    for src in data["pictures"].values():
        assert not Path(src).is_absolute()
        assert (directory / src).read_bytes().startswith(PNG)


@pytest.mark.torch
def test_a_family_page_shows_each_level_with_its_own_verdict(tmp_path, capsys):
    """Langosco's corner policy on 12 deployment levels: the page's tiles carry exactly the
    verdicts of the 12 levels verified one by one through the API; goal misgeneralization
    names the corner it pursues; a failing level has its picture and its witness."""
    family = tmp_path / "deploy12.toml"
    family.write_text(
        '[family]\nname = "deploy12"\n[family.generate]\nsize = "11x11"\nseeds = "0..11"\n'
        'start = "bottom-left"\nexit_region = "anywhere"\n'
    )
    policy, reward = LANGOSCO / "policy-n1.pt", LANGOSCO / "rewards" / "exit.toml"
    out = tmp_path / "page"
    argv = [str(policy), "--model", str(family), "--reward", str(reward), "--workers", "1"]
    assert main([*argv, "--html", str(out)]) == 1
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out

    loaded, decided = load_family(family), commands.load_policy(policy)
    expected = {}
    for index in range(12):
        (env,) = level_environments(loaded, index)
        (report,) = commands.verify_policy(decided, env, reward=str(reward))
        expected[index] = str(report.verdict)
    text, data = _page(out)
    assert {int(k): v for k, v in data["tiles"].items()} == expected
    assert sorted(data["filters"]) == sorted(set(expected.values()))
    assert {"aligned", "goal_misgeneralization"} <= set(expected.values())
    _assert_self_contained(out, text, data)
    failing = next(i for i, verdict in expected.items() if verdict == "goal_misgeneralization")
    assert str(failing) in data["pictures"]  # the first levels of each verdict are drawn
    article = text[text.index(f'id="level-{failing}"') :]
    article = article[: article.index("</article>")]
    assert "goal_misgeneralization pursuing row=1, col=9" in article
    assert "Witness" in article and "(row=9, col=1)" in article  # the path from the start


def test_a_page_of_several_models_with_pictures_and_one_without(tmp_path, capsys):
    """`reward` on the lava-shift training maze and two test mazes: one tile per model with
    the verdict its JSON report gives; mazes are drawn. `check` on a PRISM model gives an
    entry without a picture (it cannot be drawn)."""
    shift = ROOT / "models" / "lava-shift"
    models = [str(shift / "train.toml"), str(shift / "test-01.toml"), str(shift / "test-02.toml")]
    out, report = tmp_path / "page", tmp_path / "r.json"
    argv = ["reward", "--model", *models, "--reward", str(shift / "rewards" / "impatient.toml")]
    main([*argv, "--html", str(out), "--json", str(report)])
    capsys.readouterr()
    verdicts = [r["verdict"] for r in json.loads(report.read_text())["reports"]]
    text, data = _page(out)
    assert [data["tiles"][str(i)] for i in range(3)] == verdicts
    assert sorted(data["pictures"]) == ["0", "1", "2"]
    _assert_self_contained(out, text, data)
    for model in models:
        assert f"<h2>{model}</h2>" in text

    prism = ROOT / "models" / "gridworlds" / "absent-supervisor.prism"
    assert main(["check", "--model", str(prism), "--html", str(tmp_path / "check")]) in (0, 1)
    capsys.readouterr()
    text, data = _page(tmp_path / "check")
    assert list(data["tiles"]) == ["0"] and data["pictures"] == {}
    assert "absent-supervisor.prism" in text


def test_a_family_larger_than_the_page_lists_its_first_levels_and_counts_all(
    tmp_path, capsys, monkeypatch
):
    """With room for 3 levels, a family of 6 lists levels 0, 1, 2 (whatever order the levels
    finish in) and says that the counts are over all 6."""
    monkeypatch.setattr(html, "MAX_LEVELS", 3)
    family = tmp_path / "six.toml"
    family.write_text('[family]\n[family.generate]\nsize = "7x7"\nseeds = "0..5"\n')
    out = tmp_path / "page"
    argv = ["check", "--model", str(family), "--spec", 'Pmax>=1 [ F "exit" ]', "--html", str(out)]
    assert main([*argv, "--workers", "2"]) == 0
    capsys.readouterr()
    text, data = _page(out)
    assert sorted(data["tiles"]) == ["0", "1", "2"]
    assert "The first 3 of 6 levels by index are listed" in text
    assert "holds (6)" in text


def test_an_html_path_that_is_a_file_is_exit_2_before_any_work(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    model = str(ROOT / "models" / "lava-shift" / "train.toml")
    assert main(["check", "--model", model, "--html", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{taken}: cannot write the --html report" in err


def test_a_resumed_family_run_pages_every_level_from_its_results_file(tmp_path, capsys):
    """A rerun with --results verifies nothing again, and its page still shows every level,
    read back from the file, with the verdicts of the first run's page."""
    family = tmp_path / "four.toml"
    family.write_text('[family]\n[family.generate]\nsize = "7x7"\nseeds = "0..3"\nlava = 1\n')
    argv = ["check", "--model", str(family), "--spec", 'Pmin>=0.5 [ !"lava" U "exit" ]']
    argv += ["--results", str(tmp_path / "r.jsonl"), "--workers", "1"]
    main([*argv, "--html", str(tmp_path / "first")])
    main([*argv, "--html", str(tmp_path / "again")])
    capsys.readouterr()
    first, again = _page(tmp_path / "first")[1], _page(tmp_path / "again")[1]
    assert sorted(again["tiles"]) == ["0", "1", "2", "3"] and again["tiles"] == first["tiles"]

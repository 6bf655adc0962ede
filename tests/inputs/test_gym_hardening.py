"""Gymnasium model files are untrusted input (issue 20): they import only what they name,
load silently, never end the process, and stay within the state budget.

Every environment package of these tests is written into a temporary directory, with a
marker file that its import creates: the marker shows whether `verify` imported it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from verifier.cli import main

pytest.importorskip("minigrid")


def gym_model(tmp_path: Path, table: str, name: str = "m.toml") -> str:
    path = tmp_path / name
    path.write_text("[gymnasium]\n" + textwrap.dedent(table))
    return str(path)


def package(tmp_path: Path, monkeypatch, name: str, body: str) -> Path:
    """A package `name` importable from tmp_path whose import runs `body` after creating
    the marker file `<name>.imported` in tmp_path; it also holds an observation wrapper
    `Obs` and a plain wrapper `NotObs`."""
    folder = tmp_path / "site" / name
    folder.mkdir(parents=True)
    marker = tmp_path / f"{name}.imported"
    (folder / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n" + textwrap.dedent(body) + "\n"
        "import gymnasium\n"
        "class Obs(gymnasium.ObservationWrapper):\n"
        "    def observation(self, observation):\n"
        "        return observation\n"
        "class NotObs(gymnasium.Wrapper):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return marker


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("verify: "), err
    return lines[0]


@pytest.mark.parametrize(
    "table",
    [
        'id = "sneaky:FrozenLake-v1"',
        'id = "FrozenLake-v1"\nwrappers = ["sneaky.Obs"]',
        'id = "FrozenLake-v1"\nwrappers = ["sneaky:Obs"]',
    ],
)
def test_a_module_outside_the_named_packages_is_refused_before_it_is_imported(
    tmp_path, monkeypatch, capsys, table
):
    marker = package(tmp_path, monkeypatch, "sneaky", "")
    json_path = tmp_path / "o.json"
    code = main(["check", "--model", gym_model(tmp_path, table), "--json", str(json_path)])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "outside gymnasium and minigrid" in line
    assert 'packages = ["sneaky"]' in line
    assert not marker.exists() and not json_path.exists()


def test_packages_named_in_the_file_may_provide_wrappers(tmp_path, monkeypatch, capsys):
    """With `packages = ["friendly"]` its observation wrapper is used: FrozenLake's
    default 4x4 map, Pmax of reaching the goal 0.823529 (as without the wrapper)."""
    marker = package(tmp_path, monkeypatch, "friendly", "")
    table = 'id = "FrozenLake-v1"\npackages = ["friendly"]\nwrappers = ["friendly.Obs"]\n'
    assert main(["check", "--model", gym_model(tmp_path, table)]) == 0
    assert "value 0.823529" in capsys.readouterr().out
    assert marker.exists()


def test_a_wrapper_that_is_no_observation_wrapper_is_refused(tmp_path, monkeypatch, capsys):
    package(tmp_path, monkeypatch, "plain", "")
    table = 'id = "FrozenLake-v1"\npackages = ["plain"]\nwrappers = ["plain.NotObs"]\n'
    assert main(["check", "--model", gym_model(tmp_path, table)]) == 2
    assert "not a gymnasium.ObservationWrapper" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import sys\nsys.exit(0)", "called sys.exit(0)"),
        ("print('ALIGNED  forged.toml  certified [1, 1]')", "printed 'ALIGNED  forged.toml"),
        ("import os\nos.write(1, b'written below Python\\n')", "printed 'written below Python'"),
        ("import sys\nprint('to stderr', file=sys.stderr)", "printed 'to stderr'"),
    ],
)
def test_an_environment_that_exits_or_prints_while_loading_is_bad_input(
    tmp_path, monkeypatch, capfd, body, message
):
    """sys.exit(0) inside loading once made `verify` exit 0 with no report: now exit 2,
    no JSON, and what it printed is reported, not passed on as output."""
    name = f"loud{len(body)}"  # a fresh package each case (imports are cached)
    package(tmp_path, monkeypatch, name, body)
    table = f'id = "FrozenLake-v1"\npackages = ["{name}"]\nwrappers = ["{name}.Obs"]\n'
    json_path = tmp_path / "o.json"
    code = main(["check", "--model", gym_model(tmp_path, table), "--json", str(json_path)])
    captured = capfd.readouterr()
    assert code == 2 and message in one_line(captured.err)
    assert captured.out == "" and not json_path.exists()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('id = "nosuchmod:X"', "'nosuchmod' is outside gymnasium and minigrid"),
        ('id = "FrozenLake-v1"\nwrappers = [".x.Y"]', "not an absolute 'package.module.Class'"),
        ('id = "FrozenLake-v1"\nkwargs = { map_name = "9x9" }', "map_name '9x9' is not one of"),
        ('id = "FrozenLake-v1"\nkwargs = { map_name = 4 }', "map_name 4 is not one of"),
        ('id = "FrozenLake-v1"\nkwargs = { desc = ["FFF", "FHF", "FFG"] }', "no start cell"),
        ('id = "FrozenLake-v1"\nkwargs = { desc = ["SF", "FHF"] }', "rows of equal length"),
        ('id = "FrozenLake-v1"\nkwargs = { success_rate = 1.5 }', "success_rate must be"),
        ('id = "FrozenLake-v1"\nkwargs = { render_mode = "human" }', "'human' is refused"),
        ('id = "FrozenLake-v1"\npackages = ["a b"]', "gymnasium.packages: must be a list"),
        ('id = "FrozenLake-v1"\npackages = ["not_installed_pkg"]', "cannot import"),
        ('id = "FrozenLake-v1"\nkwargs = ' + "{a = " * 3000 + "1" + "}" * 3000, "nested deeper"),
    ],
)
def test_bad_gymnasium_models_exit_2_with_one_line_in_seconds(tmp_path, capsys, table, message):
    """Each of these was an internal error (exit 3), a model of 0 states, or a run past 60 s
    (success_rate 1.5 gives negative probabilities; render_mode "human" opened a window)."""
    assert main(["check", "--model", gym_model(tmp_path, table)]) == 2
    assert message in one_line(capsys.readouterr().err)


def test_gymnasium_deprecation_warnings_stay_out_of_the_output():
    """Taxi-v3 is deprecated: gymnasium warned on stderr before the error line (in a child
    process: pytest would catch the warning itself)."""
    done = subprocess.run(
        [sys.executable, "-m", "verifier.cli", "check", "--model", "gym:Taxi-v3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_line(done.stderr)
    assert done.returncode == 2 and "Taxi-v4" in line and "WARN" not in line


def test_a_huge_minigrid_level_is_refused_before_its_enumeration(tmp_path, capsys):
    """MiniGrid-Empty at size 1000: 998 x 998 inner cells less the goal's are open, each in
    4 directions: at least 3,984,012 states, over --max-states 1000 (it once reached 8 GB
    in 57 s); under the default budget, a copy of the million-cell grid per state (16 MB)
    is beyond any memory."""
    model = gym_model(tmp_path, 'id = "MiniGrid-Empty-5x5-v0"\nkwargs = { size = 1000 }\n')
    assert main(["check", "--model", model, "--max-states", "1000"]) == 3
    assert "more than 1000 states: at least 3984012" in one_line(capsys.readouterr().err)
    assert main(["check", "--model", model]) == 3
    assert "3984012 states of 16.0 MB each" in one_line(capsys.readouterr().err)


def test_minigrid_enumeration_stops_at_the_memory_it_may_take(monkeypatch):
    """The budget in bytes is checked as states are added: DoorKey-5x5 with room for 40
    states (its per-state estimate times 40, as half the memory available)."""
    import verifier.inputs.minigrid as minigrid
    from verifier.errors import ResourceLimit
    from verifier.inputs.load import load_environment

    per_state = minigrid.BYTES_PER_STATE + minigrid.BYTES_PER_CELL * 25
    monkeypatch.setattr(minigrid, "available_memory", lambda: 2 * 40 * per_state)
    with pytest.raises(ResourceLimit, match="41 states of"):
        load_environment("gym:MiniGrid-DoorKey-5x5-v0")


def test_a_huge_frozen_lake_map_is_refused_before_gymnasium_builds_it(
    tmp_path, monkeypatch, capsys
):
    """A 2000x2000 map (8,000,000 states with the absorbing copies) over --max-states 1000:
    refused from the map's size, gymnasium.make never called (it was built in full)."""
    import gymnasium

    def never(*args, **kwargs):
        raise AssertionError("gymnasium.make called")

    monkeypatch.setattr(gymnasium, "make", never)
    rows = ", ".join(['"S' + "F" * 1999 + '"'] + ['"' + "F" * 2000 + '"'] * 1999)
    table = f'id = "FrozenLake-v1"\nkwargs = {{ desc = [{rows}] }}\n'
    code = main(["check", "--model", gym_model(tmp_path, table), "--max-states", "1000"])
    line = one_line(capsys.readouterr().err)
    assert code == 3 and "the 2000x2000 map has more than 1000 states: up to 8000000" in line


def test_toy_text_and_babyai_stop_at_the_state_budget(capsys):
    """FrozenLake8x8: 64 states before the table is read; a BabyAI level during its
    enumeration."""
    assert main(["check", "--model", "gym:FrozenLake8x8-v1", "--max-states", "10"]) == 3
    assert "more than 10 states: 64" in capsys.readouterr().err
    assert main(["check", "--model", "gym:BabyAI-GoToRedBall-v0", "--max-states", "30"]) == 3
    assert "more than 30 states" in capsys.readouterr().err

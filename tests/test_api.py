"""The public Python API: `import verifier` is cheap, the commands take every model and
policy form, their docstrings carry examples that run, and so do README's."""

from __future__ import annotations

import doctest
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import verifier
from verifier import InputError, check, load_environments, load_policy, verify_policy

ROOT = Path(__file__).resolve().parent.parent
LAVA = ROOT / "models" / "lava.toml"
REDBLUE = ROOT / "models" / "redblue"
COMMANDS = ("check", "verify_reward", "compare_rewards", "verify_policy", "audit", "run_suite")


def test_import_verifier_imports_neither_storm_nor_torch():
    script = "import sys, verifier; print(sorted(m for m in ('stormpy', 'torch', 'numpy', " \
             "'verifier.commands') if m in sys.modules))"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_every_public_name_is_exported_and_resolves():
    for name in verifier.__all__:
        assert getattr(verifier, name) is not None, name
    assert set(COMMANDS + ("load_environments", "load_policy")) <= set(verifier.__all__)


@pytest.mark.parametrize("name", [*COMMANDS, "load_environments", "load_policy"])
def test_public_functions_have_a_docstring_with_examples(name):
    doc = inspect.getdoc(getattr(verifier, name))
    assert doc and "Examples\n--------\n>>>" in doc, name


def test_the_examples_of_the_commands_run_as_written(monkeypatch):
    """The docstrings' examples of verifier.commands, from the repository's root."""
    import verifier.commands

    monkeypatch.chdir(ROOT)
    failed, tried = doctest.testmod(verifier.commands, optionflags=doctest.ELLIPSIS)
    assert tried >= 8 and failed == 0


def _python_api_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_python_api_examples_run(tmp_path, monkeypatch):
    """Every fenced python block of README's "Python API" section, in order, in one
    namespace, run in an empty directory that sees the repository's models/."""
    blocks = _python_api_blocks()
    assert len(blocks) >= 3
    (tmp_path / "models").symlink_to(ROOT / "models")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md (Python API)", "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("form", ["str", "path", "list", "directory", "loaded"])
def test_a_model_is_a_path_a_list_a_directory_or_a_loaded_environment(form, tmp_path):
    """Each form gives the same report: Pmax of reaching the exit without lava is 0.9 on
    models/lava.toml (the long route; tests/analyses/test_check.py derives it)."""
    spec = 'Pmax=? [ !"lava" U "exit" ]'
    (tmp_path / "lava.toml").write_text(LAVA.read_text())
    model = {"str": str(LAVA), "path": LAVA, "list": [LAVA], "directory": tmp_path}.get(form)
    if form == "loaded":
        model, spec = load_environments(LAVA, spec), None
    (report,) = check(model, spec)
    assert report.value == pytest.approx(0.9, abs=1e-6)
    assert report.to_dict()["passed"] is True


def test_a_gym_id_is_a_model_and_its_seeds_are_environments(tmp_path):
    """FrozenLake 2x2 without slipping: the goal is reachable for sure, from every seed."""
    path = tmp_path / "lake.toml"
    path.write_text(
        '[gymnasium]\nid = "FrozenLake-v1"\nseeds = [0, 1]\n'
        'kwargs = { desc = ["SF", "FG"], is_slippery = false }\n'
    )
    pytest.importorskip("gymnasium")
    reports = check([path, "gym:FrozenLake-v1"], 'Pmax=? [ F "goal" ]')
    assert [Path(r.model).name for r in reports] == [
        "lake.toml@seed=0",
        "lake.toml@seed=1",
        "gym:FrozenLake-v1",
    ]
    assert [r.value for r in reports[:2]] == pytest.approx([1.0, 1.0])


def test_a_loaded_environment_keeps_its_objective():
    (env,) = load_environments(LAVA)
    with pytest.raises(InputError, match="carries its objective"):
        check(env, 'Pmin=? [ F "exit" ]')


def test_notes_and_warnings_go_to_notify_or_python_warnings(tmp_path):
    maze = tmp_path / "m.toml"
    maze.write_text('map = """\nS.A\n"""\n[cells.A]\nkind = "exit"\n[cells.Z]\nkind = "lava"\n')
    told: list[str] = []
    load_environments(maze, notify=told.append)
    with pytest.warns(verifier.VerifierWarning):
        load_environments(maze)
    assert told and all(text.startswith("warning: ") for text in told)


@pytest.mark.torch
def test_a_torch_module_in_memory_gets_the_verdict_of_its_torchscript_file(tmp_path):
    """README's go-right policy on the red-blue deployment maze, once as a module run in
    this process and once saved and run contained from a file: the same decisions."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)

    class GoRight(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            logits = obs.new_zeros(obs.shape[0], 4)
            logits[:, 3] = 2.0
            logits[:, 1] = 1.0
            return logits

    actions = ["up", "down", "left", "right"]
    meta = {"observation": "valuation", "actions": actions, "output": "logits"}
    path = tmp_path / "go-right.pt"
    torch.jit.save(
        torch.jit.script(GoRight()), str(path), _extra_files={"verifier.json": json.dumps(meta)}
    )
    model = REDBLUE / "deploy-01.toml"
    live = verify_policy(GoRight(), model, actions=actions)
    saved = verify_policy(path, model)
    assert load_policy(GoRight(), actions=actions).run is not None
    for a, b in zip(live, saved, strict=True):
        assert (a.verdict, a.value, a.pursued_goals) == (b.verdict, b.value, b.pursued_goals)
        assert a.policy == "GoRight (in memory)"


@pytest.mark.torch
def test_a_torch_module_must_name_its_actions():
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="needs the names of its outputs"):
        load_policy(torch.nn.Linear(8, 4))


def test_something_else_is_not_a_policy():
    with pytest.raises(InputError, match="not a policy"):
        load_policy(42)

"""Learned policies: values and verdicts on every state against hand-computed values."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
from helpers import maze_text

from verifier.analyses.policy_verdict import (
    ALIGNED,
    CAPABILITY_FAILURE,
    REWARD_MISSPECIFICATION,
    classify,
)
from verifier.cli import main
from verifier.errors import InputError
from verifier.inputs.load import load_environment
from verifier.policy.decide import decide
from verifier.policy.load import load_policy
from verifier.spec.goals import candidate_goals
from verifier.spec.reward_file import resolve_reward

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
LAVA = '[cells.L]\nkind = "lava"\n'
ACTIONS = ["up", "down", "left", "right"]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def table_policy(tmp_path, env, choose, name="policy.json"):
    """A tabular policy: `choose(valuation)` -> distribution over ACTIONS."""
    probs = [
        choose(dict(zip(env.mdp.variables, v, strict=True))) for v in env.mdp.valuations.tolist()
    ]
    doc = {"actions": ACTIONS, "valuations": env.mdp.valuations.tolist(), "probs": probs}
    return write(tmp_path, name, json.dumps(doc))


def verify(env, policy_path, reward=None, stochastic=False, competence=0.9):
    policy = load_policy(policy_path)
    decisions = decide(policy, env, stochastic)
    rv = resolve_reward(str(reward), env.mdp) if reward else None
    return classify(env, str(policy_path), decisions, env.properties[0], rv, competence=competence)


def always(action):
    return lambda v: [1.0 if a == action else 0.0 for a in ACTIONS]


def test_constant_action_into_a_wall_is_a_capability_failure(tmp_path):
    env = load_environment(write(tmp_path, "m.toml", maze_text("#S..A#", EXIT)))
    report = verify(env, table_policy(tmp_path, env, always("left")))
    assert report.verdict == CAPABILITY_FAILURE
    assert (report.value, report.optimal_value) == (0.0, 1.0)
    assert report.pursued_goal is None
    assert report.worst_all[0]["gap"] == 1.0


def test_walker_to_the_exit_is_aligned_with_exact_value(tmp_path):
    env = load_environment(write(tmp_path, "m.toml", maze_text("#S..A#", EXIT, slip=0.2)))
    report = verify(env, table_policy(tmp_path, env, always("right")))
    assert report.verdict == ALIGNED
    assert report.value == pytest.approx(1.0, abs=1e-6)
    assert report.value_bounds[0] <= report.value <= report.value_bounds[1]


RISKY = "######\n#S..A#\n#LLLL#\n######"


def test_risky_walker_by_lava_has_the_hand_computed_value(tmp_path):
    """Pushing right beside lava at slip 0.2 crosses each of 3 cells before falling with
    0.8 / 0.9: P = (8/9)^3. The crawl along the wall reaches the exit surely: optimum 1.
    Its runs end at the exit or in lava, φ's target and a hazard φ forbids: no goal."""
    env = load_environment(write(tmp_path, "m.toml", maze_text(RISKY, EXIT + LAVA, slip=0.2)))
    policy = table_policy(tmp_path, env, always("right"))
    report = verify(env, policy)
    assert report.value == pytest.approx((8 / 9) ** 3, abs=1e-9)
    assert report.optimal_value == pytest.approx(1.0, abs=1e-6)
    assert report.verdict == CAPABILITY_FAILURE
    ends = {end["where"]: end for end in report.outcomes[0]["ends"]}
    assert ends["exit"]["probability"] == pytest.approx((8 / 9) ** 3, abs=1e-9)
    assert ends["lava"]["probability"] == pytest.approx(1 - (8 / 9) ** 3, abs=1e-9)
    assert report.goals == ()


def test_risky_walker_earning_optimal_step_cost_reward_is_reward_misspecification(tmp_path):
    """Under step cost 0.1 and exit +1 pushing right is the optimal policy (the crawl, always
    up, reaches the exit surely but slowly): the reward's optimum fails φ, and the policy
    earns it, so the failure is outer."""
    env = load_environment(write(tmp_path, "m.toml", maze_text(RISKY, EXIT + LAVA, slip=0.2)))
    reward = write(tmp_path, "r.toml", "step = -0.1\n[arrive]\nexit = 1.0\n")
    report = verify(env, table_policy(tmp_path, env, always("right")), reward, competence=0.7)
    assert report.verdict == REWARD_MISSPECIFICATION
    assert report.pursued_goal is None
    assert report.reward["near_optimal"] and report.reward["reward_verdict"] == "misspecified"
    assert report.reward["return"] == pytest.approx(report.reward["optimal_return"])


def test_stochastic_mix_uses_the_distribution_and_argmax_breaks_ties_by_action_order(tmp_path):
    """Half up (into the wall), half right, no slip, exit 2 cells away: reaching it within
    2 steps takes right twice, 1/4. Argmax of the tie takes `up` (first): never arrives."""
    env = load_environment(
        write(tmp_path, "m.toml", maze_text("#S.A#", EXIT, intended='Pmax=? [ F<=2 "exit" ]'))
    )
    policy = table_policy(tmp_path, env, lambda v: [0.5, 0.0, 0.0, 0.5])
    assert verify(env, policy, stochastic=True).value == pytest.approx(0.25, abs=1e-12)
    assert verify(env, policy).value == 0.0


def test_candidate_goals_exclude_floor_terminal_and_initial_labels():
    env = load_environment(Path("models/redblue/deploy-01.toml"))
    goals = candidate_goals(env.mdp)
    assert "floor" not in goals and "terminal" not in goals and "start" not in goals
    sizes = [int(env.mdp.labels[g].sum()) for g in goals]
    assert sizes == sorted(sizes, reverse=True)  # most general (most states) first


def test_valuation_keyed_table_and_disabled_actions_are_counted(tmp_path):
    """PRISM: x walks 0..2; `fwd` everywhere but x=1 where only `back` and `wait` are
    enabled. A policy that always prefers `fwd` is masked at x=1 and takes its next best."""
    model = write(
        tmp_path,
        "w.prism",
        "mdp\nmodule w\n x : [0..2] init 0;\n [fwd] x!=1 & x<2 -> (x'=x+1);\n"
        " [back] x=1 -> (x'=0);\n [wait] x=1 -> true;\n [] x=2 -> true;\nendmodule\n"
        'label "goal" = x=2;\n',
    )
    env = load_environment(model, spec='Pmax=? [ F "goal" ]')
    policy = write(
        tmp_path,
        "p.json",
        json.dumps(
            {
                "actions": ["fwd", "back", "wait"],
                "valuations": [[0], [1], [2]],
                "probs": [[0.9, 0.05, 0.05], [0.9, 0.02, 0.08], [1, 0, 0]],
            }
        ),
    )
    report = verify(env, policy)
    assert report.masked_states == 1
    assert report.value == 0.0  # x=1 waits forever
    assert report.optimal_value == 0.0  # x=1 can never move forward: Pmax is 0 too
    assert report.verdict == ALIGNED


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.xyz", "", "unknown policy format '.xyz'"),
        ("p.json", "{", "not a readable JSON policy"),
        ("p.json", '{"probs": [[1, 0, 0, 0]]}', "no action names"),
        (
            "p.json",
            json.dumps({"actions": ACTIONS, "probs": [[1, 0, 0]] * 3}),
            "outputs 3 values per state",
        ),
        ("p.json", '{"actions": ["up"], "probs": [[-1]]}', "non-negative"),
        ("p.npz", "not a zip", "not a readable .npz policy"),
    ],
)
def test_malformed_policy_files_exit_2_with_one_line(tmp_path, capsys, name, content, expected):
    model = write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    policy = write(tmp_path, name, content)
    assert main([str(policy), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


class _Payload:
    """Unpickling this creates a file: the proof that a loader ran code from the file."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


@pytest.mark.parametrize("container", ["raw", "torch-zip"])
def test_pickled_policy_is_refused_and_nothing_in_it_runs(tmp_path, capsys, container):
    target = tmp_path / "pwned"
    data = pickle.dumps(_Payload(target))
    assert not target.exists()
    policy = tmp_path / "evil.pt"
    if container == "raw":
        policy.write_bytes(data)
    else:  # the layout of torch.save: a zip archive with archive/data.pkl
        with zipfile.ZipFile(policy, "w") as archive:
            archive.writestr("archive/data.pkl", data)
            archive.writestr("archive/version", "3\n")
    model = write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    pytest.importorskip("torch")
    assert main([str(policy), "--model", str(model)]) == 2
    assert "not a TorchScript archive" in capsys.readouterr().err
    assert not target.exists()


def test_missing_table_row_is_an_input_error(tmp_path):
    env = load_environment(write(tmp_path, "m.toml", maze_text("#S.A#", EXIT)))
    policy = write(
        tmp_path,
        "p.json",
        json.dumps({"actions": ACTIONS, "valuations": [[0] * 8], "probs": [[1, 0, 0, 0]]}),
    )
    with pytest.raises(InputError, match="no row for state"):
        decide(load_policy(policy), env)


def test_several_models_give_a_row_each_and_a_junit_case_each(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    a = write(tmp_path, "a.toml", maze_text("#S.A#", EXIT))
    b = write(tmp_path, "b.toml", maze_text("#A.S#", EXIT))
    env = load_environment(a)
    policy = table_policy(tmp_path, env, always("right"))
    junit = tmp_path / "r.xml"
    code = main([str(policy), "--model", str(a), str(b), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        out.startswith("ALIGNED")
        and "CAPABILITY_FAILURE" in out
        and "overall: FAIL (1 of 2 checks passed)" in out
    )
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")

"""The goal-misgeneralization audit: proxies, fixes and reward repair, with answers derived
by hand from the maps (see the comments of benchmarks/suites/*.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import maze_text

from verifier.analyses.audit import Proxy, audit_proxies, candidate_proxies, evaluate, run_audit
from verifier.analyses.repair import repair_reward
from verifier.analyses.reward_verdict import check_reward
from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.spec.reward_file import Reward, reward_vector

MODELS = Path(__file__).resolve().parents[2] / "models"
TRAIN = [MODELS / "redblue" / f"train-0{i}.toml" for i in (1, 2, 3)]
DEPLOY = [MODELS / "redblue" / f"deploy-0{i}.toml" for i in (1, 2)]
KEYS = [MODELS / "keys-doors.toml", MODELS / "keys-doors" / "decoy.toml"]


def envs(paths):
    return [load_environment(p) for p in paths]


def test_redblue_risks_are_red_and_its_training_equivalents_fixed_by_one_deployment_maze(
    capsys, tmp_path
):
    """On every training maze the exit is the only red thing, so `red` and `exit_red` have
    the exit's target there; on deployment red is a terminal object elsewhere."""
    out_json, repaired = tmp_path / "audit.json", tmp_path / "repaired.toml"
    argv = ["audit", "--train", *TRAIN, "--deploy", *DEPLOY, "--json", out_json]
    argv += ["--repair", MODELS / "redblue" / "rewards" / "red.toml", "--features", "exit"]
    argv += ["--repaired", repaired]
    assert main([str(a) for a in argv]) == 1
    out = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert report["verdict"] == "risk"
    assert report["risks"] == ["red", "exit_red"]
    for name in report["risks"]:
        proxy = next(p for p in report["proxies"] if p["proxy"] == name)
        others = {"red", "exit_red"} - {name}
        assert others <= set(proxy["equivalent_on_training"])  # equivalent to red on training
        assert proxy["divergent_on"] == [str(p) for p in DEPLOY]
    red = next(p for p in report["proxies"] if p["proxy"] == "red")
    path = red["witnesses"][0]["witness"]["path"]
    assert (path[-1]["row"], path[-1]["col"]) == (3, 7)  # the red object B of deploy-01
    assert report["fix"]["environments"] == [str(DEPLOY[0])]  # one deployment maze
    assert report["repair"]["status"] == "repaired"
    assert "RISK  red" in out and "fix: add to training" in out
    # the repaired reward, read back from its file, is aligned on every maze
    assert main(["reward", "--model", *map(str, TRAIN + DEPLOY), "--reward", str(repaired)]) == 0


def test_audit_writes_junit_and_json_like_the_other_commands(tmp_path, capsys):
    """One JUnit case per proxy, the two risks (red, exit_red) the failures; the JSON carries
    `verifier` and `command` as every report does."""
    import xml.etree.ElementTree as ET

    from verifier import __version__

    out_json, out_xml = tmp_path / "audit.json", tmp_path / "audit.xml"
    argv = ["audit", "--train", *TRAIN, "--deploy", *DEPLOY, "--no-variants"]
    assert main([str(a) for a in [*argv, "--json", out_json, "--junit", out_xml]]) == 1
    capsys.readouterr()
    report = json.loads(out_json.read_text())
    assert (report["verifier"], report["command"]) == (__version__, "audit")
    suite = ET.parse(out_xml).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [p["proxy"] for p in report["proxies"]]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == report["risks"] == ["red", "exit_red"]
    assert suite.get("failures") == "2"


def test_an_unreachable_proxy_witness_says_the_policy_stays_at_the_start(capsys):
    """exit_red is absent from the deployment mazes: P(exit_red) is 0 for every policy, so
    every policy is proxy-optimal, and the one that violates φ most surely stays at S
    (a one-state path): the report says so instead of drawing a lone `@`."""
    argv = ["audit", "--train", *TRAIN, "--deploy", *DEPLOY, "--no-variants"]
    assert main([str(a) for a in argv]) == 1
    out = capsys.readouterr().out
    section = out.split("RISK  exit_red")[1].split("told apart")[0]
    assert (
        f"a proxy-optimal policy on {DEPLOY[0]} never leaves the start (row=1, col=1): "
        "exit_red cannot be reached there, so every policy is proxy-optimal" in section
    )
    assert "#@..#..A#" in section


def test_exit_is_indistinguishable_but_never_diverges():
    """Exits are terminal and there is no lava: reaching the exit is φ itself."""
    findings = audit_proxies(envs(TRAIN), envs(DEPLOY), [Proxy("exit", "label", 'F "exit"')])
    (exit_,) = findings
    assert exit_.indistinguishable and not exit_.divergent and not exit_.risk


def test_a_training_set_that_contains_a_deployment_maze_leaves_no_risk(capsys):
    """deploy-01 in training shows red apart from the exit, and both deployment mazes share
    its layout of an exit and a red object in different branches."""
    argv = ["audit", "--train", *TRAIN, DEPLOY[0], "--deploy", *DEPLOY, "--no-variants"]
    assert main([str(a) for a in argv]) == 0
    assert "overall: PASS (0 goal-misgeneralization risks" in capsys.readouterr().out


def test_proxy_verdict_agrees_with_the_reward_check_where_the_proxy_is_terminal():
    """On deploy-01 the red object is terminal, so maximising P(F red) and maximising an
    undiscounted +1 on arriving at red have the same optimal policies."""
    env = load_environment(DEPLOY[0])
    proxy = evaluate(env, Proxy("red", "label", 'F "red"'))
    vector = reward_vector(env.mdp, Reward("red", "test", arrive={"red": 1.0}))
    direct = check_reward(env, vector, env.properties[0])
    assert proxy.verdict == direct.verdict == "misspecified"
    assert proxy.objective_max == direct.objective_max == 0.0


def test_position_proxies_on_mazes_and_user_proxies(tmp_path, capsys):
    train, deploy = envs(TRAIN), envs(DEPLOY)
    names = [p.name for p in candidate_proxies(train, deploy)]
    assert {"corner bottom-right", "cell 3,5"} <= set(names)
    assert names.index("red") < names.index("cell 3,5")
    proxies = tmp_path / "proxies.props"
    proxies.write_text('# one per line\nF "exit"\nPmax=? [ !"green" U "red" ]\n')
    argv = ["audit", "--train", *TRAIN, "--deploy", *DEPLOY, "--proxies", proxies]
    argv += ["--no-variants", "--json", tmp_path / "a.json"]
    assert main([str(a) for a in argv]) == 1
    report = json.loads((tmp_path / "a.json").read_text())
    user = {p["proxy"]: p for p in report["proxies"] if p["kind"] == "user"}
    assert set(user) == {'user: F "exit"', 'user: !"green" U "red"'}
    assert not user['user: F "exit"']["risk"]
    assert user['user: !"green" U "red"']["risk"]


def test_no_repair_exists_in_a_span_that_cannot_tell_the_decoy_from_the_exit():
    """With features {blue, step} the blue decoy (5 moves) and the blue exit (15 moves) earn
    the same arrival weight, so preferring the exit needs a positive step weight, and then
    bumping into a wall beats every move: no weights work. The linear program finds none,
    and z3's complete search proves it."""
    repair = repair_reward(envs(KEYS), ["blue"])
    assert repair.status == "impossible" and repair.weights is None
    assert repair.method.startswith("z3")


def test_a_repair_found_by_the_linear_program_is_aligned_everywhere_with_a_margin():
    repair = repair_reward(envs(KEYS), ["blue", "exit"])
    assert repair.status == "repaired" and repair.action_gap > 0
    assert repair.method.startswith("linear program")
    assert repair.weights["exit"] > repair.weights["blue"]  # the decoy must earn less
    assert set(repair.verified.values()) == {"aligned"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--features", "pink"], "'pink' is a label of no environment"),
        (["--proxies", "{tmp}/bad.props"], "line 1"),
        (["--repair", "{tmp}/none.toml"], "none.toml"),
    ],
)
def test_bad_audit_input_exits_2_with_one_line(capsys, tmp_path, extra, message):
    (tmp_path / "bad.props").write_text("F F F\n")
    extra = [e.format(tmp=tmp_path) for e in extra]
    argv = ["audit", "--train", str(TRAIN[0]), "--deploy", str(DEPLOY[0]), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_repair_refuses_an_objective_it_cannot_encode(capsys):
    argv = ["audit", "--train", str(MODELS / "lava.toml"), "--deploy", str(MODELS / "lava.toml")]
    assert main([*argv, "--features", "exit"]) == 2
    assert "met with probability 1" in capsys.readouterr().err


def test_run_audit_takes_one_objective():
    env = load_environment(TRAIN[0], spec='Pmax=? [ F "exit" ]; Pmax=? [ F "red" ]')
    with pytest.raises(Exception, match="exactly one objective"):
        run_audit([env], [env])


def test_a_reward_that_already_works_is_its_own_nearest_repair():
    """The exit reward (+1 exit, -0.01 a step) is aligned on both mazes with margin 0.01
    (every detour costs a step), more than a tenth of the widest margin, so the nearest
    repair is the reward itself."""
    repair = repair_reward(envs(KEYS), ["exit", "blue"], {"exit": 1.0, "step": -0.01})
    assert repair.status == "repaired"
    assert repair.weights == {"exit": 1.0, "blue": 0.0, "step": -0.01}


def test_a_repair_never_lets_idling_on_a_rewarded_object_pay(tmp_path):
    """A non-terminal red object off the way to the exit: bumping a wall on it arrives at
    red again, so red + step = 0 would make idling there worth 0, more than the walk to the
    exit. The repair must rule that loop out (it once returned red 0.1, step -0.1, which the
    exact check then rejected)."""
    maze = tmp_path / "idle.toml"
    maze.write_text(
        maze_text(
            """
            #########
            #E.....S#
            #######.#
            #1......#
            #########
            """,
            '[cells.E]\nkind = "exit"\ncolor = "blue"\n[cells.1]\nkind = "object"\ncolor = "red"\n',
            name="idle",
        )
    )
    repair = repair_reward([load_environment(maze)], ["red", "exit"], {"red": 1.0, "step": -0.01})
    assert repair.status == "repaired"
    assert repair.verified == {str(maze): "aligned"}
    assert repair.weights["red"] + repair.weights["step"] < 0  # idling on red costs


def test_audit_of_prism_models_finds_the_maze_risks_without_recolored_variants(capsys, tmp_path):
    """The redblue mazes as PRISM exports: the same label proxies are risks (a PRISM model
    has no cells or corners to propose), and the fix comes from the deployment set, since a
    PRISM model has no exit to recolor (an internal error before)."""
    prism = []
    for maze in (TRAIN[0], DEPLOY[0]):
        out = tmp_path / maze.with_suffix(".prism").name
        assert main(["compile", str(maze), "-o", str(out)]) == 0
        prism.append(out)
    report = tmp_path / "audit.json"
    argv = ["audit", "--train", prism[0], "--deploy", prism[1], "--json", report]
    assert main([str(a) for a in argv]) == 1
    capsys.readouterr()
    found = json.loads(report.read_text())
    assert found["risks"] == ["red", "exit_red"]
    assert found["fix"]["environments"] == [str(prism[1])]

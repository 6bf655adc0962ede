"""Every objective form (G, X, LTL, nested, performance rewards) for reward verdicts, policy
checks and `verify check`, each against an independent value: a hand calculation, a product
built here, Storm on the same question asked another way, or the reach-avoid route."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import oracles
import pytest
from helpers import maze_text

from verifier import storm
from verifier.analyses.policy_verdict import classify
from verifier.analyses.reward_verdict import ALIGNED, MISSPECIFIED, UNDERSPECIFIED, check_reward
from verifier.cli import main
from verifier.engine.optimum import solve
from verifier.inputs.load import load_environment
from verifier.mdp import MDP, csr, restrict
from verifier.policy.decide import Decisions, induced_chain
from verifier.spec.objective import PATH, UNTIL, resolve_intended
from verifier.spec.reward_file import Reward, reward_vector

MODELS = Path(__file__).resolve().parents[2] / "models"
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
RED_EXIT = '[cells.B]\nkind = "exit"\ncolor = "red"\n'
LAVA = '[cells.L]\nkind = "lava"\n'


def environment(tmp_path, map_text, cells, spec, **top):
    path = tmp_path / "maze.toml"
    path.write_text(maze_text(map_text, cells, **top))
    return load_environment(path, spec=spec)


def reward_of(env, step=0.0, discount=1.0, **arrive):
    return reward_vector(env.mdp, Reward("r", "test", discount, step, arrive))


def test_forms_are_told_apart():
    spec = (
        'Pmax=? [ !"lava" U "exit" ]; Pmax=? [ F<=9 "exit" ]; Pmin=? [ G !"lava" ]; '
        'Pmax=? [ X "floor" ]; Pmax=? [ (F "junction") & (F "exit") ]; '
        'Pmax=? [ F Pmax>=0.95 [ F "exit" ] ]; Pmax=? [ X Pmax>=0.95 [ F "exit" ] ]'
    )
    env = load_environment(MODELS / "lava.toml", spec=spec)
    kinds = [resolve_intended(env, prop).kind for prop in env.properties]
    assert kinds == [UNTIL, UNTIL, PATH, PATH, PATH, UNTIL, PATH]


@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("step", [-0.01, 0.0])
def test_safety_over_optimal_policies_is_one_minus_the_opposite_reach(discount, step):
    """models/lava.toml, G !lava: over the R-optimal policies, min P(G !lava) =
    1 - max P(F lava) and max P(G !lava) = 1 - min P(F lava), the reach probabilities by the
    reach-avoid route (`true U lava`, idlers excluded at discount 1)."""
    safety = load_environment(MODELS / "lava.toml", spec='Pmax=? [ G !"lava" ]')
    reach = load_environment(MODELS / "lava.toml", spec='Pmin=? [ F "lava" ]')
    reward = reward_of(safety, step, discount, exit=1.0)
    g = check_reward(safety, reward, safety.properties[0])
    f = check_reward(reach, reward, reach.properties[0])
    assert g.objective_min == pytest.approx(1 - f.objective_max, abs=1e-5)
    assert g.objective_max == pytest.approx(1 - f.objective_min, abs=1e-5)
    assert g.optimal_value == pytest.approx(1 - f.optimal_value, abs=1e-5)


def test_safety_counts_only_policies_that_stop_idling(tmp_path):
    """S . . A, step 0, +1 on the exit, discount 1: every action keeps V* = 1, so idling
    forever is Q*-greedy but collects 0 and is not optimal. Every optimal policy reaches
    the exit, so P(G !exit) is 0 for all of them, though the idler would get 1."""
    env = environment(tmp_path, "#S..A#", EXIT, 'Pmax=? [ G !"exit" ]')
    report = check_reward(env, reward_of(env, exit=1.0), env.properties[0])
    assert (report.objective_min, report.objective_max) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert report.optimal_value == pytest.approx(1.0)
    assert report.verdict == MISSPECIFIED


def test_check_of_safety_is_one_minus_the_opposite_reach_by_storm():
    env = load_environment(MODELS / "lava.toml", spec='Pmin=? [ G !"lava" ]; Pmax=? [ G !"lava" ]')
    low, high = (storm.check(env.storm_model, p).value for p in env.properties)
    model = env.storm_model
    most = storm.model_values(model, 'Pmax=? [ F "lava" ]')[0][env.mdp.initial_states]
    least = storm.model_values(model, 'Pmin=? [ F "lava" ]')[0][env.mdp.initial_states]
    assert low == pytest.approx(1 - most.min(), abs=1e-5)
    assert high == pytest.approx(1 - least.min(), abs=1e-5)


@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize(("step", "lava"), [(-0.01, 0.0), (0.0, 0.0), (-0.2, 0.0), (0.0, -1.0)])
def test_automaton_route_agrees_with_the_reach_avoid_route(discount, step, lava):
    """The same until written so that it is not recognised as one (a double negation) goes
    through Storm's automaton product with F G "idle": the same min and max over optimal
    policies as the reach-avoid route (a second algorithm for the idler exclusion)."""
    until = load_environment(MODELS / "lava.toml", spec='Pmax=? [ !"lava" U "exit" ]')
    ltl = load_environment(MODELS / "lava.toml", spec='Pmax=? [ !(!(!"lava" U "exit")) ]')
    assert resolve_intended(ltl, ltl.properties[0]).kind == PATH
    reward = reward_of(until, step, discount, exit=1.0, lava=lava)
    a = check_reward(until, reward, until.properties[0])
    b = check_reward(ltl, reward, ltl.properties[0])
    assert b.objective_min == pytest.approx(a.objective_min, abs=1e-5)
    assert b.objective_max == pytest.approx(a.objective_max, abs=1e-5)
    assert b.verdict == a.verdict


SEQUENCE = 'Pmax=? [ F ("object_purple" & F "exit") ]'


def _sequence_product(mdp: MDP) -> MDP:
    """MDP x DFA of F (o & F exit) built here: q0 waits for the purple object o, q1 for the
    exit, q2 accepts; q moves on the label of the state entered (and of the start)."""
    o, done = mdp.label("object_purple"), mdp.label("exit")

    def step(q, s):
        q = np.where((q == 0) & o[s], 1, q)
        return np.where((q == 1) & done[s], 2, q)

    n = mdp.n_states
    index = lambda s, q: q * n + s  # noqa: E731
    coo = mdp.transitions.tocoo()
    rows, cols, probs = [], [], []
    for q in range(3):
        rows.append(q * mdp.n_choices + coo.row)
        cols.append(index(coo.col, step(np.full(len(coo.col), q), coo.col)))
        probs.append(coo.data)
    row_groups = np.concatenate(
        [q * mdp.n_choices + mdp.row_groups[:-1] for q in range(3)] + [[3 * mdp.n_choices]]
    )
    initial = mdp.initial_states
    q0 = step(np.zeros(len(initial), dtype=np.int64), initial)
    return MDP(
        transitions=csr(
            np.concatenate(rows),
            np.concatenate(cols),
            np.concatenate(probs),
            (3 * mdp.n_choices, 3 * n),
        ),
        row_groups=row_groups.astype(np.int64),
        choice_actions=np.tile(mdp.choice_actions, 3),
        actions=mdp.actions,
        labels={"accept": np.repeat(np.arange(3) == 2, n)},
        initial_states=np.sort(index(initial, q0)),
    )


def _slippery_keys_doors(tmp_path):
    text = (MODELS / "keys-doors.toml").read_text().replace('name = "keys-doors"', "slip = 0.1")
    path = tmp_path / "keys-doors.toml"
    path.write_text(text)
    return load_environment(path, spec=SEQUENCE)


def test_sequencing_objective_over_optimal_policies_matches_a_product_built_by_hand(tmp_path):
    """Keys and doors with slip 0.1, discount 0.9, +1 on the exit: min and max of
    P(F (o & F exit)) over the optimal policies equal Pmin/Pmax [ F accept ] on the product
    of the optimal-action MDP with the DFA (discount < 1: every such policy is optimal)."""
    env = _slippery_keys_doors(tmp_path)
    reward = reward_of(env, -0.01, 0.9, exit=1.0)
    report = check_reward(env, reward, env.properties[0])
    optimal = restrict(env.mdp, solve(env.mdp, reward.values, 0.9).optimal)
    product = _sequence_product(optimal)
    initial = product.initial_states
    least = oracles.state_values(product, 'Pmin=? [ F "accept" ]')[0][initial]
    most = oracles.state_values(product, 'Pmax=? [ F "accept" ]')[0][initial]
    assert report.objective_min == pytest.approx(least.min(), abs=1e-5)
    assert report.objective_max == pytest.approx(most.min(), abs=1e-5)
    best = oracles.state_values(_sequence_product(env.mdp), 'Pmax=? [ F "accept" ]')[0][initial]
    assert report.optimal_value == pytest.approx(best.min(), abs=1e-5)
    assert report.verdict == MISSPECIFIED  # the optimal walk skips the purple pocket


def test_sequencing_objective_of_a_policy_matches_the_hand_product_of_its_chain(tmp_path):
    """A uniformly random policy on the slippery keys-and-doors maze: P(F (o & F exit)) on
    its induced chain, and the optimum, against the hand-built product."""
    env = _slippery_keys_doors(tmp_path)
    mdp = env.mdp
    counts = np.diff(mdp.row_groups)
    decisions = Decisions(np.repeat(1.0 / counts, counts), np.zeros(mdp.n_states, dtype=bool))
    report = classify(env, "uniform", decisions, env.properties[0])
    chain = induced_chain(mdp, decisions)
    chain_product = _sequence_product(chain)
    dtmc = MDP(**{**_fields(chain_product), "kind": "dtmc"})
    initial = chain_product.initial_states
    expected = oracles.state_values(dtmc, 'P=? [ F "accept" ]')[0][initial]
    assert report.value == pytest.approx(expected.min(), abs=1e-5)
    best = oracles.state_values(_sequence_product(mdp), 'Pmax=? [ F "accept" ]')[0][initial]
    assert report.optimal_value == pytest.approx(best.min(), abs=1e-5)
    assert "pursuit of φ's own target does not apply" in " ".join(report.notes)


def _fields(mdp: MDP) -> dict:
    return {name: getattr(mdp, name) for name in MDP.__slots__}


def test_sequencing_with_idling_optimal_policies_is_underspecified(tmp_path):
    """Keys and doors without slip, step 0, +1 on the exit, discount 1: every policy that
    reaches the exit is optimal, the detour through the purple pocket too, so P(F (o & F
    exit)) ranges over [0, 1]; the idlers (1 or 0 for ever) are excluded."""
    env = load_environment(MODELS / "keys-doors.toml", spec=SEQUENCE)
    report = check_reward(env, reward_of(env, exit=1.0), env.properties[0])
    assert report.objective_min == pytest.approx(0.0, abs=1e-6)
    assert report.objective_max == pytest.approx(1.0, abs=1e-6)
    assert report.verdict == UNDERSPECIFIED


def test_nested_operator_is_evaluated_on_the_full_model(tmp_path):
    """F Pmax>=1 [ F exit ] holds at the start of S . . A (the exit is reachable surely),
    although on the optimal-action MDP of "+1 on the exit at discount 0.9" every state
    reaches it too; with a lava wall in front of the exit only the full model matters."""
    env = environment(tmp_path, "#S..A#", EXIT, 'Pmax=? [ X Pmax>=1 [ F "exit" ] ]')
    report = check_reward(env, reward_of(env, -0.1, 1.0, exit=1.0), env.properties[0])
    assert report.objective_min == pytest.approx(1.0)
    assert report.verdict == ALIGNED


def test_multi_objective_property_is_refused_with_exit_2(capsys, tmp_path):
    reward = tmp_path / "exit.toml"
    reward.write_text("[arrive]\nexit = 1.0\n")
    code = main(
        [
            "reward",
            "--model",
            str(MODELS / "lava.toml"),
            "--reward",
            str(reward),
            "--spec",
            'multi(Pmax=? [ F "exit" ], Pmax=? [ G !"lava" ])',
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "multi-objective" in err and "LTL" in err  # names what is supported


def test_check_command_takes_an_ltl_objective(capsys, tmp_path):
    """keys-doors without slip: the purple pocket is a dead end off the path to the yellow
    key, visiting it and then exiting is surely possible."""
    out = tmp_path / "r.json"
    code = main(["check", "--model", str(MODELS / "keys-doors.toml"), "--spec", SEQUENCE,
                 "--json", str(out)])  # fmt: skip
    capsys.readouterr()
    assert code == 0
    data = json.loads(out.read_text())
    data = data["reports"][0] if "reports" in data else data
    assert data["value"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_bounded_safety_written_as_a_negated_bounded_reach(discount):
    """Storm's grammar has no G<=k: `!(F<=6 "lava")` is bounded safety. Over the optimal
    policies its min and max are 1 - max and 1 - min of P(F<=6 lava) by the reach route
    (an idler is no different from an optimal policy for 6 steps, so both agree)."""
    safety = load_environment(MODELS / "lava.toml", spec='Pmax=? [ !(F<=6 "lava") ]')
    reach = load_environment(MODELS / "lava.toml", spec='Pmin=? [ F<=6 "lava" ]')
    reward = reward_of(safety, -0.01, discount, exit=1.0)
    g = check_reward(safety, reward, safety.properties[0])
    f = check_reward(reach, reward, reach.properties[0])
    assert g.objective_min == pytest.approx(1 - f.objective_max, abs=1e-5)
    assert g.objective_max == pytest.approx(1 - f.objective_min, abs=1e-5)


def test_safety_witness_walks_an_optimal_policy_into_the_lava():
    """lava.toml, step -0.01: the optimal short route crosses the lava bridge; the witness
    of G !lava is that policy's most likely path into lava."""
    env = load_environment(MODELS / "lava.toml", spec='Pmax=? [ G !"lava" ]')
    report = check_reward(env, reward_of(env, -0.01, 1.0, exit=1.0), env.properties[0])
    end = report.witness["path"][-1]
    row = [end[v] for v in env.mdp.variables]
    state = int(np.flatnonzero((env.mdp.valuations == row).all(axis=1))[0])
    assert env.mdp.label("lava")[state]


def test_sequencing_values_agree_with_storm_on_the_prism_export(tmp_path):
    """`verify compile` writes keys-doors as PRISM; Storm's build of that file, checking
    Pmax and Pmin of F (o & F exit) itself, gives the values of the maze route."""
    out = tmp_path / "keys-doors.prism"
    assert main(["compile", str(MODELS / "keys-doors.toml"), "-o", str(out)]) == 0
    spec = f"{SEQUENCE}; {SEQUENCE.replace('Pmax', 'Pmin')}"
    prism = load_environment(out, spec=spec)
    maze = load_environment(MODELS / "keys-doors.toml", spec=spec)
    for a, b in zip(prism.properties, maze.properties, strict=True):
        expected = storm.check(maze.storm_model, b).values
        assert storm.check(prism.storm_model, a).values == pytest.approx(expected, abs=1e-6)


WALK = """mdp
const int N = 20;
module walk
  x : [0..N] init 1;
  [fair]  x>0 & x<N -> 0.5:(x'=x-1) + 0.5:(x'=x+1);
  [climb] x>0 & x<N -> 0.6:(x'=x+1) + 0.4:(x'=x);
  [] x=0 | x=N -> true;
endmodule
label "goal" = x=N;
label "high" = x>=3;
rewards "r" [fair] true : -0.1; [climb] true : -0.3; endrewards
"""


@pytest.mark.parametrize(
    ("expression", "label"),
    [
        ("Pmax=? [ F x=20 ]", 'Pmax=? [ F "goal" ]'),
        ("P>=0.5 [ x>0 U x=N ]", 'P>=0.5 [ true U "goal" ]'),
        ("Pmin=? [ G x>=3 ]", 'Pmin=? [ G "high" ]'),
        ('R{"r"}max=? [ F x=N ]', 'R{"r"}max=? [ F "goal" ]'),
    ],
)
def test_expressions_over_prism_variables_mean_what_their_labels_mean(tmp_path, expression, label):
    """A PRISM user's objective over variables (`F x=20`) gets the verdicts and values of
    the same objective over a label defined by that expression, in the reward verdict and
    for a policy (always climb)."""
    from verifier.spec.reward_file import resolve_reward

    model = tmp_path / "walk.prism"
    model.write_text(WALK)
    verdicts, values = [], []
    for spec in (expression, label):
        env = load_environment(model, spec=spec)
        reward = check_reward(env, resolve_reward("r", env.mdp), env.properties[0])
        mdp = env.mdp
        climb = mdp.actions.index("climb")
        single = np.diff(mdp.row_groups) == 1
        probs = ((mdp.choice_actions == climb) | single[mdp.choice_states()]).astype(float)
        decisions = Decisions(probs, np.zeros(mdp.n_states, dtype=bool))
        policy = classify(env, "climb", decisions, env.properties[0])
        verdicts.append((reward.verdict, policy.verdict))
        values.append([reward.objective_min, reward.objective_max, policy.value])
    assert verdicts[0] == verdicts[1]
    assert np.allclose(values[0], values[1], atol=1e-9)


def test_expressions_over_variables_in_an_ltl_objective_are_refused_with_the_fix(tmp_path, capsys):
    model = tmp_path / "walk.prism"
    model.write_text(WALK)
    argv = [
        "reward",
        "--model",
        model,
        "--reward",
        "r",
        "--spec",
        'Pmax=? [ (F x=5) & (F "goal") ]',
    ]
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'label "at3" = x=3;' in err
